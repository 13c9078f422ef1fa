"""Composed spaces (issue 21 item 2): the generic candidate, its bytes, knapsack and repair."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embsearch.blocks import BlockSpec
from embsearch.data.schema import FieldSpec, Schema
from embsearch.errors import BudgetError, ConfigError
from embsearch.plan import Plan
from embsearch.search_spaces import COMPOSED_SPACES, SPACES, BlockOption, FieldDimsSpace
from embsearch.search_spaces.composed import meta_ladder

NAMES = sorted(COMPOSED_SPACES)


def schema_of(cards, seed=0) -> Schema:
    rng = np.random.default_rng(seed)
    fields = []
    for j, n in enumerate(cards):
        counts = np.sort(rng.integers(1, 50, size=n))[::-1].copy()
        fields.append(FieldSpec(f"f{j}", n, counts))
    return Schema(fields)


def test_every_composed_space_is_registered():
    assert set(NAMES) == {
        "field_dims+meta_table",
        "field_dims+precision",
        "field_dims+meta_table+precision",
        "meta_table",
        "precision",
    }
    assert all(SPACES[n] is COMPOSED_SPACES[n] for n in NAMES)


def test_meta_ladder_never_offers_invalid_blocks():
    assert meta_ladder(1) == [("full", 0)]
    assert meta_ladder(2) == [("full", 0)]  # m would be 1: every id on one row
    ladder = meta_ladder(1000)
    assert ladder[0] == ("full", 0)
    ms = [s for k, s in ladder if k == "hash"]
    assert ms == [500, 250, 125, 63, 32, 16, 8, 4, 2]
    assert [s for k, s in ladder if k == "qr"] == [2, 4, 8, 16, 32]  # c <= ceil(sqrt(1000))
    for cards in (3, 7, 64, 1000):
        space = COMPOSED_SPACES["meta_table"](schema_of([cards]), width=4)
        for opt in space.block_options(0, 0):
            space.block_spec(0, 0, space.key_of(0, 0, opt)).check()  # refuses bad blocks


def test_option_bytes_are_the_block_spec_bytes():
    space = COMPOSED_SPACES["field_dims+meta_table+precision"](
        schema_of([1000]), width=8, candidates=(2, 8), projection="pad"
    )
    opt = BlockOption(8, "qr", 32, "int8")
    key = space.key_of(0, 0, opt)
    # quotient 32 x 8 and remainder 32 x 8 uint8 codes + fp32 scale and offset per row
    assert space.field_cost(0, (key,)) == (32 * 8 + 32 * 8) + (32 + 32) * 8
    assert space.field_cost(0, (space.key_of(0, 0, BlockOption(8)),)) == 1000 * 8 * 4
    with pytest.raises(ConfigError, match="not an option"):
        space.key_of(0, 0, BlockOption(8, "hash", 999, "fp32"))


def test_precision_space_refuses_a_fixed_precision():
    with pytest.raises(ConfigError, match="searches it"):
        COMPOSED_SPACES["field_dims+precision"](schema_of([9]), precision="fp16")
    # the meta_table space takes one: every block at it
    space = COMPOSED_SPACES["meta_table"](schema_of([9, 30]), width=4, precision="fp16")
    assert {o.precision for f in range(2) for o in space.block_options(f, 0)} == {"fp16"}


def test_a_budget_no_option_mix_meets_names_the_smallest_over_all_axes():
    space = COMPOSED_SPACES["field_dims+meta_table+precision"](schema_of([1000, 500]), width=8)
    smallest = space.min_bytes()
    # brute force over the two fields' options
    brute = min(space.field_cost(0, o) for o in space.options(0)) + min(
        space.field_cost(1, o) for o in space.options(1)
    )
    assert smallest == brute
    assert smallest < FieldDimsSpace(schema_of([1000, 500]), width=8).min_bytes()
    with pytest.raises(BudgetError, match=f"smallest plan of the .* space.*{smallest}"):
        space.check_budget(smallest - 1)


@settings(max_examples=30, deadline=None)
@given(
    cards=st.lists(st.integers(1, 3000), min_size=1, max_size=4),
    name=st.sampled_from(NAMES),
    frac=st.floats(0.0, 1.0),
    seed=st.integers(0, 1000),
    projection=st.sampled_from(["linear", "pad"]),
)
def test_sample_repair_knapsack_never_over_budget(cards, name, frac, seed, projection):
    space = COMPOSED_SPACES[name](schema_of(cards, seed), width=8, projection=projection)
    lo, hi = space.min_bytes(), space.bytes_of(space.max_candidate())
    budget = lo + int(frac * max(hi - lo, 0))
    rng = np.random.default_rng(seed)
    for _ in range(3):
        cand = space.sample(rng)
        space.validate(cand)
        fixed = space.repair(cand, budget)
        assert space.bytes_of(fixed) <= budget
        if space.bytes_of(cand) <= budget:
            assert fixed == cand
        plan = space.to_plan(fixed, "test", budget)
        assert plan.table_bytes == space.bytes_of(fixed) <= budget
        # dims_of and the plan agree; the plan maps back to the candidate
        assert space.dims_of(fixed) == tuple(tuple(f.dims) for f in plan.fields)
        assert space.candidate_of(plan) == fixed
        assert space.candidate_of(Plan.from_json(plan.to_json())) == fixed
    pref = [
        [rng.normal(size=len(space.block_keys(f, g))) for g in range(len(gs))]
        for f, gs in enumerate(space.groups)
    ]
    best = space.best_under_budget(pref, budget)
    assert space.bytes_of(best) <= budget


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000), frac=st.floats(0.0, 1.0))
def test_knapsack_matches_brute_force(seed, frac):
    space = COMPOSED_SPACES["field_dims+meta_table"](
        schema_of([40, 9], seed), width=4, candidates=(1, 4)
    )
    lo, hi = space.min_bytes(), space.bytes_of(space.max_candidate())
    budget = lo + int(frac * (hi - lo))
    rng = np.random.default_rng(seed)
    pref = [[rng.normal(size=len(space.block_keys(f, 0)))] for f in range(2)]
    best = space.best_under_budget(pref, budget)
    value = sum(pref[f][0][k[0]] for f, k in enumerate(best))
    brute = max(
        pref[0][0][a] + pref[1][0][b]
        for a, b in itertools.product(space.block_keys(0, 0), space.block_keys(1, 0))
        if space.field_cost(0, (a,)) + space.field_cost(1, (b,)) <= budget
    )
    assert value == pytest.approx(brute)


def test_all_full_fp32_plan_is_format_1():
    space = COMPOSED_SPACES["field_dims+meta_table+precision"](schema_of([50, 9]), width=4)
    plan = space.to_plan(space.max_candidate(), "test", 10**9)
    assert plan.format == "embsearch.plan/1"
    assert plan.precision == "fp32"
    hashed = space.key_of(0, 0, BlockOption(4, "hash", 25, "int8"))
    plan = space.to_plan(((hashed,), space.max_candidate()[1]), "test", 10**9)
    assert plan.format == "embsearch.plan/2"
    assert plan.block_spec(plan.fields[0], 0).kind == "hash"
    assert plan.block_spec(plan.fields[0], 0).precision == "int8"
    assert isinstance(plan.block_spec(plan.fields[1], 0), BlockSpec)


def test_dims_only_spaces_keep_dims_as_keys():
    space = FieldDimsSpace(schema_of([9, 30]), width=4, candidates=(1, 2, 4))
    assert space.block_keys(0, 0) == (1, 2, 4)
    cand = ((2,), (4,))
    assert space.dims_of(cand) == cand
    assert space.block_spec(1, 0, 4) == BlockSpec("full", 30, 4, "fp32")


@pytest.mark.parametrize("name", NAMES)
def test_axis_values_name_every_option_once(name):
    space = COMPOSED_SPACES[name](schema_of([1000, 3, 40]), width=8, candidates=(0, 2, 8))
    for f in range(space.num_fields):
        keys = space.block_keys(f, 0)
        for k in keys:  # every option is reachable from its axis values and back
            assert space.key_from_axes(f, 0, space.axes_of_key(f, 0, k)) == k
        values = space.axis_values(f, 0)
        for combo in itertools.product(*values.values()):
            k = space.key_from_axes(f, 0, dict(zip(values, combo)))
            assert 0 <= k < len(keys)
    rng = np.random.default_rng(0)
    draws = [space.sample(rng) for _ in range(200)]
    if "meta_table" in space.axes:  # each axis drawn alone: full rows about one draw in four
        opts = [space.option(0, 0, d[0][0]) for d in draws]
        full = np.mean([o.kind == "full" for o in opts if o.dim > 0])
        assert 0.15 < full < 0.4
