"""Searches train with the run's backbone recipe (issue 19 item 4): every supernet pays the
embedding regularizer on its table, the architecture steps leave batch norm's statistics
alone, and a controller that trains its supernet otherwise says so (``search_backbone``)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from embsearch.backbones.regularize import combine, embedding_weights, penalty
from embsearch.controllers.autodim import AutoDim
from embsearch.controllers.dnis import DNIS
from embsearch.controllers.optembed import OptEmbed
from embsearch.controllers.rule import Rule
from embsearch.errors import ConfigError
from embsearch.testing import make_test_context


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def test_every_supernet_names_its_table_for_the_regularizer():
    """The supernets' id-indexed tables, and nothing else (no mask, no architecture logits,
    no branch transform), are what the embedding regularizer penalises."""
    ctx = make_test_context(AutoDim)
    space = ctx.space
    for ctrl in (AutoDim(), DNIS()):
        sup = ctrl.build_supernet(ctx, ctrl.search_space(ctx))
        (table,) = embedding_weights(sup)
        assert table is sup.table.weight
        arch = {id(p) for p in sup.arch_parameters()}
        assert id(table) not in arch
    assert embedding_weights(nn.Embedding(3, 2)) == []  # a plug-in's own: none guessed
    assert space.width == 16


def test_combine_adds_the_terms_and_keeps_none():
    m = nn.Linear(2, 1)
    assert combine(None, None) is None
    one = lambda model: torch.tensor(1.5)  # noqa: E731
    assert combine(None, one) is one
    assert float(combine(one, one, None)(m)) == 3.0


def test_supernet_context_lays_search_backbone_over_the_recipe():
    ctx = make_test_context(DNIS)
    sctx = DNIS().supernet_context(ctx)
    assert sctx.backbone_params["batch_norm"] is False  # DNIS's search_backbone
    assert sctx.backbone_params["dropout"] == 0.2  # the rest is the recipe
    assert not any(isinstance(m, nn.BatchNorm1d) for m in sctx.make_backbone().modules())
    assert any(isinstance(m, nn.BatchNorm1d) for m in ctx.make_backbone().modules())
    assert sctx.data is ctx.data and sctx.history is ctx.history  # shared, not copied
    own = DNIS(search_backbone={}).supernet_context(ctx)
    assert own is ctx
    plateau = AutoDim(search_backbone={"lr_plateau_factor": 1.0}).supernet_context(ctx)
    assert plateau.train.lr_plateau_factor == 1.0 and ctx.train.lr_plateau_factor == 0.1


def test_search_backbone_is_recorded_and_plans_train_with_the_recipe():
    ctx = make_test_context(DNIS)
    ctrl = DNIS()
    (plan,) = ctrl.search_budgets(ctx)
    rec = plan.extra["search_backbone"]
    assert rec["overrides"] == {"batch_norm": False} and "batch norm" in rec["why"]
    assert not any(isinstance(m, nn.BatchNorm1d) for m in ctrl.state.model.backbone.modules())
    model = ctx.build_model(plan)  # the plan's own training: the recipe
    assert any(isinstance(m, nn.BatchNorm1d) for m in model.backbone.modules())
    (plan,) = AutoDim(search_backbone={}).search_budgets(make_test_context(AutoDim))
    assert "search_backbone" not in plan.extra


@pytest.mark.parametrize(
    "cls, params, message",
    [
        (DNIS, {"search_backbone": [1]}, "search_backbone must be a JSON object"),
        (OptEmbed, {"search_backbone": "bn"}, "search_backbone must be a JSON object"),
        (Rule, {"search_backbone": {"dropout": 0.0}}, "needs --param retrain=true"),
    ],
)
def test_bad_search_backbone_is_one_line(cls, params, message):
    with pytest.raises(ConfigError, match=message):
        cls(**params)
    Rule(search_backbone={"dropout": 0.0}, retrain=True)  # retrained plans may differ


def test_an_unknown_search_backbone_key_fails_before_training():
    ctx = make_test_context(AutoDim)
    with pytest.raises(ConfigError, match="unknown backbone parameter 'nope'"):
        AutoDim(search_backbone={"nope": 1}).supernet_context(ctx)


def test_architecture_steps_leave_batch_norm_statistics_alone():
    """DARTS's architecture steps run the model on validation batches in training mode; the
    backbone's batch-norm running statistics must come from training batches only."""
    from embsearch.controllers.darts_training import ArchStep

    ctx = make_test_context(AutoDim)
    ctrl = AutoDim()
    sup = ctrl.build_supernet(ctx, ctrl.search_space(ctx))
    from embsearch.backbones import CTRModel

    model = CTRModel(sup, ctx.make_backbone()).train()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
    before = [(m.running_mean.clone(), m.running_var.clone(), m.momentum) for m in bns]
    step = ArchStep(model, ctx.data.split("val"), sup.arch_parameters(), lr=0.1, batch_size=64)
    logits = [p.detach().clone() for p in sup.arch_parameters()]
    for s in range(1, 4):
        step(s)
    assert any(not torch.equal(a, p) for a, p in zip(logits, sup.arch_parameters()))
    for m, (mean, var, momentum) in zip(bns, before):
        assert torch.equal(m.running_mean, mean) and torch.equal(m.running_var, var)
        assert m.momentum == momentum  # restored after each step
    model(next(iter(ctx.data.split("train").batches(64)))[0])  # a training batch still counts
    assert not torch.equal(bns[0].running_mean, before[0][0])


