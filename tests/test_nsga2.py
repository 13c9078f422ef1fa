"""``nsga2``: a Pareto front of (inherited validation AUC, bytes) in which no plan dominates
another and none is over the budget; the run's plan is the front's best AUC; the runner
writes the front under ``front/``."""

from __future__ import annotations

import json

import pytest

from embsearch.context import SearchContext
from embsearch.controllers.nsga2 import NSGA2
from embsearch.controllers.registry import get_controller
from embsearch.run_config import RunConfig
from embsearch.run_dir import load_run
from embsearch.search import run_search
from embsearch.search_spaces import FeatureDimsSpace, FieldDimsSpace
from embsearch.testing import check_controller, check_plan, small_dataset
from embsearch.train import TrainConfig

FAST = {"trials": 24, "population_size": 6, "supernet_epochs": 1}

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small():
    return small_dataset()


def dominates(a: tuple[float, int], b: tuple[float, int]) -> bool:
    """``a`` (AUC, bytes) is at least as good as ``b`` in both and better in one."""
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def test_registered_and_conform():
    assert get_controller("nsga2") is NSGA2 and NSGA2.family == "black-box"
    report = check_controller(NSGA2, {"trials": 12, "population_size": 4, "supernet_epochs": 1})
    assert report["provenance"] == ["nsga2", "nsga2"]


@pytest.mark.parametrize("space_cls", [FieldDimsSpace, FeatureDimsSpace])
@pytest.mark.parametrize("seed", [0, 1])
def test_front_is_non_dominated_and_within_the_budget(small, space_cls, seed):
    space = space_cls(small.schema, 16)
    budgets = sorted(int(space.full_table_bytes() * f) for f in (0.1, 0.4))
    cfg = TrainConfig(epochs=1, batch_size=1024, progress=False)
    ctx = SearchContext(small, space, budgets, train=cfg, seed=seed, log=lambda m: None)
    ctrl = NSGA2(**FAST)
    plans = ctrl.search_budgets(ctx)
    for plan, budget in zip(plans, budgets):
        check_plan(plan, ctx, budget)
        front = ctrl.front_plans(budget)
        points = [(p.extra["inherited_val_auc"], p.table_bytes) for p in front]
        assert front and all(b <= budget for _, b in points)
        for p in front:
            check_plan(p, ctx, budget)
        for i, a in enumerate(points):
            assert not any(dominates(b, a) for j, b in enumerate(points) if j != i), points
        # the run's plan: the front's best AUC, and no scored trial beats that AUC
        assert plan.field_dims == front[0].field_dims
        assert plan.extra["inherited_val_auc"] == max(a for a, _ in points)
        assert [f["bytes"] for f in plan.extra["front"]] == [b for _, b in points]
    scored = [t.values[0] for t in ctrl.state.study.get_trials(deepcopy=False) if t.values]
    assert max(scored) == plans[-1].extra["inherited_val_auc"]


def test_runner_writes_the_front(tmp_path):
    cfg = RunConfig(
        data="synthetic", synthetic_rows=4000, budgets=["20%"], controller="nsga2",
        controller_params=FAST, epochs=1, batch_size=1024, threads=1,
    )  # fmt: skip
    out = tmp_path / "run"
    (result,) = run_search(cfg, out, progress=False)
    summary = json.loads((out / "front.json").read_text())
    assert summary["points"] and summary["points"][0]["main"]
    for point in summary["points"]:
        _, plan, _ = load_run(out / point["dir"], weights=False)  # retrain/export can read it
        assert plan.table_bytes == point["bytes"] <= result.plan.budget_bytes
    assert load_run(out / summary["points"][0]["dir"], weights=False)[1].field_dims == (
        result.plan.field_dims
    )
