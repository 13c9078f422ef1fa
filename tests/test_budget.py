"""Budget parsing and exact byte accounting, by hand and by property."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embsearch.budget import field_bytes, parse_budget
from embsearch.context import SearchContext
from embsearch.controllers.registry import get_controller
from embsearch.data.dataset import Dataset, Split
from embsearch.data.schema import FieldSpec, Schema
from embsearch.errors import BudgetError, ConfigError
from embsearch.search_spaces import FeatureDimsSpace, FieldDimsSpace


@pytest.mark.parametrize(
    "text,nbytes",
    [
        ("250000", 250000),
        ("4MiB", 4 * 2**20),
        ("1.5MB", 1_500_000),
        ("500KiB", 512000),
        ("2 kb", 2000),
        ("1GiB", 2**30),
    ],
)
def test_parse_sizes(text, nbytes):
    assert parse_budget(text).resolve(10**12) == nbytes


def test_parse_percent():
    assert parse_budget("10%").resolve(1_000_000) == 100_000
    assert parse_budget("12.5%").resolve(800) == 100


@pytest.mark.parametrize("text", ["", "abc", "4XB", "-5", "0", "150%", "0%", "4 MiB MiB"])
def test_malformed_budgets(text):
    with pytest.raises(BudgetError):
        parse_budget(text)


def test_field_bytes_by_hand():
    # 100 rows x 8 dims + an 8x16 projection, fp32
    assert field_bytes([100], [8], 16) == (800 + 128) * 4
    # the width itself needs no projection
    assert field_bytes([100], [16], 16) == 1600 * 4
    # two groups with the same dim share one projection; a third dim adds its own
    assert field_bytes([10, 20, 30], [8, 8, 4], 16) == (80 + 160 + 120 + 8 * 16 + 4 * 16) * 4
    # zero padding has no projection; a dropped group (dim 0) costs nothing
    assert field_bytes([10, 20], [8, 0], 16, projection="pad") == 80 * 4
    assert field_bytes([100], [8], 16, precision="fp16") == (800 + 128) * 2


def _schema(cards):
    rng = np.random.default_rng(0)
    fields = []
    for i, c in enumerate(cards):
        counts = np.sort(rng.integers(1, 1000, c))[::-1].copy()
        fields.append(FieldSpec(f"f{i}", c, counts))
    return Schema(fields)


def _ctx(schema, space, budget):
    x = np.zeros((4, schema.num_fields), dtype=np.int32)
    split = Split(x, np.array([0, 1, 0, 1], dtype=np.float32))
    return SearchContext(Dataset(schema, split, split, split), space, [budget], log=lambda m: None)


def test_full_table_and_percent_budget_by_hand():
    schema = _schema([10, 100])
    space = FieldDimsSpace(schema, width=16)
    assert space.full_table_bytes() == (10 + 100) * 16 * 4
    assert space.resolve_budget(parse_budget("50%")) == 110 * 16 * 4 // 2


def test_infeasible_budget_names_smallest_plan():
    schema = _schema([1000, 2000])
    space = FieldDimsSpace(schema, width=16, candidates=[4, 8, 16])
    smallest = (1000 * 4 + 4 * 16 + 2000 * 4 + 4 * 16) * 4
    assert space.min_bytes() == smallest
    with pytest.raises(BudgetError, match=str(smallest)):
        space.resolve_budget(parse_budget(str(smallest - 1)))
    assert space.resolve_budget(parse_budget(str(smallest))) == smallest


def test_with_projection_counts_bytes_in_its_own_layout_and_leaves_the_original():
    schema = _schema([1000, 2000])
    space = FieldDimsSpace(schema, width=16, candidates=[4, 8, 16])
    cand = ((4,), (8,))
    linear = space.bytes_of(cand)  # fills the memo of the original
    padded = space.with_projection("pad")
    assert space.projection == "linear" and padded.projection == "pad"
    assert padded.bytes_of(cand) == (1000 * 4 + 2000 * 8) * 4
    assert linear == padded.bytes_of(cand) + (4 * 16 + 8 * 16) * 4  # the projections
    assert space.bytes_of(cand) == linear
    with pytest.raises(ConfigError, match="projection must be 'linear' or 'pad'"):
        space.with_projection("none")


@settings(max_examples=40, deadline=None)
@given(
    cards=st.lists(st.integers(1, 3000), min_size=1, max_size=8),
    frac=st.floats(0.02, 1.0),
    name=st.sampled_from(["uniform", "mde", "cprec"]),
    grouped=st.booleans(),
)
def test_rule_based_plans_never_exceed_budget(cards, frac, name, grouped):
    schema = _schema(cards)
    space = (
        FeatureDimsSpace(schema, width=16, n_groups=3)
        if grouped or name == "cprec"
        else FieldDimsSpace(schema, width=16)
    )
    budget = int(space.full_table_bytes() * frac)
    if budget < space.min_bytes():
        with pytest.raises(BudgetError):
            space.resolve_budget(parse_budget(str(budget)))
        return
    ctx = _ctx(schema, space, budget)
    cls = get_controller(name)
    if space.name not in cls.supported_spaces:
        return
    plan = cls().search(ctx)
    assert plan.table_bytes <= budget
    assert plan.table_bytes == sum(f.bytes for f in plan.fields)
    assert plan.table_bytes == space.bytes_of(space.from_plan(plan)) or name == "uniform"


@settings(max_examples=30, deadline=None)
@given(
    cards=st.lists(st.integers(1, 400), min_size=1, max_size=4),
    cands=st.sets(st.sampled_from([0, 1, 2, 4, 8, 16]), min_size=1, max_size=4),
    projection=st.sampled_from(["linear", "pad"]),
)
def test_min_bytes_is_the_cheapest_option(cards, cands, projection):
    space = FeatureDimsSpace(
        _schema(cards), width=16, candidates=sorted(cands), n_groups=2, projection=projection
    )
    brute = sum(
        min(space.field_cost(f, o) for o in space.options(f)) for f in range(space.num_fields)
    )
    assert space.min_bytes() == brute
