"""The weight-sharing supernet of the evolutionary family (OptEmbed, RULE): trained once
as one plain model, its sub-networks then scored with inherited weights.

:func:`train_weight_sharing_supernet` builds and trains it with the shared trainer under
the search's deadline; :func:`plan_weights` gives a plan the supernet's weights for its
candidate (the contract of ``plan.weights``, for a controller that serves its plans).

Resume (issue 22 item 4). With a run directory (``ctx.store.run_dir``: the runner's), a
supernet trained without hooks (``after_step``, ``batch_loss``), or with hooks whose state
outside the model is handed over as ``hook_state`` (NIS's and AutoIAS's policies: their
parameters, optimisers, baselines, generators, reward history), is

- checkpointed after every epoch, ``RUN_DIR/supernet.epoch.pt`` (model, optimiser, the
  trainer's counters, history and early-stopping judge, every random generator:
  :mod:`embsearch.train.checkpoint`); on ``--resume`` training continues from it, so a run
  killed after epoch ``k`` trains epochs ``k+1..`` only and ends with the weights an
  uninterrupted run would have (``hook_state`` saved with it, restored before the model is
  rebuilt);
- saved once trained, ``RUN_DIR/supernet.pt`` (weights, summary and ``hook_state``), which
  replaces the checkpoint (removed then); a resume loads it instead of training again, and workers
  (``--executor local``/``ray``, issue 22 item 5) rebuild the evaluators from it
  (:func:`supernet_recipe`, :func:`load_trained`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from embsearch._atomic import write_file
from embsearch.context import SearchContext
from embsearch.errors import ConfigError
from embsearch.evaluator import Evaluator
from embsearch.plan import Plan
from embsearch.search_spaces.base import Candidate
from embsearch.train.checkpoint import (
    CHECKPOINT_NAME,
    Stateful,
    load_checkpoint,
    restore_generators,
    save_checkpoint,
)
from embsearch.train.cpu_weights import cpu_weights
from embsearch.train.device import seed_everything
from embsearch.train.trainer import TrainerState, train_model
from embsearch.trial_store import TrialStore

SUPERNET_NAME = "supernet.pt"  # in the run directory once trained


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
    hook_state: Stateful | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Build (seeded) and train a weight-sharing supernet, whose sub-networks are scored
    later with inherited weights, as one plain model with the shared trainer (no
    architecture parameters; every weight step on training batches). Stop early, keeping
    the weights as they are, when ``deadline`` (a ``time.perf_counter()`` value) passes.
    ``validate`` (the trainer's hook) judges the epochs; default: the full width.
    ``after_step(model, step)`` runs after every weight step (NIS's policy updates);
    ``batch_loss(model, x, y, logits)`` adds a per-batch term (AutoIAS's distillation);
    ``hook_state``: what those hooks keep outside the model (without it, hooks leave the
    supernet unsaved: a checkpoint without their state would resume another search). Returns
    the model (in eval mode) and a summary (``val_auc``, ``epochs_run``, ``timed_out``,
    ``seconds``). DARTS-style supernets train with
    :func:`~embsearch.controllers.differentiable.train_darts_supernet` instead. Checkpoints,
    the saved supernet and a resume's use of them: the module docstring."""
    store = ctx.store
    kept = store is not None and store.run_dir is not None
    kept = kept and (hook_state is not None or (after_step is None and batch_loss is None))
    if kept:
        loaded = load_supernet(store, lambda: build().to(ctx.device), hook_state)
        if loaded is not None:
            return loaded
    checkpoint = store.run_dir / CHECKPOINT_NAME if kept else None  # type: ignore[union-attr]

    def each_step(step: int) -> None:
        if deadline is not None and time.perf_counter() > deadline:
            raise OutOfTime
        if after_step is not None:
            after_step(model, step)

    generator = seed_everything(ctx.seed)
    saved = None
    if checkpoint is not None and store.resume:  # type: ignore[union-attr]
        saved = load_checkpoint(checkpoint)
        if saved is not None and hook_state is not None:
            hook_state.load_state_dict(saved[1]["hooks"])  # before build(), which may read it
    model = build().to(ctx.device)
    start = None
    if saved is not None:
        start, states = saved
        restore_generators(states, model, generator)
        ctx.log(f"{desc}: continuing from the checkpoint of epoch {start.epoch}")

    def each_epoch(state: TrainerState) -> None:
        save_checkpoint(checkpoint, state, model, generator, hook_state)  # type: ignore[arg-type]

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
            after_epoch=each_epoch if checkpoint is not None else None,
            start=start,
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
    if start is not None:
        summary["resumed_after_epoch"] = start.epoch
    if checkpoint is not None:
        save_supernet(store, model, summary, hook_state)  # replaces the checkpoint
        checkpoint.unlink(missing_ok=True)
    return model, summary


