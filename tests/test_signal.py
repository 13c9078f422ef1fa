"""The null-signal check (issue 18, section 3): a learning controller's plan beside the plan
its own discretisation gives from an uninformative signal, recorded, checked and printed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embsearch.cli import main
from embsearch.controllers._signal import (
    LearnsSignal,
    candidate_of,
    null_agreement,
    signal_record,
    summary_lines,
)
from embsearch.controllers.autodim import AutoDim
from embsearch.controllers.autoemb import AutoEmb
from embsearch.controllers.dnis import DNIS
from embsearch.controllers.mde import MDE
from embsearch.testing import check_signal, make_test_context

pytestmark = pytest.mark.usefixtures("one_thread")


def test_null_agreement_is_the_share_of_equal_cells():
    assert null_agreement(((1, 2), (4,)), ((1, 4), (4,))) == pytest.approx(2 / 3)
    assert null_agreement(((0, 16),), ((0, 16),)) == 1.0
    with pytest.raises(ValueError, match="same fields and groups"):
        null_agreement(((1, 2),), ((1,),))


def test_record_and_summary_lines():
    record = signal_record(((1, 2), (4,)), ((1, 4), (4,)), "uniform architecture weights")
    assert record == {"null_agreement": 0.6667, "null_signal": "uniform architecture weights"}
    json.dumps(record, allow_nan=False)  # strict JSON
    assert signal_record(((1,),), None, "x")["null_agreement"] is None
    assert summary_lines({"signal": record, "provenance": "evolution"}) == [
        "signal: null agreement 0.67",
        "chosen by: evolution",
    ]
    assert summary_lines({"signal": {"null_agreement": None}}) == ["signal: null agreement n/a"]
    assert summary_lines({}) == []


def test_only_learning_controllers_take_part():
    for cls in (AutoDim, AutoEmb, DNIS):
        assert isinstance(cls(), LearnsSignal) and cls.null_signal
    assert not isinstance(MDE(), LearnsSignal)


def test_null_preference_is_the_learned_path_fed_uniform_weights():
    ctx = make_test_context(AutoEmb)
    ctrl = AutoEmb()
    space = ctrl.search_space(ctx)
    k = len(space.candidates)
    uniform = [np.full((len(g), k), 1.0 / k) for g in space.groups]
    for got, want in zip(ctrl.null_preference(space), ctrl.preference_of(uniform, space)):
        np.testing.assert_array_equal(got, want)
    # dim 0 is never favoured by uniform weights: no group of the null plan is dropped
    assert all(d > 0 for dims in ctrl.null_candidate(ctx, ctx.budgets[0]) for d in dims)


def test_a_controller_that_learned_nothing_agrees_with_its_null_plan():
    """Architecture steps too small to move the weights off uniform: the plan is the null
    plan, agreement 1 (what the record is for)."""
    ctx = make_test_context(AutoDim, budgets=("15%", "40%"))
    plans = AutoDim(arch_lr=1e-9).search_budgets(ctx)
    assert [p.extra["signal"]["null_agreement"] for p in plans] == [1.0, 1.0]


def test_dnis_null_is_the_frequency_fill():
    """DNIS fed zero learned value: the budget goes to the groups of most frequent ids."""
    ctx = make_test_context(DNIS, budgets=("30%",))
    ctrl = DNIS()
    cand = ctrl.null_candidate(ctx, ctx.budgets[0])
    space = ctrl.search_space(ctx)
    assert ctx.budgets[0] - space.bytes_of(cand) < ctx.budgets[0] // 10
    for f, dims in enumerate(cand):
        counts = space.schema.fields[f].frequencies()
        per_id = [counts[a:b].mean() for a, b in space.groups[f]]
        by_frequency = [d for _, d in sorted(zip(per_id, dims), reverse=True)]
        assert by_frequency == sorted(dims, reverse=True), (f, per_id, dims)


def test_check_signal_recomputes_the_record_and_catches_a_wrong_one():
    ctx = make_test_context(AutoDim, budgets=("15%", "40%"))
    ctrl = AutoDim()
    plans = ctrl.search_budgets(ctx)
    report = check_signal(ctrl, ctx, plans)
    assert report["null_signal"] == "uniform architecture weights"
    assert report["null_agreement"] == pytest.approx(
        [p.extra["signal"]["null_agreement"] for p in plans], abs=1e-3
    )
    shares = [
        null_agreement(candidate_of(p), ctrl.null_candidate(ctx, b))
        for p, b in zip(plans, ctx.budgets)
    ]
    assert report["null_agreement"] == shares
    plans[0].extra["signal"]["null_agreement"] = shares[0] + (0.25 if shares[0] < 0.5 else -0.25)
    with pytest.raises(AssertionError, match="recorded null agreement"):
        check_signal(ctrl, ctx, plans)
    del plans[0].extra["signal"]
    with pytest.raises(AssertionError, match="missing"):
        check_signal(ctrl, ctx, plans)
    plans[0].extra["provenance"] = "evolution"
    with pytest.raises(AssertionError, match="provenance"):
        check_signal(MDE(), ctx, plans)  # recorded in one plan, not in the other


def test_plan_json_and_search_summary_carry_the_signal(tmp_path, capsys, monkeypatch):
    from embsearch import run_config

    monkeypatch.setattr(run_config.RunConfig, "synthetic_rows", 6000)
    out = tmp_path / "run"
    argv = ["search", "--data", "synthetic", "--budget", "25%", "--controller", "autodim"]
    assert main([*argv, "--epochs", "1", "--batch-size", "1024", "--out", str(out)]) == 0
    plan = json.loads((out / "plan.json").read_text())
    share = plan["extra"]["signal"]["null_agreement"]
    assert 0.0 <= share <= 1.0
    assert plan["extra"]["signal"]["null_signal"] == "uniform architecture weights"
    assert f"  signal: null agreement {share:.2f}\n" in capsys.readouterr().out
