"""DNIS's mask optimiser as its official code trains it: normalised SGD after a warm start."""

from __future__ import annotations

import pytest
import torch

from embsearch.budget import parse_budget
from embsearch.context import SearchContext
from embsearch.controllers.dnis import DNIS, NormalisedSGD
from embsearch.data.synthetic import make_synthetic
from embsearch.errors import ConfigError
from embsearch.search_spaces import FeatureDimsSpace
from embsearch.train import TrainConfig


def test_normalised_sgd_moves_every_row_by_about_lr_whatever_its_gradient_scale():
    """Each (field, group) row's gradient is divided by its mean absolute value: a rare
    group's tiny gradient moves its mask as far as a frequent group's large one, and a row
    with no gradient stays put."""
    p = torch.nn.Parameter(torch.full((1, 3, 4), 0.5))
    opt = NormalisedSGD([p], lr=0.1)
    g = torch.zeros(1, 3, 4)
    g[0, 0] = torch.tensor([1.0, -1.0, 2.0, 0.0]) * 1e3  # mean |g| = 1000
    g[0, 1] = torch.tensor([1.0, -1.0, 2.0, 0.0]) * 1e-4  # the same shape, 1e7 times smaller
    p.grad = g
    opt.step()
    step = torch.tensor([-0.1, 0.1, -0.2, 0.0])
    torch.testing.assert_close(p.detach()[0, 0], 0.5 + step)
    torch.testing.assert_close(p.detach()[0, 1], 0.5 + step, rtol=1e-4, atol=1e-4)
    assert torch.equal(p.detach()[0, 2], torch.full((4,), 0.5))


def _search(**params):
    ds = make_synthetic(rows=6000, cardinalities=(30, 80, 12, 50), informative=(1, 2), seed=3)
    space = FeatureDimsSpace(ds.schema, width=8, candidates=(1, 2, 4, 8))
    budget = space.resolve_budget(parse_budget("50%"))
    cfg = TrainConfig(epochs=2, batch_size=1024, progress=False)
    ctx = SearchContext(ds, space, [budget], train=cfg, seed=0, log=lambda m: None)
    ctrl = DNIS(early_stop=False, **params)
    ctrl.search(ctx)
    done = [e for e in ctx.history if e["event"] == "supernet_done"][-1]
    return ctrl, done["arch_steps"], -(-len(ds.split("train")) // cfg.batch_size)


def test_dnis_defaults_to_the_official_optimiser_after_a_one_epoch_warm_start():
    """By default the mask takes no step during the first epoch (the warm start), then one
    normalised SGD step per weight step; ``optimizer='adam'``, ``warm_start=0`` is the
    first version (Adam from the first step)."""
    assert DNIS().config["optimizer"] == "sgd" and DNIS().config["warm_start"] == 1
    ctrl, steps, per_epoch = _search()
    assert steps == per_epoch  # two epochs, the first one warm
    adam, adam_steps, _ = _search(optimizer="adam", warm_start=0)
    assert adam_steps == 2 * per_epoch
    assert not torch.equal(ctrl.state.supernet.mask, adam.state.supernet.mask)
    for bad, match in (({"optimizer": "rmsprop"}, "optimizer"), ({"warm_start": -1}, "warm")):
        with pytest.raises(ConfigError, match=match):
            DNIS(**bad)


def test_dnis_labels_its_extensions():
    from embsearch.controllers.registry import describe

    lines = describe("dnis")["param_help"]
    assert "[extension: " in lines["optimizer"] and "[extension" not in lines["l1"]
