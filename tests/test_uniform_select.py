"""``uniform``'s ``select="val"`` (embsearch's extension, issue 21): the rule proposes a few
uniform settings of a composed space, each is trained, the best validation AUC wins."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from embsearch.context import SearchContext
from embsearch.controllers.uniform import Uniform, axis_settings, uniform_choice
from embsearch.controllers.uniform_select import SelectMemo, select_by_validation
from embsearch.errors import BudgetError, ConfigError
from embsearch.run_config import RunConfig
from embsearch.search import load_dataset, load_run, make_context, run_search
from embsearch.search_spaces import COMPOSED_SPACES
from embsearch.testing import make_test_context
from embsearch.train.metrics import roc_auc
from embsearch.train.trainer import TrainResult, evaluate
from tests.test_composed_spaces import schema_of

HYBRID = "field_dims+meta_table+precision"


def _settings(space, budget):
    return [
        (label, {(o.kind, o.precision, o.dim) for o in _options(narrow, cand)})
        for label, narrow, cand in axis_settings(space, budget)
    ]


def _options(narrow, cand):
    return [narrow.option(f, g, k) for f, keys in enumerate(cand) for g, k in enumerate(keys)]


def test_the_proposals_are_the_rule_then_each_precision_then_each_single_axis():
    # two fields of 900 and 100 ids at width 16: 10% of the fp32 table is 6400 B, 6.4 B an id
    space = COMPOSED_SPACES[HYBRID](schema_of([900, 100]), width=16)
    budget = int(0.10 * space.full_table_bytes())
    got = axis_settings(space, budget)
    labels = [label for label, _, _ in got]
    # the rule's setting first (int4c dim 12, as uniform_choice), each setting once
    rule_space, rule_cand = uniform_choice(space, budget)
    assert (got[0][1].width, got[0][2]) == (rule_space.width, rule_cand)
    assert labels[0] == "int4c dim 12"
    assert len({(n.width, c) for _, n, c in got}) == len(got)
    # the rule within fp32 (the dims axis' setting too: full rows, dim 1), fp16 and int8c
    assert {"fp32 dim 1", "fp16 dim 3", "int8c dim 6"} <= set(labels)
    # the rows axis' setting: fp32 at the width, hashed (the least hashing that fits)
    assert any(label.startswith("fp32 dim 16, rows hashed to 1/") for label in labels)
    for _, narrow, cand in got:
        assert narrow.bytes_of(cand) <= budget
        kinds = {o.kind for o in _options(narrow, cand)}
        assert kinds <= {"full", "hash"}
        assert len({(o.precision, o.dim) for o in _options(narrow, cand)}) == 1  # uniform


def test_a_precision_no_setting_of_fits_is_left_out_and_the_full_table_is_alone():
    space = COMPOSED_SPACES["field_dims+precision"](schema_of([900, 100]), width=16)
    full = space.full_table_bytes()
    # 2% of fp32 dim 16 = 1.28 B an id: only int4c dim 2 (1 B an id + columns) is near it;
    # without a rows axis, fp32 / fp16 / int8 hold no dim >= 1
    got = _settings(space, int(0.02 * full))
    assert all(p in ("int4c", "int8c") for _, s in got for _, p, _ in s)
    only = axis_settings(space, full)
    assert [label for label, _, _ in only] == ["fp32 dim 16"]
    with pytest.raises(BudgetError, match="raise --budget"):
        axis_settings(space, 10)


def _fake_training(scores: dict[str, float], calls: list[str]):
    """SearchContext.train_plan replaced: a plan's validation AUC from its setting's label
    (its one (precision, dim) and whether it hashes), each call counted."""

    def train_plan(self, plan, desc="retrain"):
        spec = plan.block_spec(plan.fields[0], 0)
        label = f"{spec.precision} dim {spec.dim}" + (" hashed" if spec.kind == "hash" else "")
        calls.append(label)
        auc = scores.get(label, 0.5)
        result = TrainResult(val_auc=auc, val_logloss=0.6, best_epoch=1, epochs_run=1, seconds=0.0)
        return self.build_model(plan), result

    return train_plan


def test_the_best_validation_auc_wins_and_every_score_is_recorded(monkeypatch):
    ctx = make_test_context(Uniform, ("10%",), space=HYBRID)
    calls: list[str] = []
    scores = {"fp32 dim 1": 0.80, "int8c dim 6": 0.79}
    monkeypatch.setattr(SearchContext, "train_plan", _fake_training(scores, calls))
    rule = Uniform().search(ctx)
    assert "select" not in rule.extra and not calls  # the default: the rule, no training
    plan = Uniform(select="val", select_margin=0).search(ctx)  # the margin: tests below
    record = plan.extra["select"]
    assert (
        "margin" not in record
        and record["chosen"].startswith("fp32 dim 1")
        and plan.fields[0].dims == [1]
    )
    assert len(calls) == len(record["settings"]) >= 4  # each proposal trained once
    assert [s["val_auc"] for s in record["settings"]].count(0.80) == 1
    # the winner trained for the run's epochs: its weights and metrics go to the runner
    assert plan.weights is not None and plan.metrics["val_auc"] == 0.80
    # ties go to the first proposal, the rule's
    calls.clear()
    monkeypatch.setattr(SearchContext, "train_plan", _fake_training({}, calls))
    tied = Uniform(select="val").search(ctx)
    assert tied.extra["select"]["chosen"] == record["settings"][0]["setting"]
    assert [f.dims for f in tied.fields] == [f.dims for f in rule.fields]


def test_budgets_share_their_scores_and_fewer_epochs_hand_no_weights(monkeypatch):
    ctx = make_test_context(Uniform, ("10%", "12%"), space=HYBRID, epochs=2)
    calls: list[str] = []
    monkeypatch.setattr(SearchContext, "train_plan", _fake_training({}, calls))
    plans = Uniform(select="val", select_epochs=1).search_budgets(ctx)
    proposed = sum(len(p.extra["select"]["settings"]) for p in plans)
    assert len(calls) < proposed  # a setting both budgets propose trained once
    assert all(p.weights is None and "val_auc" not in p.metrics for p in plans)


def test_a_search_past_its_deadline_trains_no_more_proposals(monkeypatch):
    ctx = replace(make_test_context(Uniform, ("10%",), space=HYBRID), max_seconds=0.0)
    calls: list[str] = []
    monkeypatch.setattr(SearchContext, "train_plan", _fake_training({}, calls))
    plan = Uniform(select="val").search_budgets(ctx)[0]
    assert not calls and all("skipped" in s for s in plan.extra["select"]["settings"])
    assert plan.weights is None  # the rule's plan, trained by the runner


def test_in_a_dims_only_space_there_is_one_setting_and_no_training(monkeypatch):
    ctx = make_test_context(Uniform, ("25%",))
    calls: list[str] = []
    monkeypatch.setattr(SearchContext, "train_plan", _fake_training({}, calls))
    plan = Uniform(select="val").search(ctx)
    assert not calls and "select" not in plan.extra
    assert plan.fields == Uniform().search(ctx).fields


def test_the_handed_weights_are_the_final_training_s():
    """Trained for the run's epochs with the run's seed, the winner's weights are what the
    runner's own training of the plan gives: the same validation AUC, the same weights."""
    ctx = make_test_context(Uniform, ("10%",), space="field_dims+precision", epochs=1)
    narrow, cand = uniform_choice(ctx.space, ctx.budget)
    plan = narrow.to_plan(cand, "uniform", ctx.budget)
    chosen = select_by_validation(ctx, [("rule", "k", plan)], 1, SelectMemo())
    assert chosen.best == 0 and chosen.trained is not None
    weights, result = chosen.trained
    model, again = ctx.train_plan(plan)
    assert again.val_auc == result.val_auc == chosen.records[0]["val_auc"]
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())


