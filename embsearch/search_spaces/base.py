"""The search-space contract: what may vary, what it costs in bytes, how to fit a budget.

A *candidate* is ``dims[f][g]``: for every field ``f`` a tuple with one dim per frequency
group ``g`` of that field (a single group in the ``field_dims`` space). Spaces know nothing
of controllers; controllers ask spaces for costs, samples, repairs and knapsack choices.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Sequence

import numpy as np

from embsearch.blocks import BlockSpec, check_precision
from embsearch.budget import BudgetSpec, field_bytes
from embsearch.candidate import Candidate
from embsearch.constraints import FieldConstraint, constraints_json
from embsearch.data.schema import Schema
from embsearch.errors import BudgetError, ConfigError
from embsearch.plan import FieldPlan, GroupPlan, Plan
from embsearch.search_spaces import constrain
from embsearch.search_spaces.floor import check_fits
from embsearch.search_spaces.knapsack import solve_mckp

__all__ = ["Candidate", "SearchSpace", "default_candidates", "log2_distance"]


def _check_projection(projection: str) -> None:
    """How a space's plans reach the width: a learned projection or zero padding."""
    if projection not in ("linear", "pad"):
        raise ConfigError(f"projection must be 'linear' or 'pad', got {projection!r}")


def log2_distance(a: int, b: int) -> float:
    """``|log2 a - log2 b|`` with 0 counted as 1/2 (dropping a dim-1 block costs as much as
    halving a dim), rounded *up* to quarter steps: exact for powers of two, never 0 for
    different dims, and with other dims (RULE's blocks) the repair knapsack's values stay on
    a coarse grid, which keeps its Pareto frontier, and so each repair, small (20 -> ~8 ms
    on frappe's 35 (field, group) blocks)."""

    def lg(x: int) -> float:
        return math.log2(x) if x > 0 else -1.0

    return math.ceil(4.0 * abs(lg(a) - lg(b)) - 1e-9) / 4.0


