"""CpRec: Sun et al., "A Generic Network Compression Framework for Sequential Recommender
Systems" (SIGIR 2020), block-wise adaptive decomposition of the embedding table.

Steps:
1. each field's ids are split into frequency groups (the ``feature_dims`` space; head
   ids in small groups, the long tail in large ones);
2. group ``g`` gets a predefined dim ``top / ratio**g``: the head gets the most, each
   rarer group ``ratio`` times less (the paper's rule; ``ratio`` defaults to 2);
3. ``top`` is the largest candidate for which the plan fits the budget;
4. leftover bytes go greedily to the most frequent groups first, keeping dims
   non-increasing from head to tail.
"""

from __future__ import annotations

import numpy as np

from embsearch.context import SearchContext
from embsearch.controllers.base import Controller
from embsearch.controllers.param_spec import Param
from embsearch.errors import BudgetError
from embsearch.plan import Plan
from embsearch.search_spaces.base import Candidate


class CpRec(Controller):
    name = "cprec"
    family = "rule-based"
    paper = "Sun et al., A Generic Network Compression Framework for Sequential Recommender Systems, SIGIR 2020"
    default_space = "feature_dims"
    param_specs = {
        "ratio": Param(
            2.0, "float", "each rarer frequency group gets this many times fewer dims", 1.0
        )
    }

    constraints_note = (
        "obeyed: each group's dim is rounded to the dims its field's constraint allows"
    )

    def rule(self, ctx: SearchContext, top: float) -> Candidate:
        """Step 2: dims by group rank, rounded down to candidates (never below the smallest);
        a constrained field's to the dims its constraint allows (``space.block_keys``)."""
        out = []
        for f, groups in enumerate(ctx.space.groups):
            dims = []
            for g in range(len(groups)):
                cands = np.asarray(sorted(ctx.space.block_keys(f, g)))
                want = top / float(self.config["ratio"]) ** g
                i = max(int(np.searchsorted(cands, want, side="right")) - 1, 0)
                dims.append(int(cands[i]))
            out.append(tuple(dims))
        return tuple(out)

    def search(self, ctx: SearchContext) -> Plan:
        space = ctx.space
        cands = list(space.candidates)
        fitting = [c for c in cands if space.bytes_of(self.rule(ctx, c)) <= ctx.budget]
        if not fitting:
            raise BudgetError(f"cprec: no top dim fits {ctx.budget} B; raise --budget")
        cand = [list(d) for d in self.rule(ctx, fitting[-1])]
        # Step 4: head groups first, never exceeding the group before it.
        changed = True
        while changed:
            changed = False
            for g in range(max(len(d) for d in cand)):
                for f, dims in enumerate(cand):
                    if g >= len(dims):
                        continue
                    cap = dims[g - 1] if g > 0 else cands[-1]
                    nxt = [c for c in sorted(space.block_keys(f, g)) if dims[g] < c <= cap]
                    if not nxt:
                        continue
                    trial = [list(d) for d in cand]
                    trial[f][g] = nxt[0]
                    if space.bytes_of(tuple(tuple(d) for d in trial)) <= ctx.budget:
                        cand, changed = trial, True
        return self.make_plan(
            ctx,
            tuple(tuple(d) for d in cand),
            extra={"ratio": self.config["ratio"], "top": fitting[-1]},
        )
