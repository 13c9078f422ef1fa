"""OptEmbed's ``composed_min_gain`` (issue 21, an extension): in a composed space with a row
or precision axis the uniform gate serves the evolution's pick only when it beats
``uniform``'s plan by more than the SE margin *and* by at least ``composed_min_gain`` proxy
AUC; dims-only spaces keep the SE margin alone."""

from __future__ import annotations

from dataclasses import replace

import pytest

from embsearch.controllers.optembed import OptEmbed
from embsearch.controllers.optembed_gate import gate_note, min_gain_of
from embsearch.controllers.uniform import Uniform
from embsearch.search_spaces import SPACES
from embsearch.testing import check_plan, make_test_context, small_dataset

TINY = {"population": 4, "generations": 0, "top_k": 2}
HYBRID = "field_dims+meta_table+precision"


def test_min_gain_applies_only_with_a_row_or_precision_axis():
    """The floor is ``None`` (the SE margin alone, as before) in the dims-only space and in a
    composed space without a row or precision axis; the parameter's default is 0.005."""
    schema = small_dataset().schema
    assert OptEmbed().config["composed_min_gain"] == 0.005
    assert min_gain_of(SPACES["field_dims"](schema, 16), 0.005) is None
    for name in (HYBRID, "field_dims+precision", "field_dims+meta_table", "meta_table"):
        assert min_gain_of(SPACES[name](schema, 16), 0.005) == 0.005, name
    below_floor = {
        "pick_val_auc": 0.9248,
        "uniform_val_auc": 0.9229,
        "difference_se": 0.0005,
        "margin_se": 2.0,
        "min_gain": 0.005,
    }
    assert "less than composed_min_gain (0.005" in gate_note(below_floor)
    assert "not more than 2 standard errors" in gate_note({**below_floor, "difference_se": 0.001})


@pytest.mark.planted
def test_pick_above_the_se_margin_but_below_the_gain_is_not_served():
    """Hybrid space, 10%, seed 0, ``uniform_margin=0.1``: the pick beats uniform's plan on
    the proxy by 0.0047 AUC with a paired SE of 0.021, so it passes the SE margin (0.0021,
    a 2.2x margin) and the old gate served it; it is below ``composed_min_gain=0.01`` (a
    2.1x margin), so uniform's plan is served, and the record says why."""
    # the precisions as the test was calibrated (before int8c/int4c joined the axis)
    old = {f.name: {"precisions": "fp32,fp16,int8"} for f in small_dataset().schema.fields}
    ctx = make_test_context(OptEmbed, ("10%",), space=HYBRID, seed=0, constraints=old)
    ctx = replace(ctx, space=ctx.space.with_projection("pad"))
    c = OptEmbed(uniform_margin=0.1, composed_min_gain=0.01, **TINY)
    (plan,) = c.search_budgets(ctx)
    m = plan.extra["uniform_margin"]
    gain = m["pick_val_auc"] - m["uniform_val_auc"]
    assert m["min_gain"] == 0.01
    assert 1.5 * m["margin_se"] * m["difference_se"] < gain < m["min_gain"] / 1.5, m
    assert m["returned"] == "uniform" and plan.extra["provenance"] == "uniform gate"
    ref = Uniform().search(ctx)
    assert (plan.fields, plan.width) == (ref.fields, ref.width)
    assert any("composed_min_gain" in n for n in plan.notes), plan.notes
    check_plan(plan, ctx, ctx.budget)
