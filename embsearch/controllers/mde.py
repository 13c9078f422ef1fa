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

In a composed space (``search_spaces/composed.py``; embsearch's extension, the paper sizes
dims only) the same rule sizes each field's *bytes*: field ``i`` gets the share
``s_i = min(1, lam * (p_i / max_j p_j) ** alpha)`` of its full fp32 table, which is step 2's
rule when only dims vary (``d_i = s_i * width``) and, with the dims fixed, gives the field
``s_i * n_i`` rows (rows per field from the same power law). Each field climbs a ladder of
its options by bytes (at equal bytes the option of more stored rows, then the larger dim,
then more bits) on which a step is kept only when its (stored rows, dim, bits) is
lexicographically greater than every cheaper kept step's: embsearch's rule, uniform's order,
so that a dearer step is never a worse table (talkingdata 25%: row-wise int8 dim 4, 12 B a
row, sat above int4c dim 16, 8 B a row, and the hybrid plan scored 0.942 against the
precision axis's 0.970 with int4c dim 16). So an option is left out when a cheaper one
stores more rows (full rows at a small dim before hashed rows at a large one; on frappe at
10% hashing cost 0.01-0.04 test AUC where smaller dims or fp16 cost less), as many rows at
a larger dim (dim 8 with its projection above dim 16 without one), or as wide with as many
bits (MEmCom's per-id scalars above the hash of as many rows). The field takes the step of
most bytes within ``s_i`` of its table, ``lam`` is bisected as in step 3 and step 4
upgrades fields to their next step the same way.
"""

from __future__ import annotations

import numpy as np

from embsearch.blocks import BITS
from embsearch.context import SearchContext
from embsearch.controllers.base import Controller
from embsearch.controllers.param_spec import Param
from embsearch.plan import Plan
from embsearch.search_spaces import COMPOSED_SPACES
from embsearch.search_spaces.composed import ComposedSpace


class MDE(Controller):
    name = "mde"
    family = "rule-based"
    paper = "Ginart et al., Mixed Dimension Embeddings with Application to Memory-Efficient Recommendation Systems, ISIT 2021"
    supported_spaces = ("field_dims", *COMPOSED_SPACES)
    param_specs = {
        "alpha": Param(
            0.3, "float", "power-law temperature: 0 gives every field the same dim", 0.0, 1.0
        )
    }

    constraints_note = (
        "obeyed: the power rule snaps and upgrades each field within the dims its constraint "
        "allows (composed spaces: within its allowed options)"
    )

    def target_dims(self, rows: np.ndarray, lam: float) -> np.ndarray:
        """Step 2: the continuous power-law dims."""
        p = 1.0 / rows
        return lam * (p / p.max()) ** float(self.config["alpha"])

    def search(self, ctx: SearchContext) -> Plan:
        self.check_space(ctx)
        if isinstance(ctx.space, ComposedSpace):
            return self.search_composed(ctx, ctx.space)
        space = ctx.space
        cands = np.asarray(space.candidates)
        # each field's dims: the candidates its constraint allows (--constraint; all without)
        allowed = [np.asarray(sorted(space.block_keys(f, 0))) for f in range(space.num_fields)]
        rows = np.asarray([f.cardinality for f in space.schema.fields], dtype=np.float64)

        def snap(target: np.ndarray) -> tuple[tuple[int], ...]:
            return tuple(
                (int(c[max(int(np.searchsorted(c, t, side="right")) - 1, 0)]),)
                for c, t in zip(allowed, target)
            )

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
                nxt = allowed[f][allowed[f] > dims[f]]
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

    def search_composed(self, ctx: SearchContext, space: ComposedSpace) -> Plan:
        """The power rule on each field's bytes (module docstring)."""
        rows = np.asarray([f.cardinality for f in space.schema.fields], dtype=np.float64)
        full = np.asarray(
            [space.width * 4 * f.cardinality for f in space.schema.fields], dtype=np.float64
        )
        ladders = [_ladder(space, f) for f in range(space.num_fields)]

        def pick(share: np.ndarray) -> list[int]:
            """Per field, the ladder step of the most bytes within its share of its table."""
            out = []
            for lad, s, t in zip(ladders, share, full):
                i = int(np.searchsorted(lad[0], min(s, 1.0) * t, side="right")) - 1
                out.append(max(i, 0))
            return out

        def cand_of(steps: list[int]) -> tuple[tuple[int, ...], ...]:
            return tuple(lad[1][i] for lad, i in zip(ladders, steps))

        lo, hi = 0.0, float((rows.max() / rows.min()) ** float(self.config["alpha"])) + 1.0
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if space.bytes_of(cand_of(pick(self.target_dims(rows, mid)))) <= ctx.budget:
                lo = mid
            else:
                hi = mid
        target = np.minimum(self.target_dims(rows, lo), 1.0) * full
        steps = pick(self.target_dims(rows, lo))
        while True:  # step 4 on the ladders
            got = np.asarray([lad[0][i] for lad, i in zip(ladders, steps)], dtype=np.float64)
            upgraded = False
            for f in np.argsort(got / np.maximum(target, 1e-9), kind="stable"):
                if steps[f] + 1 >= len(ladders[f][0]):
                    continue
                trial = list(steps)
                trial[f] += 1
                if space.bytes_of(cand_of(trial)) <= ctx.budget:
                    steps, upgraded = trial, True
                    break
            if not upgraded:
                break
        return self.make_plan(
            ctx, cand_of(steps), extra={"alpha": self.config["alpha"], "lambda": lo}
        )


def _ladder(space: ComposedSpace, f: int) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """Field ``f``'s ladder (module docstring): for every distinct byte count the preferred
    option (more stored rows, then the larger dim, then more bits), ascending, keeping a step
    only when its (stored rows, dim, bits) is lexicographically greater than every cheaper
    kept step's; (bytes, keys)."""
    rows = space.schema.fields[f].cardinality
    best: dict[int, tuple[tuple[int, int, int], tuple[int, ...]]] = {}
    for keys in space.options(f):
        nbytes = space.field_cost(f, keys)
        opts = [space.option(f, g, k) for g, k in enumerate(keys)]
        rank = (
            sum(o.stored_rows(rows) for o in opts),
            sum(o.dim for o in opts),
            sum(BITS[o.precision] for o in opts),
        )
        if nbytes not in best or rank > best[nbytes][0]:
            best[nbytes] = (rank, keys)
    costs: list[int] = []
    for c in sorted(best):  # kept ranks ascend, so the last kept one is the greatest
        if not costs or best[c][0] > best[costs[-1]][0]:
            costs.append(c)
    return np.asarray(costs, dtype=np.float64), [best[c][1] for c in costs]