def _margin_case(monkeypatch, paired: bool):
    """Two proposals on the test context's validation rows, the rule (``a``) and a challenger
    (``b``), with planted predictions: the rule's are noise; the challenger's add a small
    step at the positives to the rule's own noise (``paired``) or to fresh noise. Their
    validation AUCs are those of the predictions."""
    ctx = make_test_context(Uniform, ("10%",), space=HYBRID)
    y = ctx.data.split("val").y.cpu().numpy()
    rng = np.random.default_rng(0)
    noise = rng.random(len(y))
    planted = {"a": noise, "b": 0.03 * y + (noise if paired else rng.random(len(y)))}
    calls: list[str] = []
    narrow, cand = uniform_choice(ctx.space, ctx.budget)
    plan = narrow.to_plan(cand, "uniform", ctx.budget)

    def train_plan(self, plan, desc="retrain"):
        key = desc.rsplit(" ", 1)[-1]
        calls.append(key)
        auc = roc_auc(y, planted[key])
        model = torch.nn.Linear(1, 1)
        model.planted = planted[key]  # what the replaced predict() returns
        return model, TrainResult(auc, 0.6, best_epoch=1, epochs_run=1, seconds=0.0)

    monkeypatch.setattr(SearchContext, "train_plan", train_plan)
    monkeypatch.setattr(
        "embsearch.controllers.uniform_select.predict", lambda model, split, bs: model.planted
    )
    return ctx, [("a", "a", plan), ("b", "b", plan)], calls