def supernet_path(store: TrialStore | None) -> Path | None:
    """Where the run keeps its trained supernet (``None``: no run directory)."""
    return None if store is None or store.run_dir is None else store.run_dir / SUPERNET_NAME


def save_supernet(
    store: TrialStore | None,
    model: torch.nn.Module,
    summary: dict,
    hook_state: Stateful | None = None,
) -> None:
    """Keep the trained supernet's weights, summary and hooks' state for a resume."""
    path = supernet_path(store)
    if path is None:
        return
    state = cpu_weights(model.state_dict())
    blob = {"state": state, "summary": summary}
    if hook_state is not None:
        blob["hooks"] = hook_state.state_dict()
    write_file(path, lambda tmp: torch.save(blob, tmp))


def load_supernet(
    store: TrialStore | None,
    build: Callable[[], torch.nn.Module],
    hook_state: Stateful | None = None,
) -> tuple[torch.nn.Module, dict[str, Any]] | None:
    """On a resume: the saved supernet (``build()`` with its weights) and its training
    summary, ``hook_state`` put back as it was at the end of the training; ``None`` when
    there is none to load (then it is trained)."""
    path = supernet_path(store)
    if store is None or not store.resume or path is None or not path.is_file():
        return None
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if hook_state is not None:
        hook_state.load_state_dict(saved["hooks"])
    model = build()
    model.load_state_dict(saved["state"])
    return model.eval(), {**saved["summary"], "loaded": True}


def supernet_recipe(ctx: SearchContext) -> dict[str, Any] | None:
    """What a worker loads the trained supernet from (``None``: not saved, no run
    directory, so the trials cannot leave this process)."""
    path = supernet_path(ctx.store)
    return None if path is None or not path.is_file() else {"supernet": str(path)}


def load_trained(
    recipe: dict[str, Any],
    build: Callable[[], nn.Module],
    device: torch.device,
    who: str | None = None,
) -> nn.Module:
    """In a worker: ``build()`` (the supernet, untrained) with the weights
    :func:`supernet_recipe` names, in eval mode (``who`` starts the error's line)."""
    path = Path(recipe["supernet"])
    if not path.is_file():
        raise ConfigError(
            f"{who + ': ' if who else ''}the supernet {path} is not readable here; the run "
            "directory must be on a file system every worker sees"
        )
    model = build().to(device)
    model.load_state_dict(torch.load(path, map_location=device, weights_only=True)["state"])
    return model.eval()


class SupernetTrials:
    """Trials a worker rebuilds from the saved supernet (``--executor local``/``ray``), mixed
    into a controller that sets ``remote_trials`` and gives ``search_space(ctx)``,
    ``build_supernet(ctx, space)`` (untrained) and ``scorer(ctx, model)``: the evolutionary
    family and NIS's step 6."""

    remote_trials: ClassVar[bool] = False

    def trial_recipe(self, ctx: SearchContext, budget: int) -> dict[str, Any] | None:
        """A worker's recipe: the saved supernet (``None``: none saved; no executor then)."""
        return supernet_recipe(ctx) if self.remote_trials else None

    def remote_evaluator(self, ctx: SearchContext, recipe: dict[str, Any]) -> Evaluator:
        """In a worker: ``scorer`` of the saved supernet, rebuilt from the options."""
        build = lambda: self.build_supernet(ctx, self.search_space(ctx))  # type: ignore[attr-defined]  # noqa: E731
        return self.scorer(ctx, load_trained(recipe, build, ctx.device))  # type: ignore[attr-defined]


def plan_weights(
    ctx: SearchContext, supernet: nn.Module, plan: Plan, cand: Candidate
) -> dict[str, torch.Tensor]:
    """``state_dict`` of ``ctx.build_model(plan)`` holding the supernet's weights for ``cand``
    (the plan must use ``projection='pad'``): the contract of ``plan.weights``."""
    model = ctx.build_model(plan)
    model.embedding.load_block_tensors(supernet.embedding.block_tensors(cand))  # type: ignore[union-attr, operator]
    model.backbone.load_state_dict(supernet.backbone.state_dict())  # type: ignore[union-attr]
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
