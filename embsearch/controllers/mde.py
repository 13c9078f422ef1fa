"""MDE: Ginart et al., "Mixed Dimension Embeddings with Application to Memory-Efficient
Recommendation Systems" (ISIT 2021).

Steps, as in the paper's power-law rule (Sec. 3):
1. popularity of field ``i`` is ``p_i = 1 / n_i`` (``n_i`` = its rows);
2. its dim is ``d_i = lam * (p_i / max_j p_j) ** alpha`` (the smallest field gets ``lam``);
3. ``lam`` is solved by bisection so the plan fills the byte budget, dims rounded *down* to
   the space's candidates (so bytes grow monotonically with ``lam``);
4. (embsearch's, not the paper's) leftover bytes are spent greedily: each round upgrades
   to its next candidate the field furthest below its power-law target *among those whose
   upgrade still fits* (a field whose upgrade does not fit is passed over, so a cheaper
   field further up may grow instead), until no upgrade fits.
``alpha`` defaults to 0.3, inside the paper's recommended range (0.1-0.4).
"""

from __future__ import annotations

import numpy as np

from embsearch.context import SearchContext
from embsearch.controllers.base import Controller
from embsearch.controllers.param_spec import Param
from embsearch.plan import Plan


class MDE(Controller):
    name = "mde"
    family = "rule-based"
    paper = "Ginart et al., Mixed Dimension Embeddings with Application to Memory-Efficient Recommendation Systems, ISIT 2021"
    supported_spaces = ("field_dims",)
    param_specs = {
        "alpha": Param(
            0.3, "float", "power-law temperature: 0 gives every field the same dim", 0.0, 1.0
        )
    }

    def target_dims(self, rows: np.ndarray, lam: float) -> np.ndarray:
        """Step 2: the continuous power-law dims."""
        p = 1.0 / rows
        return lam * (p / p.max()) ** float(self.config["alpha"])

    def search(self, ctx: SearchContext) -> Plan:
        self.check_space(ctx)
        space = ctx.space
        cands = np.asarray(space.candidates)
        rows = np.asarray([f.cardinality for f in space.schema.fields], dtype=np.float64)

        def snap(target: np.ndarray) -> tuple[tuple[int], ...]:
            idx = np.clip(np.searchsorted(cands, target, side="right") - 1, 0, len(cands) - 1)
            return tuple((int(cands[i]),) for i in idx)

        # Step 3: bisection on lam (bytes are monotone in lam after floor rounding).
        lo, hi = (
            0.0,
            float(cands[-1]) * float((rows.max() / rows.min()) ** float(self.config["alpha"]))
            + 1.0,
        )
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if space.bytes_of(snap(self.target_dims(rows, mid))) <= ctx.budget:
                lo = mid
            else:
                hi = mid
        target = self.target_dims(rows, lo)
        dims = [d[0] for d in snap(target)]

        # Step 4: upgrade the most under-served field whose upgrade fits, until none does.
        while True:
            ratio = np.asarray(dims) / np.maximum(target, 1e-9)
            upgraded = False
            for f in np.argsort(ratio, kind="stable"):
                nxt = cands[cands > dims[f]]
                if len(nxt) == 0:
                    continue
                trial = list(dims)
                trial[f] = int(nxt[0])
                if space.bytes_of(tuple((d,) for d in trial)) <= ctx.budget:
                    dims = trial
                    upgraded = True
                    break
            if not upgraded:
                break
        return self.make_plan(
            ctx, tuple((d,) for d in dims), extra={"alpha": self.config["alpha"], "lambda": lo}
        )
