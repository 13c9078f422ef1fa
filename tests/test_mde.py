"""MDE's greedy fill (step 4, embsearch's addition to the paper's power-law rule)."""

from __future__ import annotations

import numpy as np

from embsearch.context import SearchContext
from embsearch.controllers.mde import MDE
from embsearch.data.dataset import Dataset, Split
from embsearch.data.schema import FieldSpec, Schema
from embsearch.search_spaces import FieldDimsSpace


def _ctx(cards: list[int], frac: float) -> tuple[SearchContext, FieldDimsSpace]:
    fields = [FieldSpec(f"f{i}", c, np.full(c, 5, dtype=np.int64)) for i, c in enumerate(cards)]
    schema = Schema(fields)
    space = FieldDimsSpace(schema, width=16, projection="pad")
    x = np.zeros((4, len(cards)), dtype=np.int32)
    split = Split(x, np.array([0, 1, 0, 1], dtype=np.float32))
    budget = int(space.full_table_bytes() * frac)
    ctx = SearchContext(Dataset(schema, split, split, split), space, [budget], log=lambda m: None)
    return ctx, space


def test_greedy_fill_passes_over_a_field_whose_upgrade_does_not_fit():
    """The fill upgrades the field furthest below its target *among those whose upgrade
    fits*, until none fits: the plan is maximal (no single upgrade fits), and somewhere in
    this sweep the field furthest below its target is left behind while others grow (the
    docstring said it was always that field)."""
    cards = [5000, 800, 300, 60, 20, 7]
    passed_over = 0
    for frac in np.linspace(0.07, 0.9, 15):
        ctx, space = _ctx(cards, float(frac))
        plan = MDE().search(ctx)
        dims = [f.groups[0].dim for f in plan.fields]
        assert plan.table_bytes <= ctx.budget
        cands = np.asarray(space.candidates)
        fits = []
        for f, d in enumerate(dims):
            nxt = cands[cands > d]
            trial = list(dims)
            if len(nxt):
                trial[f] = int(nxt[0])
                fits.append(space.bytes_of(tuple((x,) for x in trial)) <= ctx.budget)
            else:
                fits.append(False)
        assert not any(fits), (frac, dims)  # maximal: nothing more fits
        mde = MDE()
        target = mde.target_dims(np.asarray(cards, dtype=np.float64), plan.extra["lambda"])
        ratio = np.asarray(dims) / target
        upgradable = [f for f, d in enumerate(dims) if d < cands[-1]]
        if upgradable and int(np.argmin(ratio)) in upgradable:
            snapped = [int(cands[cands <= t].max()) if (cands <= t).any() else int(cands[0])
                       for t in target]  # fmt: skip
            grown = [f for f, (d, s) in enumerate(zip(dims, snapped)) if d > s]
            passed_over += bool(grown) and int(np.argmin(ratio)) not in grown
    assert passed_over > 0