def test_the_rule_is_kept_unless_the_best_beats_it_by_the_paired_margin(monkeypatch):
    # fresh noise: the challenger's higher validation AUC is inside the noise of the rows
    ctx, proposals, _ = _margin_case(monkeypatch, paired=False)
    lines: list[str] = []
    ctx = replace(ctx, log=lines.append)
    kept = select_by_validation(ctx, proposals, 1, SelectMemo(), margin_se=2.0)
    gain, se = kept.margin["val_auc_gain"], kept.margin["se"]
    assert kept.records[1]["val_auc"] > kept.records[0]["val_auc"]
    assert kept.best == 0 and kept.margin["returned"] == "incumbent" and 0 < gain < 2 * se
    assert kept.margin["challenger"] == "b" and kept.margin["incumbent"] == "a"
    json.dumps(kept.margin, allow_nan=False)  # strict JSON
    assert any(line.endswith("within the margin, a kept") for line in lines)  # progress
    # margin 0: the best validation AUC, whatever its margin
    assert select_by_validation(ctx, proposals, 1, SelectMemo(), margin_se=0.0).best == 1
    # the same step on the rule's own noise: every pair it reorders favours the challenger,
    # so the paired difference's SE is small and the challenger wins
    ctx, proposals, calls = _margin_case(monkeypatch, paired=True)
    memo = SelectMemo()
    won = select_by_validation(ctx, proposals, 1, memo, margin_se=2.0)
    assert won.best == 1 and won.margin["returned"] == "challenger"
    assert won.margin["val_auc_gain"] > 2.0 * won.margin["se"] > 0
    # a second budget proposing the same plans trains nothing and runs the same test
    again = select_by_validation(ctx, proposals, 1, memo, margin_se=2.0)
    assert calls == ["a", "b"] and again.best == 1 and again.margin == won.margin


def test_the_kept_rule_hands_its_own_weights(monkeypatch):
    ctx, proposals, _ = _margin_case(monkeypatch, paired=False)
    kept = select_by_validation(ctx, proposals, ctx.train.epochs, SelectMemo(), margin_se=2.0)
    assert kept.best == 0 and kept.trained is not None
    assert kept.trained[1].val_auc == kept.records[0]["val_auc"]  # the rule's training
    assert kept.trained[1].val_auc < kept.records[1]["val_auc"]


@pytest.mark.parametrize(
    "params", [{"select": "best"}, {"select_epochs": 0}, {"select_margin": -1}]
)
def test_bad_parameters_are_one_line(params):
    with pytest.raises(ConfigError) as err:
        Uniform(**params)
    assert "\n" not in str(err.value)


def test_the_runner_saves_the_winner_without_training_it_again(tmp_path):
    cfg = RunConfig(
        data="synthetic",
        budgets=["10%"],
        controller="uniform",
        space="field_dims+precision",
        epochs=1,
        controller_params={"select": "val"},
    )
    run_search(cfg, tmp_path / "run", progress=False)
    run_cfg, plan, state = load_run(tmp_path / "run")
    search = json.loads((tmp_path / "run" / "search.json").read_text())
    assert plan.extra["trained"] and search["train_seconds"] is None  # no final training
    chosen = [
        s
        for s in plan.extra["select"]["settings"]
        if s["setting"] == plan.extra["select"]["chosen"]
    ]
    assert plan.metrics["val_auc"] == chosen[0]["val_auc"]
    ctx = make_context(run_cfg, load_dataset(run_cfg), None, [plan.budget_bytes], progress=False)
    model = ctx.build_model(plan)
    model.load_state_dict(state)  # the saved weights score the recorded validation AUC
    assert evaluate(model, ctx.data.split("val"))[0] == pytest.approx(
        plan.metrics["val_auc"], abs=1e-6
    )
