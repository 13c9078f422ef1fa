"""MDE's greedy fill (step 4, embsearch's addition to the paper's power-law rule) and its
ladder in composed spaces (embsearch's extension)."""

from __future__ import annotations

import numpy as np
import pytest

from embsearch.blocks import BITS
from embsearch.context import SearchContext
from embsearch.controllers.mde import MDE, _ladder
from embsearch.data.dataset import Dataset, Split
from embsearch.data.schema import FieldSpec, Schema
from embsearch.search_spaces import COMPOSED_SPACES, SPACES, FieldDimsSpace


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


def _composed_ctx(space_name: str, cards: list[int], frac: float) -> SearchContext:
    fields = [FieldSpec(f"f{i}", c, np.full(c, 5, dtype=np.int64)) for i, c in enumerate(cards)]
    space = SPACES[space_name](Schema(fields), width=16)
    x = np.zeros((4, len(cards)), dtype=np.int32)
    split = Split(x, np.array([0, 1, 0, 1], dtype=np.float32))
    budget = int(space.full_table_bytes() * frac)
    return SearchContext(
        Dataset(space.schema, split, split, split), space, [budget], log=lambda m: None
    )


def _rank(space, f: int, keys: tuple[int, ...]) -> tuple[int, int, int]:
    rows = space.schema.fields[f].cardinality
    opts = [space.option(f, g, k) for g, k in enumerate(keys)]
    return (
        sum(o.stored_rows(rows) for o in opts),
        sum(o.dim for o in opts),
        sum(BITS[o.precision] for o in opts),
    )


@pytest.mark.parametrize("space_name", COMPOSED_SPACES)
def test_composed_ladder_is_monotone_in_rows_then_dim_then_bits(space_name):
    """Every dearer step of a field's ladder stores more rows, or as many wider, or as wide
    with more bits (uniform's order), and the top step is the best option of the field. The
    old ladder (rows only) put row-wise int8 dim 4 (12 B a row) above int4c dim 16 (8 B a
    row), dim 8 with its projection above dim 16 without one, and MEmCom above the hash of
    as many rows."""
    space = _composed_ctx(space_name, [2000, 20, 30, 10], 0.25).space
    for f in range(space.num_fields):
        costs, keys = _ladder(space, f)
        ranks = [_rank(space, f, k) for k in keys]
        assert list(costs) == sorted(set(costs))
        assert all(a < b for a, b in zip(ranks, ranks[1:])), (f, ranks)
        assert ranks[-1] == max(_rank(space, f, k) for k in space.options(f))
        if "precision" in space.axes and f == 0:  # int8 at a small dim never above int4c wider
            labels = [space.option(f, 0, k[0]) for k in keys]
            for i, lo in enumerate(labels):
                for hi in labels[i + 1 :]:
                    if lo.precision == "int4c" and hi.precision == "int8":
                        assert hi.dim >= lo.dim or hi.stored_rows(2000) > lo.stored_rows(2000)


def test_hybrid_mde_serves_int4c_dim_16_where_the_rows_only_ladder_served_int8_dim_4():
    """talkingdata's case in small (one field of 2000 ids beside small ones, 25%): the
    rows-only ladder served the big field row-wise int8 dim 4 and fp32 dim 8 to the smallest;
    the lexicographic ladder serves int4c dim 16 (cheaper and wider) and fp32 dim 16
    elsewhere, within the budget."""
    ctx = _composed_ctx("field_dims+meta_table+precision", [2000, 20, 30, 10], 0.25)
    plan = MDE().search(ctx)
    blocks = [plan.block_spec(f, 0) for f in plan.fields]
    assert [(b.kind, b.precision, b.dim) for b in blocks] == [
        ("full", "int4c", 16),
        ("full", "fp32", 16),
        ("full", "fp32", 16),
        ("full", "fp32", 16),
    ]
    assert plan.table_bytes <= ctx.budget
