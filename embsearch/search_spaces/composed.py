"""Composed spaces: one byte budget met by any mix of dims, meta-table kinds and precision.

``--space field_dims+meta_table``, ``field_dims+precision``, ``field_dims+meta_table+precision``,
``meta_table`` and ``precision``. Every field is one block (as in ``field_dims``); a block's
*options* (:meth:`ComposedSpace.block_options`) are every :class:`BlockOption` its axes allow:

- ``dims``: the space's candidate dims (without it, every block is at the width);
- ``meta_table``: ``full``, and for a field of ``n`` ids (``blocks.py`` names the papers)
  ``hash`` and ``memcom`` with ``m = ceil(n / 2**k)`` rows for ``k = 1, 2, ...`` while
  ``m >= 2`` (a hash that would send every id to one row is never offered), and ``qr`` with
  collision factor ``c = 2**k`` for ``k = 1, 2, ...`` while ``c <= ceil(sqrt(n))`` (larger
  ``c`` only trades quotient rows for remainder rows) and ``ceil(n / c) + c < n``, with
  ``op='mult'`` (the element-wise product, Shi et al.'s best-performing combination, and
  defined at dim 1); hashes use
  :func:`~embsearch.blocks.hash_coefficients` with seed 0;
- ``precision``: fp32, fp16, row-wise int8 and the column-wise ``int8c`` and ``int4c``
  (``blocks.py``: an extension, one scale per column, the only integer kinds cheap enough
  for a tight budget) per block (without it, the space's ``--precision`` for every block).

The generic candidate: ``candidate[f][g]`` is a *key* into ``block_options(f, g)``. In the
dims-only spaces (``field_dims``, ``feature_dims``) the key is the dim itself, so their
candidates, plans and histories are unchanged; here it is the option's index (an ``int``:
candidates stay hashable tuples of tuples and JSON-able, so the search loop's memo, the
knapsack, sampling, repair and evolution's operators work on them unchanged).
:meth:`~embsearch.search_spaces.base.SearchSpace.dims_of` gives any candidate's dims, for
controllers that only read dims. The ``%`` reference stays the fp32 full table at the width.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from embsearch.blocks import BITS, PRECISIONS, BlockSpec, hash_coefficients
from embsearch.budget import specs_bytes
from embsearch.candidate import Candidate
from embsearch.data.schema import Schema
from embsearch.errors import ConfigError
from embsearch.plan import FieldPlan, GroupPlan, Plan
from embsearch.search_spaces import constrain
from embsearch.search_spaces.base import SearchSpace, log2_distance
from embsearch.search_spaces.field_dims import FieldDimsSpace
from embsearch.search_spaces.knapsack import solve_mckp

AXES = ("dims", "meta_table", "precision")
#: QR's combination of its two tables in composed spaces (see the module docstring)
QR_OP = "mult"


@dataclass(frozen=True)
class BlockOption:
    """One setting of a block: its dim, kind, the kind's size (``m`` for hash and memcom,
    ``c`` for qr, 0 for full) and precision."""

    dim: int
    kind: str = "full"
    size: int = 0
    precision: str = "fp32"

    def spec(self, rows: int, field_name: str, group: int) -> BlockSpec:
        """The block spec of this option for a block of ``rows`` ids."""
        if self.kind in ("hash", "memcom"):
            a, b = hash_coefficients(field_name, group, 0) if self.kind == "hash" else (1, 0)
            return BlockSpec(self.kind, rows, self.dim, self.precision, m=self.size, a=a, b=b)
        if self.kind == "qr":
            return BlockSpec("qr", rows, self.dim, self.precision, c=self.size, op=QR_OP)
        return BlockSpec("full", rows, self.dim, self.precision)

    def stored_rows(self, rows: int) -> int:
        """Rows the option stores (the row axis's size): ids, m, or QR's two tables."""
        if self.kind in ("hash", "memcom"):
            return self.size
        if self.kind == "qr":
            return math.ceil(rows / self.size) + self.size
        return rows

    @property
    def label(self) -> str:
        size = {"hash": "m", "memcom": "m", "qr": "c"}.get(self.kind)
        kind = self.kind if size is None else f"{self.kind} {size}={self.size}"
        return f"dim {self.dim} {kind} {self.precision}"


def hash_spreads(rows: int, m: int, a: int, b: int) -> bool:
    """Whether ``hash`` with ``(a, b)`` sends the ``rows`` ids to at least two of ``m`` rows
    (two ids on different rows suffice; all ids are checked only when the first 1024 agree)."""
    ids = np.arange(min(rows, 1024), dtype=np.int64)
    h = ((ids * a + b) % (2**31 - 1)) % m
    if len(np.unique(h)) > 1:
        return True
    if rows <= 1024:
        return False
    ids = np.arange(rows, dtype=np.int64)
    return len(np.unique(((ids * a + b) % (2**31 - 1)) % m)) > 1


def meta_ladder(rows: int) -> list[tuple[str, int]]:
    """The meta-table settings of a block of ``rows`` ids: ``(kind, size)``, full first."""
    out = [("full", 0)]
    k = 1
    while math.ceil(rows / 2**k) >= 2 and math.ceil(rows / 2**k) < rows:
        m = math.ceil(rows / 2**k)
        out += [("hash", m), ("memcom", m)]
        k += 1
    c = 2
    while c <= math.ceil(math.sqrt(rows)) and c <= rows:
        if math.ceil(rows / c) + c < rows:  # fewer rows than the full table
            out.append(("qr", c))
        c *= 2
    return out


class ComposedSpace(SearchSpace):
    """Dims, meta-table kinds and precision per block (the axes in :attr:`axes`)."""

    name = "composed"
    axes: tuple[str, ...] = AXES

    def __init__(
        self,
        schema: Schema,
        width: int = 16,
        candidates: Sequence[int] | None = None,
        projection: str = "linear",
        precision: str = "fp32",
    ) -> None:
        if "precision" in self.axes and precision != "fp32":
            raise ConfigError(
                f"--precision {precision} fixes the precision; the {self.name} space searches it "
                "(drop --precision, or use a space without +precision)"
            )
        super().__init__(schema, width, candidates, projection, precision)

    # -- options -------------------------------------------------------------------------
    def block_options(self, f: int, g: int) -> list[BlockOption]:
        """Every option of block ``(f, g)``, in a fixed order (a key is an index into it)."""
        memo = self.__dict__.setdefault("_opts", {})
        key = (f, g, self.width, self.candidates, self.precision)
        if key not in memo:
            a, b = self.groups[f][g]
            rows, name = b - a, self.schema.fields[f].name
            dims = self.dim_choices
            metas = meta_ladder(rows) if "meta_table" in self.axes else [("full", 0)]
            precs = PRECISIONS if "precision" in self.axes else (self.precision,)
            opts: list[BlockOption] = []
            for d in dims:
                if d == 0:
                    opts.append(BlockOption(0, "full", 0, precs[0]))
                    continue
                for (kind, size), p in itertools.product(metas, precs):
                    if kind == "hash":
                        ha, hb = hash_coefficients(name, g, 0)
                        if not hash_spreads(rows, size, ha, hb):
                            continue
                    opts.append(BlockOption(int(d), kind, size, p))
            memo[key] = opts
        return memo[key]

    def all_keys(self, f: int, g: int) -> tuple[int, ...]:
        return tuple(range(len(self.block_options(f, g))))

    def key_distance(self, f: int, g: int, a: int, b: int) -> float:
        return self.distance(f, g, a, b)

    def option(self, f: int, g: int, key: int) -> BlockOption:
        return self.block_options(f, g)[int(key)]

    def key_of(self, f: int, g: int, opt: BlockOption) -> int:
        """The key of ``opt`` in block ``(f, g)`` (:class:`ConfigError` when not offered)."""
        try:
            return self.block_options(f, g).index(opt)
        except ValueError:
            raise ConfigError(
                f"{opt.label} is not an option of field {self.schema.fields[f].name!r} "
                f"in the {self.name} space"
            ) from None

    def block_spec(self, f: int, g: int, key: int) -> BlockSpec:
        a, b = self.groups[f][g]
        return self.option(f, g, key).spec(b - a, self.schema.fields[f].name, g)

    def dims_of(self, cand: Candidate) -> Candidate:
        return tuple(
            tuple(self.option(f, g, k).dim for g, k in enumerate(keys))
            for f, keys in enumerate(cand)
        )

    @property
    def dim_choices(self) -> tuple[int, ...]:
        """The dims a block may take: the candidates, or the width alone without ``dims``."""
        return self.candidates if "dims" in self.axes else (self.width,)

    @property
    def plan_precision(self) -> str:
        """The plan's precision: blocks carry their own when the space searches it."""
        return "fp32" if "precision" in self.axes else self.precision

    # -- the per-axis view (samplers draw each axis; a key is the option they name) --------
    def axis_values(self, f: int, g: int) -> dict[str, list]:
        """Block ``(f, g)``'s values per axis: ``dim``, ``kind`` (full, hash, memcom, qr),
        ``level`` (shared rows: hash and memcom keep ``ceil(n / 2**level)`` rows, qr takes
        ``c = 2**level``, each clipped to its ladder) and ``precision``, for the axes the
        space has. A sampler drawing each axis uniformly gives full rows a fair chance (one
        kind in four), where drawing a key uniformly would almost always share rows."""
        out: dict[str, list] = {}
        opts = [self.option(f, g, k) for k in self.block_keys(f, g)]  # under the constraints
        if "dims" in self.axes:
            out["dim"] = [d for d in self.dim_choices if any(o.dim == d for o in opts)]
        if "meta_table" in self.axes:
            kinds = {o.kind for o in opts if o.dim > 0} or {"full"}
            out["kind"] = [k for k in ("full", "hash", "memcom", "qr") if k in kinds]
            out["level"] = list(range(1, max(len(self._ladder(f, g, k)) for k in out["kind"]) + 1))
        if "precision" in self.axes:
            precs = {o.precision for o in opts if o.dim > 0} or {"fp32"}
            out["precision"] = [p for p in PRECISIONS if p in precs]
        return out

    def _ladder(self, f: int, g: int, kind: str) -> list[int]:
        """The sizes block ``(f, g)`` offers ``kind`` (hash/memcom: m descending; qr: c
        ascending; full: ``[0]``)."""
        sizes = sorted({o.size for o in self.block_options(f, g) if o.kind == kind})
        return sizes[::-1] if kind in ("hash", "memcom") else sizes

    def key_from_axes(self, f: int, g: int, values: dict) -> int:
        """The key of the option the axis ``values`` name (:meth:`axis_values`; a level
        beyond the kind's ladder takes its last size, a kind the block lacks full rows)."""
        dim = int(values.get("dim", self.width if "dims" not in self.axes else 0))
        prec = str(values.get("precision", self.plan_precision))
        if dim == 0:
            return self.key_of(f, g, self.block_options(f, g)[0])  # the one dim-0 option
        kind, size = str(values.get("kind", "full")), 0
        ladder = self._ladder(f, g, kind) if kind != "full" else []
        if ladder:
            size = ladder[min(int(values.get("level", 1)), len(ladder)) - 1]
        else:
            kind = "full"
        return self.key_of(f, g, BlockOption(dim, kind, size, prec))

    def axes_of_key(self, f: int, g: int, key: int) -> dict:
        """The axis values naming option ``key`` (inverse of :meth:`key_from_axes`; full rows
        and dim 0 take level 1, dim 0 the first precision and kind full)."""
        opt = self.option(f, g, key)
        out: dict = {}
        if "dims" in self.axes:
            out["dim"] = opt.dim
        if "meta_table" in self.axes:
            out["kind"] = opt.kind
            out["level"] = (
                1 if opt.kind == "full" else self._ladder(f, g, opt.kind).index(opt.size) + 1
            )
        if "precision" in self.axes:
            out["precision"] = opt.precision
        return out

    def options(self, f: int) -> list[tuple[int, ...]]:
        return list(itertools.product(*(self.block_keys(f, g) for g in range(len(self.groups[f])))))

    def with_one_group_per_field(self) -> SearchSpace:
        """The full table's layout: a plain ``field_dims`` space in fp32."""
        return FieldDimsSpace(self.schema, self.width, self.candidates, self.projection, "fp32")

    # -- bytes ---------------------------------------------------------------------------
    def field_cost(self, f: int, dims: Sequence[int]) -> int:
        """Exact bytes of field ``f`` whose blocks take the options ``dims`` (keys)."""
        key = (f, tuple(int(k) for k in dims), self.width, self.candidates, self.projection)
        memo = self.__dict__.setdefault("_ccosts", {})
        if key not in memo:
            specs = [self.block_spec(f, g, k) for g, k in enumerate(dims)]
            memo[key] = specs_bytes(specs, self.width, self.projection, self.plan_precision)
        return memo[key]

    def _priced_options(self, f: int) -> tuple[list[tuple[int, ...]], list[int], np.ndarray]:
        o = self.options(f)
        index = np.asarray(o, dtype=np.int64).reshape(len(o), len(self.groups[f]))
        return o, [self.field_cost(f, keys) for keys in o], index

    def min_bytes(self) -> int:
        """Bytes of the cheapest candidate: every field at its cheapest option."""
        return sum(min(self._priced_options(f)[1]) for f in range(self.num_fields))

    def top_option(self, dim: int) -> BlockOption:
        """The most expressive setting at ``dim``: full rows, the space's best precision."""
        return BlockOption(
            int(dim), "full", 0, "fp32" if "precision" in self.axes else self.precision
        )

    def uniform(self, dim: int) -> Candidate:
        """Every block at :meth:`top_option` (a constrained block at its nearest allowed option)."""
        opt = self.top_option(dim)
        return constrain.nearest(
            self,
            tuple(
                tuple(self.key_of(f, g, opt) for g in range(len(gs)))
                for f, gs in enumerate(self.groups)
            ),
        )

    def max_candidate(self) -> Candidate:
        return self.uniform(self.candidates[-1] if "dims" in self.axes else self.width)

    # -- candidates ----------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Candidate:
        """Every block's option drawn axis by axis, each axis uniformly (:meth:`axis_values`)."""
        out = []
        for f, gs in enumerate(self.groups):
            keys = []
            for g in range(len(gs)):
                values = {
                    a: v[int(rng.integers(len(v)))] for a, v in self.axis_values(f, g).items()
                }
                keys.append(self.key_from_axes(f, g, values))
            out.append(tuple(keys))
        return constrain.nearest(self, tuple(out))

    def validate(self, cand: Candidate) -> None:
        if len(cand) != self.num_fields:
            raise ConfigError(f"candidate has {len(cand)} fields, the space {self.num_fields}")
        for f, keys in enumerate(cand):
            if len(keys) != len(self.groups[f]) or any(
                not 0 <= int(k) < len(self.block_options(f, g)) for g, k in enumerate(keys)
            ):
                raise ConfigError(
                    f"candidate keys {keys} of field {self.schema.fields[f].name!r} are not "
                    f"options of the {self.name} space"
                )

    def best_under_budget(self, preference: Sequence[np.ndarray], budget: int) -> Candidate:
        """The candidate maximising total preference within ``budget`` (exact knapsack).
        ``preference[f]`` is a sequence over the field's groups of arrays with one value per
        option key; a field option's value is the sum over its groups."""
        costs, values, opts = [], [], []
        for f in range(self.num_fields):
            o, cost, index = self._priced_options(f)
            value = np.zeros(len(o))
            for g in range(index.shape[1]):
                value = value + np.asarray(preference[f][g], dtype=np.float64)[index[:, g]]
            opts.append(o)
            costs.append(cost)
            values.append(value)
        choice = solve_mckp(costs, values, budget)
        return tuple(opts[f][i] for f, i in enumerate(choice))

    def distance(self, f: int, g: int, a: int, b: int) -> float:
        """How far option ``b`` is from ``a`` (the repair keeps candidates close): the sum
        over axes of ``log2`` distances (dims by :func:`log2_distance`, stored rows, bits)."""
        rows = self.groups[f][g][1] - self.groups[f][g][0]
        oa, ob = self.option(f, g, a), self.option(f, g, b)
        return (
            log2_distance(oa.dim, ob.dim)
            + log2_distance(oa.stored_rows(rows), ob.stored_rows(rows))
            + abs(math.log2(BITS[oa.precision] / BITS[ob.precision]))
            + (0.25 if oa.kind != ob.kind else 0.0)
        )

    def repair(
        self, cand: Candidate, budget: int, preference: Sequence[np.ndarray] | None = None
    ) -> Candidate:
        """Project ``cand`` onto the budget: the knapsack over each field's options that cost
        no more than its current one (so the cheapest option is always among them), keeping
        every block as close as it can (:meth:`distance`, plus ``preference`` if given); a
        field whose keys break a constraint may take any allowed option."""
        if self.bytes_of(cand) <= budget and constrain.conforms(self, cand):
            return cand
        costs, values, opts = [], [], []
        for f, keys in enumerate(cand):
            o, cost, _ = self._priced_options(f)
            ok = all(int(k) in self.block_keys(f, g) for g, k in enumerate(keys))
            limit = self.field_cost(f, keys) if ok else math.inf
            value = np.full(len(o), -np.inf)
            for i, option in enumerate(o):
                if cost[i] <= limit:
                    value[i] = -sum(self.distance(f, g, k, option[g]) for g, k in enumerate(keys))
                    if preference is not None:
                        value[i] += sum(
                            float(np.asarray(preference[f][g])[option[g]]) for g in range(len(keys))
                        )
            opts.append(o)
            costs.append(cost)
            values.append(value)
        choice = solve_mckp(costs, values, budget)
        return tuple(opts[f][i] for f, i in enumerate(choice))

    # -- plans ---------------------------------------------------------------------------
    def plan_fields(self, cand: Candidate) -> list[FieldPlan]:
        """The plan's fields: each group's dim, and its block spec unless it is a full table at
        the plan's precision (so an all-full plan is written as plan/1)."""
        plan_precision = self.plan_precision
        fields = []
        for f, spec in enumerate(self.schema.fields):
            groups = []
            for g, ((a, b), k) in enumerate(zip(self.groups[f], cand[f])):
                bs = self.block_spec(f, g, k)
                plain = bs == BlockSpec("full", b - a, bs.dim, plan_precision)
                groups.append(GroupPlan(a, b, bs.dim, None if plain else bs.to_json()))
            fields.append(FieldPlan(spec.name, spec.cardinality, groups))
        return fields

    def candidate_of(self, plan: Plan) -> Candidate:
        """The candidate (keys) of a plan of this space."""
        out = []
        for f, fp in enumerate(plan.fields):
            keys = []
            for g in range(len(fp.groups)):
                bs = plan.block_spec(fp, g)
                size = bs.m if bs.kind in ("hash", "memcom") else bs.c if bs.kind == "qr" else 0
                keys.append(self.key_of(f, g, BlockOption(bs.dim, bs.kind, size, bs.precision)))
            out.append(tuple(keys))
        return tuple(out)


def _composed(name: str, axes: tuple[str, ...]) -> type[ComposedSpace]:
    doc = f"``{name}``: per field, {' x '.join(axes)} (see the module docstring)."
    return type(
        name.replace("+", "_"), (ComposedSpace,), {"name": name, "axes": axes, "__doc__": doc}
    )


COMPOSED_SPACES: dict[str, type[ComposedSpace]] = {
    name: _composed(name, axes)
    for name, axes in (
        ("field_dims+meta_table", ("dims", "meta_table")),
        ("field_dims+precision", ("dims", "precision")),
        ("field_dims+meta_table+precision", ("dims", "meta_table", "precision")),
        ("meta_table", ("meta_table",)),
        ("precision", ("precision",)),
    )
}