def test_supernet_training_pays_the_embedding_regularizer():
    """The same AutoDim supernet trained with and without the recipe's regularizer: the
    shared table ends smaller with it (search_backbone set to keep it on)."""

    def table_norm(reg: float) -> float:
        ctx = make_test_context(AutoDim, epochs=2)
        ctrl = AutoDim(search_backbone={"embedding_regularizer": reg})
        ctrl.search_budgets(ctx)
        return float(ctrl.state.supernet.table.weight.detach().pow(2).sum())

    assert table_norm(1.0) < 0.5 * table_norm(0.0)
    assert penalty({"embedding_regularizer": 0.0, "weight_decay": 0.0}) is None


@pytest.mark.parametrize(
    "share, positives, starts",
    [(0.1, 0.02, True), (0.1, 0.3, False), (0.0, 0.02, False), (0.5, 0.3, True)],
)
def test_base_rate_bias_starts_rare_positives_at_their_log_odds(share, positives, starts):
    """Every built-in backbone's output bias starts at log(p / (1 - p)) where the rarer class
    is below ``base_rate_bias``; elsewhere it keeps its initialisation."""
    import math

    import numpy as np

    from embsearch.backbones.models import BACKBONES

    ctx = make_test_context(AutoDim)
    y = ctx.dataset.split("train").y
    rng = np.random.default_rng(0)
    y[:] = (rng.random(len(y)) < positives).astype(y.dtype)
    p = float(y.mean())
    for name in BACKBONES:
        c = type(ctx)(ctx.dataset, ctx.space, ctx.budgets, backbone=name,
                      backbone_params={"base_rate_bias": share}, log=lambda m: None)  # fmt: skip
        torch.manual_seed(0)
        bias = float(c.make_backbone().output_bias().detach())
        if starts:
            assert bias == pytest.approx(math.log(p / (1 - p)), abs=1e-6), name
        else:
            assert abs(bias) < 1.0, name  # PyTorch's init, |b| <= 1/sqrt(fan_in)


def test_base_rate_bias_out_of_range_is_one_line():
    from embsearch.backbones import backbone_params

    with pytest.raises(
        ConfigError, match=r"base_rate_bias of deepfm must be a number >= 0 and <= 0.5"
    ):
        backbone_params("deepfm", {"base_rate_bias": 0.7})
