"""The weight-sharing supernet of the evolutionary family (OptEmbed, RULE): trained once
as one plain model, its sub-networks then scored with inherited weights.

:func:`train_weight_sharing_supernet` builds and trains it with the shared trainer under
the search's deadline; :func:`plan_weights` gives a plan the supernet's weights for its
candidate (the contract of ``plan.weights``, for a controller that serves its plans).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from embsearch.context import SearchContext
from embsearch.plan import Plan
from embsearch.search_spaces.base import Candidate
from embsearch.train.device import seed_everything
from embsearch.train.trainer import train_model


class OutOfTime(Exception):
    """Raised from a training hook when the search's deadline has passed."""


def train_weight_sharing_supernet(
    ctx: SearchContext,
    build: Callable[[], nn.Module],
    epochs: int,
    deadline: float | None,
    extra_loss: Callable[[nn.Module], torch.Tensor] | None = None,
    desc: str = "supernet",
    validate: Callable[[nn.Module], tuple[float, float]] | None = None,
    after_step: Callable[[nn.Module, int], None] | None = None,
    batch_loss: Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Build (seeded) and train a weight-sharing supernet, whose sub-networks are scored
    later with inherited weights, as one plain model with the shared trainer (no
    architecture parameters; every weight step on training batches). Stop early, keeping
    the weights as they are, when ``deadline`` (a ``time.perf_counter()`` value) passes.
    ``validate`` (the trainer's hook) judges the epochs; default: the full width.
    ``after_step(model, step)`` runs after every weight step (NIS's policy updates);
    ``batch_loss(model, x, y, logits)`` adds a per-batch term (AutoIAS's distillation). Returns
    the model (in eval mode) and a summary (``val_auc``, ``epochs_run``, ``timed_out``,
    ``seconds``). DARTS-style supernets train with
    :func:`~embsearch.controllers.differentiable.train_darts_supernet` instead."""

    def each_step(step: int) -> None:
        if deadline is not None and time.perf_counter() > deadline:
            raise OutOfTime
        if after_step is not None:
            after_step(model, step)

    generator = seed_everything(ctx.seed)
    model = build().to(ctx.device)
    t0 = time.perf_counter()
    cfg = replace(ctx.train, epochs=int(epochs))
    try:
        res = train_model(
            model,
            ctx.data,
            cfg,
            generator=generator,
            extra_loss=ctx.penalty(extra_loss),
            after_step=each_step,
            desc=desc,
            validate=validate,
            batch_loss=batch_loss,
        )
        summary = {
            "val_auc": res.val_auc,
            "val_logloss": res.val_logloss,
            "epochs_run": res.epochs_run,
            "timed_out": False,
        }
    except OutOfTime:
        ctx.log(
            f"{desc}: time limit reached during supernet training; searching with the weights so far"
        )
        summary = {
            "val_auc": None,
            "val_logloss": None,
            "epochs_run": -1,
            "timed_out": True,
        }
    model.eval()
    summary["seconds"] = time.perf_counter() - t0
    return model, summary


def plan_weights(
    ctx: SearchContext, supernet: nn.Module, plan: Plan, cand: Candidate
) -> dict[str, torch.Tensor]:
    """``state_dict`` of ``ctx.build_model(plan)`` holding the supernet's weights for ``cand``
    (the plan must use ``projection='pad'``): the contract of ``plan.weights``."""
    model = ctx.build_model(plan)
    model.embedding.load_block_tensors(supernet.embedding.block_tensors(cand))  # type: ignore[union-attr, operator]
    model.backbone.load_state_dict(supernet.backbone.state_dict())  # type: ignore[union-attr]
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
