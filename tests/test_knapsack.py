"""The exact multiple-choice knapsack and the shared discretisation of learned preferences."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embsearch.budget import parse_budget
from embsearch.controllers.discretise import (
    coverage,
    discretise,
    distance,
    drop_only_where_favoured,
    shortfall,
)
from embsearch.data.schema import FieldSpec, Schema
from embsearch.errors import BudgetError, ConfigError
from embsearch.search_spaces import FeatureDimsSpace, FieldDimsSpace, solve_mckp


def brute_force(costs, values, budget):
    """Best total value over every choice that fits, or None when none does."""
    best = None
    for choice in itertools.product(*(range(len(c)) for c in costs)):
        cost = sum(c[i] for c, i in zip(costs, choice))
        if cost <= budget:
            value = sum(v[i] for v, i in zip(values, choice))
            best = value if best is None else max(best, value)
    return best


units = st.lists(
    st.lists(
        st.tuples(st.integers(0, 60), st.floats(-5, 5, allow_nan=False)), min_size=1, max_size=4
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=150, deadline=None)
@given(units=units, budget=st.integers(0, 200))
def test_mckp_matches_brute_force_and_keeps_budget(units, budget):
    costs = [[c for c, _ in u] for u in units]
    values = [[v for _, v in u] for u in units]
    best = brute_force(costs, values, budget)
    if best is None:
        with pytest.raises(BudgetError):
            solve_mckp(costs, values, budget)
        return
    choice = solve_mckp(costs, values, budget)
    assert sum(c[i] for c, i in zip(costs, choice)) <= budget
    assert sum(v[i] for v, i in zip(values, choice)) == pytest.approx(best, abs=1e-9)


def test_mckp_infeasible_raises_budget_error():
    with pytest.raises(BudgetError, match="below the smallest plan .* at least 8"):
        solve_mckp([[5, 9], [3]], [[1.0, 2.0], [0.0]], 7)


@settings(max_examples=150, deadline=None)
@given(units=units, budget=st.integers(0, 200), banned=st.lists(st.booleans(), max_size=16))
def test_mckp_never_picks_an_option_valued_minus_inf(units, budget, banned):
    """``-inf`` marks a disallowed option: the answer is the brute-force best over the
    allowed options only (BudgetError when they cannot fit, or a unit has none)."""
    costs = [[c for c, _ in u] for u in units]
    flags = iter([*banned, *[False] * 16])
    values = [[-np.inf if next(flags) else v for _, v in u] for u in units]
    allowed = [[i for i, v in enumerate(vs) if v > -np.inf] for vs in values]
    best = None
    if all(allowed):
        best = brute_force(
            [[c[i] for i in a] for c, a in zip(costs, allowed)],
            [[v[i] for i in a] for v, a in zip(values, allowed)],
            budget,
        )
    if best is None:
        with pytest.raises(BudgetError):
            solve_mckp(costs, values, budget)
        return
    choice = solve_mckp(costs, values, budget)
    assert all(values[u][i] > -np.inf for u, i in enumerate(choice))
    assert sum(c[i] for c, i in zip(costs, choice)) <= budget
    assert sum(v[i] for v, i in zip(values, choice)) == pytest.approx(best, abs=1e-9)


def tiny_schema(cards=(9, 5, 13), seed=0) -> Schema:
    rng = np.random.default_rng(seed)
    fields = []
    for j, n in enumerate(cards):
        counts = np.sort(rng.integers(1, 50, size=n))[::-1].copy()  # ids ranked by frequency
        fields.append(FieldSpec(f"f{j}", n, counts))
    return Schema(fields)


def brute_force_space(space, preference, budget):
    idx = {c: i for i, c in enumerate(space.candidates)}
    best = None
    for cand in itertools.product(*(space.options(f) for f in range(space.num_fields))):
        if space.bytes_of(cand) <= budget:
            value = sum(
                preference[f][g, idx[d]] for f, dims in enumerate(cand) for g, d in enumerate(dims)
            )
            best = value if best is None else max(best, value)
    return best


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    frac=st.floats(0.05, 1.0),
    projection=st.sampled_from(["linear", "pad"]),
)
def test_best_under_budget_on_feature_dims_matches_brute_force(seed, frac, projection):
    space = FeatureDimsSpace(
        tiny_schema(seed=seed), width=4, candidates=(1, 2, 4), projection=projection, n_groups=2
    )
    rng = np.random.default_rng(seed)
    pref = [rng.normal(size=(len(g), 3)) for g in space.groups]
    budget = space.min_bytes() + int(
        frac * (space.bytes_of(space.max_candidate()) - space.min_bytes())
    )
    cand = space.best_under_budget(pref, budget)
    assert space.bytes_of(cand) <= budget
    idx = {c: i for i, c in enumerate(space.candidates)}
    value = sum(pref[f][g, idx[d]] for f, dims in enumerate(cand) for g, d in enumerate(dims))
    assert value == pytest.approx(brute_force_space(space, pref, budget), abs=1e-9)


def test_discretise_knapsack_fits_and_argmax_over_budget_raises():
    space = FieldDimsSpace(tiny_schema(), width=4, candidates=(1, 2, 4))
    pref = [np.log(np.array([[0.1, 0.2, 0.7]]))] * 3  # every field prefers dim 4
    full = space.bytes_of(space.max_candidate())
    assert discretise(space, pref, full, "argmax") == space.max_candidate()
    budget = full - 1
    cand = discretise(space, pref, budget, "knapsack")
    assert space.bytes_of(cand) <= budget
    with pytest.raises(BudgetError, match="argmax plan needs .* use discretise='knapsack'"):
        discretise(space, pref, budget, "argmax")


def test_discretise_rejects_bad_input():
    space = FieldDimsSpace(tiny_schema(), width=4, candidates=(1, 2, 4))
    pref = [np.zeros((1, 3))] * 3
    with pytest.raises(BudgetError, match="below the smallest plan .* raise --budget to at least"):
        discretise(space, pref, space.min_bytes() - 1)
    with pytest.raises(ConfigError, match="has shape"):
        discretise(space, [np.zeros((1, 2))] * 3, space.min_bytes())
    with pytest.raises(ConfigError, match="discretise must be one of"):
        discretise(space, pref, space.min_bytes(), "greedy")


def test_coverage_is_monotone_log_cdf():
    w = np.array([[0.5, 0.25, 0.25], [0.0, 0.0, 1.0]])
    c = coverage(w)
    assert np.all(np.diff(c, axis=1) >= 0)
    assert np.allclose(np.exp(c[0]), [0.5, 0.75, 1.0])
    assert c[1, -1] == pytest.approx(0.0) and c[1, 0] < -20


def test_shortfall_counts_expected_doublings_short_and_never_falls():
    cands = (0, 1, 3, 7)  # log2(d + 1) = 0, 1, 2, 3
    w = np.array([[0.0, 0.0, 0.0, 1.0], [0.5, 0.0, 0.5, 0.0], [0.25, 0.25, 0.25, 0.25]])
    v = shortfall(w, cands)
    assert np.allclose(v[0], [-3, -2, -1, 0])  # sure of 7: one unit per halving
    assert np.allclose(v[1], [-1, -0.5, 0, 0])  # never short once at the top of its support
    assert np.allclose(v[2], [-1.5, -0.75, -0.25, 0])
    assert np.all(np.diff(v, axis=1) >= 0)


def test_distance_counts_expected_doublings_either_way():
    cands = (0, 1, 3, 7)  # log2(d + 1) = 0, 1, 2, 3
    w = np.array([[0.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0], [0.5, 0.0, 0.5, 0.0]])
    v = distance(w, cands)
    assert np.allclose(v[0], [-3, -2, -1, 0])  # sure of 7: as shortfall
    assert np.allclose(v[1], [-1, 0, -1, -2])  # sure of 1: width beyond it costs too
    assert np.allclose(v[2], [-1, -1, -1, -2])  # a median anywhere in [0, 3]
    assert np.all(v <= shortfall(w, cands) + 1e-12)  # the excess only subtracts


def test_dim_zero_only_where_the_weights_favour_it():
    w = np.array([[0.6, 0.1, 0.3], [0.2, 0.1, 0.7]])
    v = drop_only_where_favoured(shortfall(w, (0, 2, 4)), w, (0, 2, 4))
    assert v[0, 0] > -np.inf and v[1, 0] == -np.inf and np.isfinite(v[:, 1:]).all()
    assert drop_only_where_favoured(np.zeros((2, 3)), w, (1, 2, 4)).min() == 0.0  # no dim 0
    tie = drop_only_where_favoured(np.zeros((1, 3)), np.full((1, 3), 1 / 3), (0, 2, 4))
    assert tie[0, 0] == -np.inf  # uniform (untrained) weights do not favour dropping
    # under a budget that fits only one field at dim 2, the favoured one is dropped and
    # the other keeps its smallest non-zero dim, however much more dropping it would save
    space = FieldDimsSpace(
        tiny_schema(cards=(40, 400)), width=4, candidates=(0, 2, 4), projection="pad"
    )
    budget = space.bytes_of(((0,), (2,)))
    pref = [drop_only_where_favoured(shortfall(x[None], (0, 2, 4)), x[None], (0, 2, 4)) for x in w]
    assert discretise(space, pref, budget) == ((0,), (2,))
    with pytest.raises(BudgetError, match="raise --budget to at least"):
        discretise(space, pref, budget - 1)


def test_space_rejects_candidate_above_width_and_budget_below_smallest():
    schema = tiny_schema()
    with pytest.raises(ConfigError, match=r"must lie in \[0, width=4\]"):
        FieldDimsSpace(schema, width=4, candidates=(2, 8))
    space = FieldDimsSpace(schema, width=4, candidates=(1, 2, 4))
    with pytest.raises(BudgetError, match="below the smallest plan"):
        space.resolve_budget(parse_budget(str(space.min_bytes() - 1)))


def test_every_budget_floor_reads_the_same():
    """The space, the knapsack, DARTS's discretisation and the evolution refuse a budget
    below their smallest plan through one check, with one wording."""
    from embsearch.controllers.evolution import Evolution, EvolutionConfig
    from embsearch.search_spaces.floor import check_fits

    check_fits(8, 8)  # exactly the smallest plan fits
    with pytest.raises(BudgetError, match=r"^rule: budget 7 B is below the smallest x, 8 B; "
                       r"raise --budget to at least 8 or else$"):  # fmt: skip
        check_fits(7, 8, what="x", prefix="rule: ", remedy=" or else")
    space = FieldDimsSpace(tiny_schema(), width=4, candidates=(1, 2, 4))
    low = space.min_bytes() - 1
    want = f"budget {low} B is below the smallest plan of the field_dims space"
    with pytest.raises(BudgetError, match=want):
        space.check_budget(low)
    with pytest.raises(BudgetError, match=want):
        Evolution(space, low, EvolutionConfig(), np.random.default_rng(0))
    with pytest.raises(
        BudgetError, match="below the smallest plan the values allow, 8 B; .* at least 8"
    ):
        solve_mckp([[5, 9], [3]], [[1.0, 2.0], [0.0]], 7)
