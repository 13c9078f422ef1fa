"""Step 2 of the differentiable family: a supernet trained by first-order DARTS.

First-order DARTS (Liu, Simonyan and Yang, "DARTS: Differentiable Architecture Search",
ICLR 2019, Sec. 2.3 with ``xi = 0``), :func:`train_darts_supernet`: the trainer's loop takes
a weight step on a training batch, then (its ``after_step`` hook) :class:`ArchStep` takes an
architecture step on a validation batch with a separate optimiser over the architecture
parameters only (Adam unless the controller builds its own). Architecture batches default
to half a training batch (DARTS leaves their size open; the few architecture parameters
need no more rows). With ``early_stop=True`` (the default) the supernet stops like a
retrain, on the trainer's patience, and the architecture kept is that of its best
validation epoch, the epoch whose weights are kept too: an architecture stepped on the
validation loss of an overfit supernet drops informative fields. ``early_stop=False`` is
DARTS's fixed epochs and last architecture. :func:`check_val_split` (step 1) makes sure the
validation split can feed architecture steps.

Resume (issue 22 item 4). With a run directory (``ctx.store.run_dir``) the supernet is
checkpointed after every epoch, ``RUN_DIR/supernet.epoch.pt``
(:mod:`embsearch.train.checkpoint`: model with its architecture parameters, weight
optimiser, the trainer's counters and early-stopping judge, every random generator), with
the architecture half's state (:meth:`ArchStep.state_dict`: its optimiser, step count, the
validation batches' order and position; and the last architecture without ``early_stop``);
on ``--resume`` training continues from it as if it had never stopped. The last epoch's
checkpoint is kept, so a resume after the supernet trained restores it without training.
``on_step`` must set what it sets from the step alone (AutoDim's temperature): a resume
calls it again with the checkpoint's step; DNIS's clip and L1 and AutoEmb keep no state.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from embsearch.context import SearchContext
from embsearch.data.batches import DeviceSplit
from embsearch.data.dataset import Split
from embsearch.embeddings.supernets import CandidateBranches
from embsearch.errors import ConfigError, DataError
from embsearch.train.checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    restore_generators,
    save_checkpoint,
)
from embsearch.train.trainer import TrainerState, TrainResult, train_model


def check_val_split(val: Split, arch_batch_size: int) -> None:
    """Step 1: at least one full architecture batch, and at least 2 rows of each class."""
    n = len(val)
    if n < max(arch_batch_size, 2):
        raise DataError(
            f"the validation split has {n} rows, fewer than one architecture batch "
            f"(arch_batch_size={arch_batch_size}); lower arch_batch_size to at most {n} "
            "or give the validation split more rows (--split)"
        )
    pos = int(np.asarray(val.y).sum())
    if pos < 2 or n - pos < 2:
        raise DataError(
            f"the validation split has {pos} positive and {n - pos} negative rows; architecture "
            "steps need at least 2 of each class: give the validation split more rows (--split)"
        )


class ArchStep:
    """Step 2, the architecture half of first-order DARTS, run as the trainer's ``after_step``.

    Every ``every`` weight steps: one full validation batch (shuffled, cycled), loss
    ``BCE + penalty()``, gradients for the architecture parameters only, one Adam step
    (or one of the controller's ``optimizer``; none in the first ``warm_steps`` weight
    steps), then ``after()`` (e.g. clipping a mask). Batch-norm running statistics, the
    candidate branches' and the backbone's, are not updated by these steps (they see training
    batches only); dropout stays on, as in every training-mode forward of DARTS.
    """

    def __init__(
        self,
        model: nn.Module,
        val: DeviceSplit,
        params: list[nn.Parameter],
        *,
        lr: float,
        batch_size: int,
        every: int = 1,
        generator: torch.Generator | None = None,
        penalty: Callable[[], torch.Tensor] | None = None,
        after: Callable[[], None] | None = None,
        on_step: Callable[[int], None] | None = None,
        amp: bool = False,
        optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer] | None = None,
        warm_steps: int = 0,
    ) -> None:
        self.model, self.val, self.params = model, val, params
        # Adam at ``lr`` unless a controller builds its own (DNIS: normalised SGD); no
        # architecture step during the first ``warm_steps`` weight steps (a warm start)
        self.opt = torch.optim.Adam(params, lr=lr) if optimizer is None else optimizer(params)
        self.warm_steps = int(warm_steps)
        self.batch_size, self.every, self.generator = batch_size, every, generator
        self.penalty, self.after, self.on_step, self.amp = penalty, after, on_step, amp
        self.loss_fn = nn.BCEWithLogitsLoss()
        self.steps = 0
        # where the validation batches stand: the generator's state when the current pass
        # over the split began (None: not begun) and the batches taken from it since
        self._pass_start: torch.Tensor | None = None
        self._taken = 0
        self._batches = self._cycle()
        self._momentum: dict[nn.Module, float | None] = {}

    def _cycle(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            if self.generator is not None:
                self._pass_start = self.generator.get_state()
            self._taken = 0
            for x, y in self.val.batches(self.batch_size, shuffle=True, generator=self.generator):
                if len(y) == self.batch_size:
                    self._taken += 1
                    yield x, y

    def state_dict(self) -> dict[str, Any]:
        """What a resume needs (:class:`~embsearch.train.checkpoint.Stateful`): the
        architecture optimiser, the step count and the validation batches' position."""
        return {
            "opt": self.opt.state_dict(),
            "steps": self.steps,
            "pass_start": self._pass_start,
            "taken": self._taken,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back :meth:`state_dict`: the pass in progress is drawn again from its
        generator state and the batches already taken are skipped."""
        self.opt.load_state_dict(state["opt"])
        self.steps = int(state["steps"])
        self._pass_start, self._taken = None, 0
        self._batches = self._cycle()
        if state["pass_start"] is not None and self.generator is not None:
            self.generator.set_state(state["pass_start"])
            for _ in range(int(state["taken"])):
                next(self._batches)

    def _set_stats(self, on: bool) -> None:
        for m in self.model.modules():
            if isinstance(m, CandidateBranches):
                m.update_stats = on
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                # momentum 0 keeps the running statistics as they are (the batch's own
                # statistics still normalise it, as in any training-mode step)
                if on:
                    m.momentum = self._momentum.pop(m, m.momentum)
                else:
                    self._momentum[m] = m.momentum
                    m.momentum = 0.0

    def __call__(self, step: int) -> None:
        if self.on_step is not None:
            self.on_step(step)
        if step % self.every or step <= self.warm_steps:
            return
        x, y = next(self._batches)
        self._set_stats(False)
        frozen = [p for p in self.params if not p.requires_grad]  # see train_darts_supernet
        for p in frozen:
            p.requires_grad_(True)
        try:
            device = x.device
            with torch.autocast(
                device.type, dtype=torch.bfloat16, enabled=self.amp and device.type == "cuda"
            ):
                loss = self.loss_fn(self.model(x).float(), y)
                if self.penalty is not None:
                    loss = loss + self.penalty()
            grads = torch.autograd.grad(loss, self.params, allow_unused=True)
        finally:
            self._set_stats(True)
            for p in frozen:
                p.requires_grad_(False)
        for p, g in zip(self.params, grads):
            p.grad = torch.zeros_like(p) if g is None else g
        self.opt.step()
        self.steps += 1
        if self.after is not None:
            self.after()


def train_darts_supernet(
    ctx: SearchContext,
    model: nn.Module,
    weight_params: list[nn.Parameter],
    arch_params: list[nn.Parameter],
    *,
    epochs: int,
    arch_lr: float,
    arch_batch_size: int,
    arch_every: int = 1,
    generator: torch.Generator | None = None,
    penalty: Callable[[], torch.Tensor] | None = None,
    after_arch: Callable[[], None] | None = None,
    on_step: Callable[[int], None] | None = None,
    early_stop: bool = True,
    desc: str = "supernet",
    arch_optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer] | None = None,
    warm_steps: int = 0,
) -> TrainResult:
    """Step 2: alternate weight steps (train batches, the trainer's Adam over
    ``weight_params``) and architecture steps (validation batches, a separate Adam over
    ``arch_params``) for at most ``epochs`` epochs. With ``early_stop`` the supernet stops
    on the trainer's patience, and weights and architecture are both those of the epoch
    with the best validation AUC; without it every epoch runs, the architecture ends as
    trained and the weights are the best epoch's."""
    ids = {id(p) for p in arch_params}
    if any(id(p) in ids for p in weight_params):
        raise ConfigError("internal: a parameter is both a weight and an architecture parameter")
    val_gen = torch.Generator()
    val_gen.manual_seed(int(ctx.seed) + 1)
    step = ArchStep(
        model, ctx.data.split("val"), arch_params, lr=arch_lr, batch_size=arch_batch_size, every=arch_every,
        generator=val_gen, penalty=penalty, after=after_arch, on_step=on_step, amp=ctx.train.amp,
        optimizer=arch_optimizer, warm_steps=warm_steps,
    )  # fmt: skip
    if early_stop:
        # The supernet stops like a retrain (the trainer's patience); its weights and its
        # architecture parameters (both in the model's state) are those of the epoch with
        # the best validation AUC.
        cfg = replace(ctx.train, epochs=epochs)
    else:
        # DARTS's fixed number of epochs, and the last architecture (the trainer still
        # restores the weights of the best validation AUC).
        cfg = replace(ctx.train, epochs=epochs, patience=sys.maxsize)  # (counts validations)
    final: list[torch.Tensor] = []

    def snapshot(epoch: int) -> None:  # the last architecture, kept only without early_stop
        final[:] = [p.detach().clone() for p in arch_params]

    hooks = _DartsHooks(step, final)
    store = ctx.store
    checkpoint = None if store is None or store.run_dir is None else store.run_dir / CHECKPOINT_NAME
    start = None
    if checkpoint is not None and store is not None and store.resume:
        saved = load_checkpoint(checkpoint)
        if saved is not None:
            start, states = saved
            restore_generators(states, model, generator)
            hooks.load_state_dict(states["hooks"])
            if on_step is not None:  # a function of the step (AutoDim's temperature): as it was
                on_step(start.step)
            ctx.log(f"{desc}: continuing from the checkpoint of epoch {start.epoch}")

    def each_epoch(state: TrainerState) -> None:
        save_checkpoint(checkpoint, state, model, generator, hooks)  # type: ignore[arg-type]

    # weight steps leave the architecture parameters out of autograd (their gradients
    # would be thrown away); each architecture step turns them back on for itself
    for p in arch_params:
        p.requires_grad_(False)
    try:
        result = train_model(
            model, ctx.data, cfg, generator=generator, after_step=step, on_epoch_end=None if early_stop else snapshot, params=weight_params, desc=desc,
            extra_loss=ctx.penalty(),  # the recipe's penalties on the weight steps
            after_epoch=None if checkpoint is None else each_epoch, start=start,
        )  # fmt: skip
    finally:
        for p in arch_params:
            p.requires_grad_(True)
    if not early_stop:
        with torch.no_grad():
            for p, v in zip(arch_params, final):
                p.copy_(v)
    for h in result.history:
        ctx.record(event="supernet_epoch", **h)
    resumed = {} if start is None else {"resumed_after_epoch": start.epoch}
    ctx.record(
        event="supernet_done", arch_steps=step.steps, val_auc=result.val_auc,
        seconds=result.seconds, **resumed,
    )  # fmt: skip
    return result


class _DartsHooks:
    """The state :func:`train_darts_supernet` keeps outside the model (a
    :class:`~embsearch.train.checkpoint.Stateful`): the :class:`ArchStep`'s and the last
    architecture (without ``early_stop``)."""

    def __init__(self, step: ArchStep, final: list[torch.Tensor]) -> None:
        self.step, self.final = step, final

    def state_dict(self) -> dict[str, Any]:
        return {"arch": self.step.state_dict(), "final": list(self.final)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step.load_state_dict(state["arch"])
        self.final[:] = list(state["final"])