class SearchSpace:
    """Per-field frequency groups, each taking one dim from ``candidates``.

    Subclasses choose the groups; everything else (bytes, sampling, repair, knapsack,
    plans) is shared here.
    """

    name = "base"
    #: per-field constraints (field name -> :class:`~embsearch.constraints.FieldConstraint`),
    #: set by :meth:`with_constraints`; they narrow :meth:`block_keys` (``constrain.py``)
    constraints: dict[str, FieldConstraint] = {}  # noqa: RUF012 - read-only default

    def __init__(
        self,
        schema: Schema,
        width: int = 16,
        candidates: Sequence[int] | None = None,
        projection: str = "linear",
        precision: str = "fp32",
    ) -> None:
        if width < 1:
            raise ConfigError(f"--width must be at least 1, got {width}")
        cands = _checked_candidates(
            default_candidates(width) if candidates is None else candidates, width
        )
        _check_projection(projection)
        check_precision(precision)
        self.schema = schema
        self.width = int(width)
        self.candidates = cands
        self.projection = projection
        self.precision = precision
        self.groups: list[list[tuple[int, int]]] = self._make_groups()

    # -- structure ---------------------------------------------------------------------
    def _make_groups(self) -> list[list[tuple[int, int]]]:
        return [[(0, f.cardinality)] for f in self.schema.fields]

    @property
    def num_fields(self) -> int:
        return self.schema.num_fields

    def group_rows(self, f: int) -> list[int]:
        return [b - a for a, b in self.groups[f]]

    def all_keys(self, f: int, g: int) -> tuple[int, ...]:
        """Every key of block ``(f, g)``, constraints aside: here the candidate dims themselves
        (the generic candidate, ``composed.py``: composed spaces key options by index)."""
        return self.candidates

    def block_keys(self, f: int, g: int) -> tuple[int, ...]:
        """The keys block ``(f, g)`` may take: :meth:`all_keys` its field's constraint allows."""
        return constrain.allowed_keys(self, f, g) if self.constraints else self.all_keys(f, g)

    def with_constraints(self, constraints: dict[str, FieldConstraint]) -> SearchSpace:
        """A copy under per-field ``constraints``, checked against the space (one line)."""
        return constrain.apply(self, constraints)

    def key_distance(self, f: int, g: int, a: int, b: int) -> float:
        """How far key ``b`` of block ``(f, g)`` is from ``a``: here :func:`log2_distance`."""
        return log2_distance(a, b)

    def block_spec(self, f: int, g: int, key: int) -> BlockSpec:
        """The block that key ``key`` of block ``(f, g)`` builds: here ``full`` at dim ``key``."""
        a, b = self.groups[f][g]
        return BlockSpec("full", b - a, int(key), self.precision)

    def dims_of(self, cand: Candidate) -> Candidate:
        """The dims of a candidate (here the candidate itself)."""
        return cand

    @property
    def dim_choices(self) -> tuple[int, ...]:
        """The dims a block may take (what a dims supernet must play): the candidates."""
        return self.candidates

    def candidate_of(self, plan: Plan) -> Candidate:
        """The candidate of a plan of this space (here its dims)."""
        return self.from_plan(plan)

    def options(self, f: int) -> list[tuple[int, ...]]:
        """Every dims tuple field ``f`` may take (one allowed dim per group)."""
        return list(itertools.product(*(self.block_keys(f, g) for g in range(len(self.groups[f])))))

    def with_width(self, width: int, candidates: Sequence[int] | None = None) -> SearchSpace:
        """A copy with another backbone width (and candidates, default just ``width``)."""
        clone = copy.copy(self)
        clone.width = int(width)
        clone.candidates = tuple(sorted({int(c) for c in (candidates or (width,))}))
        return clone

    def with_candidates(self, candidates: Sequence[int]) -> SearchSpace:
        """A copy with other candidate dims (each in ``[0, width]``)."""
        clone = copy.copy(self)
        clone.candidates = _checked_candidates(candidates, self.width)
        if clone.constraints:  # e.g. a controller's block dims: each block keeps an option
            constrain.check_blocks(clone)
        return clone

    def with_projection(self, projection: str) -> SearchSpace:
        """A copy whose plans reach the width by ``projection`` ('linear' or 'pad'); bytes
        are counted in it (a projection's weights are part of the table)."""
        _check_projection(projection)
        clone = copy.copy(self)
        clone.projection = projection
        return clone

    def with_one_group_per_field(self) -> SearchSpace:
        """A copy in which every field is one group of all its ids, in fp32 (the full table's
        layout, which ``retrain`` trains beside a plan)."""
        clone = copy.copy(self)
        clone.groups = [[(0, f.cardinality)] for f in self.schema.fields]
        clone.precision = "fp32"
        clone.__dict__.pop("constraints", None)  # the full table is not constrained
        return clone

    def __copy__(self) -> SearchSpace:
        """A shallow copy without the byte memos (:meth:`field_cost`, :meth:`_priced_options`):
        callers change a copy's width, candidates, projection or groups, never the original's."""
        clone = self.__class__.__new__(self.__class__)
        clone.__dict__.update(
            {
                k: v
                for k, v in self.__dict__.items()
                if k not in ("_costs", "_priced", "_allowed", "_pad_costs")
            }
        )
        return clone

    # -- bytes -------------------------------------------------------------------------
    def field_cost(self, f: int, dims: Sequence[int]) -> int:
        """Exact bytes of field ``f`` at ``dims`` (:func:`~embsearch.budget.field_bytes`),
        memoised per ``(f, dims)``: searches price the same few options thousands of times
        (every child's bytes, every repair's and knapsack's options), and a space's costs
        never change once built (copies start without the memo)."""
        key = (f, tuple(dims))
        memo = self.__dict__.setdefault("_costs", {})
        if key not in memo:
            memo[key] = field_bytes(
                self.group_rows(f), dims, self.width, self.projection, self.precision
            )
        return memo[key]

    def bytes_of(self, cand: Candidate) -> int:
        return sum(self.field_cost(f, d) for f, d in enumerate(cand))

    def uniform(self, dim: int) -> Candidate:
        """Every block at ``dim`` (a constrained block at its nearest allowed dim)."""
        return constrain.nearest(self, tuple((dim,) * len(g) for g in self.groups))

    def min_bytes(self) -> int:
        """Bytes of the cheapest candidate. Per field the cheapest option is uniform: any
        option with a dim below the width pays a projection (linear) and its rows, so the
        smallest candidate everywhere beats it; without projections, all at the width.
        Under constraints: the cheapest allowed option of each field."""
        if self.constraints and self.projection == "pad":  # blocks priced alone (as below)
            return sum(
                self.field_cost(
                    f,
                    [
                        min(self.block_keys(f, g), key=lambda c, r=b - a: self._pad_cost(r, c))
                        for g, (a, b) in enumerate(gs)
                    ],
                )
                for f, gs in enumerate(self.groups)
            )
        if self.constraints:
            return sum(min(self._priced_options(f)[1]) for f in range(self.num_fields))
        return sum(
            min(self.field_cost(f, (c,) * len(g)) for c in self.candidates)
            for f, g in enumerate(self.groups)
        )

    def max_candidate(self) -> Candidate:
        return self.uniform(self.candidates[-1])

    def full_table_bytes(self) -> int:
        """The full-size table: every field at the width, one group, no projection, fp32
        (the reference of a ``%`` budget whatever precision the space counts in)."""
        return sum(
            field_bytes([f.cardinality], [self.width], self.width, self.projection, "fp32")
            for f in self.schema.fields
        )

    def resolve_budget(self, spec: BudgetSpec) -> int:
        """Bytes of ``spec``, checked feasible; raises one line naming the smallest size."""
        budget = spec.resolve(self.full_table_bytes())
        self.check_budget(budget, shown=f"{spec.text} ({budget} B)")
        return budget

    def check_budget(self, budget: int, *, shown: str | None = None) -> None:
        """Raise :class:`BudgetError` when ``budget`` bytes are below :meth:`min_bytes`
        (:func:`~embsearch.search_spaces.floor.check_fits`; ``shown`` names the budget)."""
        what = f"plan of the {self.name} space"
        if self.constraints:
            what += f" under the constraints ({constrain.describe(self)})"
        check_fits(budget, self.min_bytes(), what=what, shown=shown)

    # -- candidates ----------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Candidate:
        return tuple(
            tuple(int(rng.choice(self.block_keys(f, g))) for g in range(len(self.groups[f])))
            for f in range(self.num_fields)
        )

    def validate(self, cand: Candidate) -> None:
        if len(cand) != self.num_fields:
            raise ConfigError(f"candidate has {len(cand)} fields, the space {self.num_fields}")
        for f, dims in enumerate(cand):
            if len(dims) != len(self.groups[f]) or any(d not in self.candidates for d in dims):
                raise ConfigError(
                    f"candidate dims {dims} of field {self.schema.fields[f].name!r} are not in the space"
                )

    def best_under_budget(self, preference: Sequence[np.ndarray], budget: int) -> Candidate:
        """The candidate maximising total preference with bytes <= budget (exact knapsack).

        ``preference[f]`` has shape ``[groups of f, len(candidates)]``; an option's value is
        the sum over groups of the preference of its dim. Without projections (``pad``) a
        field's bytes are a sum over its (field, group) blocks too, so each block is one
        knapsack unit (``C`` options, not a field's ``C ** G``): the same optimum, far faster.
        """
        if self.projection == "pad" and any(len(g) > 1 for g in self.groups):
            return self._best_per_block(preference, budget)
        costs, values, opts = [], [], []
        for f in range(self.num_fields):
            pref = np.asarray(preference[f], dtype=np.float64).reshape(
                len(self.groups[f]), len(self.candidates)
            )
            o, cost, index = self._priced_options(f)
            opts.append(o)
            costs.append(cost)
            value = np.zeros(len(o))
            for g in range(index.shape[1]):  # summed in group order, as sum() over dims would
                value = value + pref[g, index[:, g]]
            values.append(value)
        choice = solve_mckp(costs, values, budget)
        return tuple(opts[f][i] for f, i in enumerate(choice))

    def _best_per_block(self, preference: Sequence[np.ndarray], budget: int) -> Candidate:
        """:meth:`best_under_budget` for a ``pad`` space: one unit per (field, group) block."""
        costs, values = [], []
        for f, groups in enumerate(self.groups):
            pref = np.asarray(preference[f], dtype=np.float64).reshape(
                len(groups), len(self.candidates)
            )
            for g, (a, b) in enumerate(groups):
                costs.append([self._pad_cost(b - a, c) for c in self.candidates])
                allowed = [c in self.block_keys(f, g) for c in self.candidates]
                values.append(np.where(allowed, pref[g], -np.inf))
        picks = iter(solve_mckp(costs, values, budget))
        return tuple(tuple(self.candidates[next(picks)] for _ in groups) for groups in self.groups)

    def _pad_cost(self, rows: int, dim: int) -> int:
        """Bytes of one block of ``rows`` ids at ``dim`` without a projection (with ``pad`` a
        field's bytes are the sum of its blocks'), memoised as :meth:`field_cost` is (each
        repair prices every block at every dim)."""
        memo = self.__dict__.setdefault("_pad_costs", {})
        if (rows, dim) not in memo:
            memo[rows, dim] = field_bytes([rows], [dim], self.width, "pad", self.precision)
        return memo[rows, dim]

    def _priced_options(self, f: int) -> tuple[list[tuple[int, ...]], list[int], np.ndarray]:
        """Field ``f``'s options, their bytes and their candidate indices ``[options, groups]``,
        built once per space (copies start afresh): a knapsack per budget need not list
        and price every option again."""
        cache = self.__dict__.setdefault("_priced", {})
        if f not in cache:
            o = self.options(f)
            n_groups = len(self.groups[f])
            at = {c: i for i, c in enumerate(self.candidates)}
            index = np.array([[at[d] for d in dims] for dims in o], dtype=np.int64).reshape(
                len(o), n_groups
            )
            cache[f] = (o, [self.field_cost(f, dims) for dims in o], index)
        return cache[f]

    def argmax(self, preference: Sequence[np.ndarray]) -> Candidate:
        """The per-group argmax over allowed dims, ignoring any budget (the papers' own
        discretisation)."""
        return tuple(
            tuple(
                self.candidates[int(i)]
                for i in np.where(
                    [[c in self.block_keys(f, g) for c in self.candidates] for g in range(len(gs))],
                    np.asarray(preference[f], dtype=np.float64).reshape(len(gs), -1),
                    -np.inf,
                ).argmax(1)
            )
            for f, gs in enumerate(self.groups)
        )

    def repair(
        self, cand: Candidate, budget: int, preference: Sequence[np.ndarray] | None = None
    ) -> Candidate:
        """Project ``cand`` onto the budget: the knapsack over dims no larger than ``cand``'s,
        preferring (by default) to keep each group's dim as close to the original as possible
        (:func:`log2_distance`); a candidate that breaks a constraint moves to allowed dims."""
        if self.bytes_of(cand) <= budget and constrain.conforms(self, cand):
            return cand
        pref = []
        for f, dims in enumerate(cand):
            p = np.full((len(dims), len(self.candidates)), -1e9)
            for g, d in enumerate(dims):
                for i, c in enumerate(self.candidates):
                    if c <= d:
                        base = -log2_distance(d, c)
                        p[g, i] = (
                            base
                            if preference is None
                            else base
                            + float(np.asarray(preference[f]).reshape(len(dims), -1)[g, i])
                        )
            pref.append(p)
        return self.best_under_budget(pref, budget)

    # -- plans ------------------------------------------------------------------------------
    def to_plan(self, cand: Candidate, controller: str, budget: int, **kwargs: object) -> Plan:
        self.validate(cand)
        constrain.check_candidate(self, cand, controller)
        plan = Plan(
            controller=controller,
            space=self.name,
            width=self.width,
            fields=self.plan_fields(cand),
            budget_bytes=int(budget),
            projection=self.projection,
            precision=self.plan_precision,
            **kwargs,  # type: ignore[arg-type]
        )
        if plan.table_bytes > budget:
            raise BudgetError(
                f"internal: plan of {plan.table_bytes} B exceeds the budget {budget} B"
            )
        if self.constraints:  # recorded in plan.json (extra.constraints)
            plan.extra["constraints"] = constraints_json(self.constraints)
        return plan

    @property
    def plan_precision(self) -> str:
        """The precision a plan of this space records (its blocks' unless they say another)."""
        return self.precision

    def plan_fields(self, cand: Candidate) -> list[FieldPlan]:
        """The plan's fields for ``cand``: here each group's dim, its blocks full."""
        return [
            FieldPlan(
                spec.name,
                spec.cardinality,
                [GroupPlan(a, b, int(d)) for (a, b), d in zip(self.groups[f], cand[f])],
            )
            for f, spec in enumerate(self.schema.fields)
        ]

    @staticmethod
    def from_plan(plan: Plan) -> Candidate:
        return tuple(tuple(f.dims) for f in plan.fields)


def _checked_candidates(candidates: Sequence[int], width: int) -> tuple[int, ...]:
    """``candidates`` sorted without repeats; :class:`ConfigError` unless non-empty and in
    ``[0, width]``."""
    cands = tuple(sorted({int(c) for c in candidates}))
    if not cands:
        raise ConfigError(
            "the candidate dim list is empty; give at least one dim, e.g. --candidates 2,4,8,16"
        )
    if cands[0] < 0 or cands[-1] > width:
        raise ConfigError(
            f"candidate dims {list(cands)} must lie in [0, width={width}]; drop the larger ones or raise --width"
        )
    return cands


def default_candidates(width: int) -> tuple[int, ...]:
    """Powers of two from 1 up to (and including) ``width``: 1 keeps 10% budgets feasible."""
    out, d = [], 1
    while d < width:
        out.append(d)
        d *= 2
    out.append(width)
    return tuple(sorted(set(out)))
