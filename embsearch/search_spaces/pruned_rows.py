"""A ``field_dims`` space whose fields keep only some of their rows (learned row pruning).

OptEmbed (Lyu et al., CIKM 2022) prunes rows first and then searches the dims of the rows
that are left: its evolution counts a candidate's parameters over the kept rows only
(the official ``calc_sparsity``: kept rows x dim per field). Here a field that keeps
``kept`` of its ``rows`` ids stores, at dim ``d``, a ``pruned`` block (``blocks.py``:
``kept x d`` weights plus the id -> row map, one small integer per id) whenever that costs
fewer bytes than the ``full`` block of all its rows, and the ``full`` block otherwise (a
field that prunes few rows at a small dim: the map would outweigh the rows it drops). Every
byte count (the budget's, the repair's, the knapsack's) sees that credit, so wider dims fit
the same budget. The candidates stay dims (``dims_of`` is the identity) and the plans' space
is the base space's name, so a plan retrains and exports as any ``field_dims`` plan; the
learned maps themselves travel with the plan (``Plan.row_maps``), not with the space.
"""

from __future__ import annotations

from collections.abc import Sequence

from embsearch.blocks import BlockSpec
from embsearch.budget import specs_bytes
from embsearch.candidate import Candidate
from embsearch.errors import ConfigError
from embsearch.plan import FieldPlan, GroupPlan
from embsearch.search_spaces.base import SearchSpace
from embsearch.search_spaces.composed import ComposedSpace


class PrunedRowsSpace(SearchSpace):
    """``base`` (a dims-only space with one group per field) with ``kept[f]`` rows of field
    ``f`` kept; costs and plans as the module docstring says."""

    def __init__(self, base: SearchSpace, kept: Sequence[int]) -> None:
        if isinstance(base, ComposedSpace) or any(len(g) != 1 for g in base.groups):
            raise ConfigError(
                f"row pruning credits a dims-only space with one group per field, not {base.name!r}"
            )
        super().__init__(base.schema, base.width, base.candidates, base.projection, base.precision)
        self.__dict__.update({k: v for k, v in base.__dict__.items() if k == "constraints"})
        self.name = base.name
        self.base_class = type(base)
        rows = [f.cardinality for f in base.schema.fields]
        if len(kept) != len(rows) or any(not 0 <= int(k) <= n for k, n in zip(kept, rows)):
            raise ConfigError(f"kept rows {list(kept)} do not fit the fields' ids {rows}")
        self.kept = tuple(int(k) for k in kept)

    def block_spec(self, f: int, g: int, key: int) -> BlockSpec:
        """Field ``f`` at dim ``key``: its ``pruned`` block when that is cheaper, else ``full``."""
        a, b = self.groups[f][g]
        full = BlockSpec("full", b - a, int(key), self.precision)
        if self.kept[f] == b - a or int(key) == 0:
            return full
        pruned = BlockSpec("pruned", b - a, int(key), self.precision, kept=self.kept[f])
        return pruned if pruned.bytes() < full.bytes() else full

    def field_cost(self, f: int, dims: Sequence[int]) -> int:
        """Exact bytes of field ``f`` at ``dims``, its pruned rows credited (memoised)."""
        key = (f, tuple(dims))
        memo = self.__dict__.setdefault("_costs", {})
        if key not in memo:
            specs = [self.block_spec(f, g, d) for g, d in enumerate(dims)]
            memo[key] = specs_bytes(specs, self.width, self.projection, self.precision)
        return memo[key]

    def with_one_group_per_field(self) -> SearchSpace:
        """The full table's layout (every row: the baseline prunes nothing)."""
        plain = self.base_class(self.schema, self.width, self.candidates, self.projection)
        return plain.with_one_group_per_field()

    def plan_fields(self, cand: Candidate) -> list[FieldPlan]:
        """Each field's dim; its block spec where it is ``pruned`` (``kept`` rows)."""
        out = []
        for f, spec in enumerate(self.schema.fields):
            groups = []
            for g, ((a, b), d) in enumerate(zip(self.groups[f], cand[f])):
                bs = self.block_spec(f, g, d)
                groups.append(
                    GroupPlan(a, b, int(d), bs.to_json() if bs.kind == "pruned" else None)
                )
            out.append(FieldPlan(spec.name, spec.cardinality, groups))
        return out
