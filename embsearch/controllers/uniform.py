"""``uniform``: the largest single dimension for every field that fits the budget.

The baseline every method is compared with. The plan's width equals its dim, so the
uniform table needs no projection (a plain smaller table, as practitioners would build).
"""

from __future__ import annotations

from embsearch.context import SearchContext
from embsearch.controllers.base import Controller
from embsearch.errors import BudgetError
from embsearch.plan import Plan


class Uniform(Controller):
    name = "uniform"
    family = "rule-based"
    paper = "Baseline: one embedding dimension for all fields"

    def search(self, ctx: SearchContext) -> Plan:
        for dim in range(ctx.space.width, 0, -1):
            narrow = ctx.space.with_width(dim)
            cand = narrow.uniform(dim)
            if narrow.bytes_of(cand) <= ctx.budget:
                return self.make_plan(ctx, cand, space=narrow)
        raise BudgetError(f"budget {ctx.budget} B cannot hold even a dim-1 table; raise --budget")
