"""Training: Adam over batches sliced from a permutation, early stopping on validation AUC.

Hooks let searches reuse the one loop: ``extra_loss(model)`` adds a regulariser (RULE's
diversity term, DNIS's mask sparsity), ``after_step(step)`` runs an architecture step
(DARTS), ``on_epoch_end(epoch)`` adjusts schedules, ``validate(model)`` replaces the
validation metric that early stopping and the best-epoch restore use (RULE's supernet is
judged by the selections it serves, not by its full width), ``batch_loss(model, x, y,
logits)`` adds a term that needs the batch and its logits (AutoIAS's distillation from the
supernet to its sampled sub-architectures; off by default, the loss then unchanged).
``after_epoch(state)`` hears a :class:`TrainerState` after every epoch's validation and
``start=state`` continues from one (a per-epoch checkpoint, issue 22 item 4:
:mod:`embsearch.train.checkpoint`); without them training runs as it always has.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from embsearch.data.batches import DeviceSplit
from embsearch.data.chunks import CHUNK_ROWS, ChunkedSplit
from embsearch.data.dataset import Dataset, Split
from embsearch.train.device import fits_resident
from embsearch.train.metrics import log_loss, roc_auc
from embsearch.train.progress import progress_bar

MIN_LR = 1e-6  # the floor of the learning rate's decay on plateau (FuxiCTR's min_lr)


@dataclass
class TrainConfig:
    """Training options shared by search, retrain and benchmarks."""

    epochs: int = 30  # at most; early stopping (patience) ends most runs well before
    batch_size: int = 4096
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 2  # validations without a better val AUC before training stops
    # lr *= this at each validation without a better AUC: the recipe's (backbone parameter
    # lr_plateau_factor, whose default this is; tests/test_backbones.py checks they agree)
    lr_plateau_factor: float = 0.1
    eval_every: int = 0  # also validate every this many steps (0: once an epoch, at its end)
    eval_batch_size: int = 65536
    amp: bool = True
    progress: bool = True
    # int8c/int4c tables train quantisation-aware (embeddings/rows.py; False: --column-ptq)
    column_qat: bool = True


@dataclass
class TrainResult:
    val_auc: float
    val_logloss: float
    best_epoch: int
    epochs_run: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    best_step: int = 0  # optimiser steps taken when the best validation ran
    steps_run: int = 0  # 0: not recorded (then epochs decide :attr:`still_improving`)
    # one entry per epoch run: wall seconds with and without its validations, training
    # samples per second (validations left out)
    epoch_times: list[dict[str, float]] = field(default_factory=list)

    def timing_record(self) -> dict[str, Any]:
        """Per-epoch times and the whole run's training throughput (``search.json``,
        ``retrain.json``)."""
        train_s = sum(e["train_seconds"] for e in self.epoch_times)
        samples = sum(e["samples"] for e in self.epoch_times)
        return {
            "epoch_times": [
                {k: (round(v, 4) if isinstance(v, float) else v) for k, v in e.items()}
                for e in self.epoch_times
            ],
            "samples_per_s": round(samples / train_s) if train_s > 0 else None,
        }

    @property
    def still_improving(self) -> bool:
        """The last validation had the best AUC: training ended on the epoch budget, not on a
        plateau, so more epochs would likely raise it."""
        if self.steps_run:
            return self.epochs_run > 0 and self.best_step == self.steps_run
        return self.epochs_run > 0 and self.best_epoch == self.epochs_run

    def stopping_record(self) -> dict[str, int]:
        """Epochs run and the best one (for ``plan.json`` and ``retrain.json``); with
        validations inside epochs (``eval_every``), the steps too."""
        out = {"epochs_run": self.epochs_run, "best_epoch": self.best_epoch}
        if any("step" in h for h in self.history):
            out.update(best_step=self.best_step, steps_run=self.steps_run)
        return out

    def epochs_hint(self) -> str | None:
        """One line for the user when :attr:`still_improving`, else ``None``."""
        if not self.still_improving:
            return None
        return (
            f"note: the validation AUC was still rising at the last epoch ({self.epochs_run}); "
            "more --epochs would likely raise it (training stops by itself on a plateau)"
        )


class DeviceData:
    """The dataset's splits on one device: each moved there once, as a tensor, when it fits
    (:func:`~embsearch.train.device.fits_resident`), else fed from its memory-mapped arrays
    in chunks (:class:`~embsearch.data.chunks.ChunkedSplit`: the same batches, hence the same
    model under a seed). ``resident_bytes``: the most bytes a split may take on the device
    (``None``: :func:`~embsearch.train.device.resident_budget`; 0: every split in chunks);
    ``chunk_rows``: rows per chunk."""

    def __init__(
        self,
        dataset: Dataset,
        device: torch.device,
        *,
        resident_bytes: int | None = None,
        chunk_rows: int = CHUNK_ROWS,
    ) -> None:
        self.dataset = dataset
        self.device = device
        self.resident_bytes = resident_bytes
        self.chunk_rows = chunk_rows
        self._splits: dict[str, DeviceSplit | ChunkedSplit] = {}

    def split(self, name: str) -> DeviceSplit | ChunkedSplit:
        if name not in self._splits:
            split = self.dataset.split(name)
            if fits_resident(split_bytes(split), self.device, self.resident_bytes):
                self._splits[name] = DeviceSplit(split, self.device)
            else:
                self._splits[name] = ChunkedSplit(split, self.device, self.chunk_rows)
        return self._splits[name]

    def chunked(self) -> list[str]:
        """The splits fed in chunks so far."""
        return [n for n, s in self._splits.items() if isinstance(s, ChunkedSplit)]


def split_bytes(split: Split) -> int:
    """Bytes of a split held whole on a device: int64 ids and float32 labels."""
    rows, fields = split.x.shape
    return int(rows) * (int(fields) * 8 + 4)


def make_adam(params, lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:  # noqa: ANN001
    """Adam with the fused kernel (one pass over each tensor: about 6x faster on a large CPU
    table than the default), falling back to the default where fused is unsupported."""
    params = [p for p in params if p.requires_grad]
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


@torch.no_grad()
def predict(
    model: nn.Module, split: DeviceSplit | ChunkedSplit, batch_size: int = 65536
) -> np.ndarray:
    """Probabilities for every row of ``split``."""
    was_training = model.training
    model.eval()
    out = [torch.sigmoid(model(x).float()) for x, _ in split.batches(batch_size)]
    model.train(was_training)
    return torch.cat(out).cpu().numpy() if out else np.zeros(0, dtype=np.float32)


def evaluate(
    model: nn.Module, split: DeviceSplit | ChunkedSplit, batch_size: int = 65536
) -> tuple[float, float]:
    """``(auc, logloss)`` of ``model`` on ``split``."""
    p = predict(model, split, batch_size)
    y = split.y.cpu().numpy()
    return roc_auc(y, p), log_loss(y, p)


@dataclass
class EarlyStopping:
    """The trainer's judge of validations: keeps the weights of the best validation AUC,
    counts validations in a row without a better one (``patience`` of them stop training)
    and, at each, multiplies the learning rate by ``plateau_factor`` (FuxiCTR's
    ``reduce_lr_on_plateau``, down to :data:`MIN_LR`)."""

    patience: int
    plateau_factor: float = 1.0
    best_auc: float = -1.0
    best_ll: float = float("inf")
    best_epoch: int = 0
    best_step: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    since_best: int = 0

    def update(
        self,
        model: nn.Module,
        opt: torch.optim.Optimizer,
        auc: float,
        ll: float,
        epoch: int,
        step: int,
    ) -> bool:
        """Judge one validation; True when patience has run out."""
        if auc > self.best_auc:
            self.best_auc, self.best_ll, self.best_epoch, self.best_step = auc, ll, epoch, step
            self.since_best = 0
            self.best_state = copy.deepcopy(model.state_dict())
            return False
        self.since_best += 1
        if self.plateau_factor != 1.0:
            for group in opt.param_groups:
                group["lr"] = max(group["lr"] * self.plateau_factor, MIN_LR)
        return self.since_best >= self.patience


@dataclass
class TrainerState:
    """Where a training stands after an epoch: what :func:`train_model` needs to continue
    as if it had never stopped (the model's and optimiser's state, the counters, the
    history and the early-stopping judge; ``stopped``: training had ended). The random
    generators are the caller's to keep (:mod:`embsearch.train.checkpoint`)."""

    epoch: int
    step: int
    stopped: bool
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    history: list[dict[str, float]]
    epoch_times: list[dict[str, Any]]
    judge: dict[str, Any]


def _epoch_time(epoch: int, wall: float, validating: float, seen: int) -> dict[str, Any]:
    """One ``TrainResult.epoch_times`` entry: wall seconds, without validations, samples/s."""
    train_s = wall - validating
    return {
        "epoch": epoch,
        "seconds": wall,
        "train_seconds": train_s,
        "samples": seen,
        "samples_per_s": round(seen / max(train_s, 1e-9)),
    }


def train_model(
    model: nn.Module,
    data: DeviceData,
    cfg: TrainConfig,
    *,
    generator: torch.Generator | None = None,
    extra_loss: Callable[[nn.Module], torch.Tensor] | None = None,
    after_step: Callable[[int], None] | None = None,
    on_epoch_end: Callable[[int], None] | None = None,
    params: list[nn.Parameter] | None = None,
    desc: str = "train",
    validate: Callable[[nn.Module], tuple[float, float]] | None = None,
    batch_loss: Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    | None = None,
    after_epoch: Callable[[TrainerState], None] | None = None,
    start: TrainerState | None = None,
) -> TrainResult:
    """Train ``model`` in place; restore the weights of the best validation AUC (``validate``,
    if given, returns the (AUC, log loss) to judge each validation by).

    Validation runs at the end of every epoch and, with ``cfg.eval_every = k``, also after
    every ``k``-th step (for data where one epoch is long or overfits: CTR models often
    peak within their first epoch). Training stops after ``cfg.patience`` validations in a
    row without a better AUC. ``start`` (an ``after_epoch`` state) continues a training
    stopped after that epoch: the next epoch onwards (none when it had ended)."""
    device = data.device
    model.to(device)
    train, val = data.split("train"), data.split("val")
    opt = make_adam(params if params is not None else model.parameters(), cfg.lr, cfg.weight_decay)
    use_amp = cfg.amp and device.type == "cuda"
    loss_fn = nn.BCEWithLogitsLoss()
    judge = EarlyStopping(cfg.patience, cfg.lr_plateau_factor)
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    steps_per_epoch = (len(train) + cfg.batch_size - 1) // cfg.batch_size
    step = 0
    epoch_times: list[dict[str, Any]] = []
    validating = 0.0  # seconds spent validating in the current epoch
    first, stop = 1, False
    if start is not None:
        model.load_state_dict(start.model)
        opt.load_state_dict(start.optimizer)
        judge = EarlyStopping(**start.judge)
        history, epoch_times = list(start.history), list(start.epoch_times)
        step, first, stop = start.step, start.epoch + 1, start.stopped

    def check(epoch: int, running: float) -> bool:
        """Validate after ``step``, record it, let ``judge`` decide; True: stop."""
        nonlocal validating
        v0 = time.perf_counter()
        auc, ll = evaluate(model, val, cfg.eval_batch_size) if validate is None else validate(model)
        validating += time.perf_counter() - v0
        model.train()  # a validation hook may leave the model in eval mode
        entry = {"epoch": epoch, "train_loss": running, "val_auc": auc, "val_logloss": ll}
        if cfg.eval_every:
            entry["step"] = step
        history.append(entry)
        prog.update(task, info=f"epoch {epoch} loss {running:.4f} val AUC {auc:.4f}")
        return judge.update(model, opt, auc, ll, epoch, step)

    with progress_bar(cfg.progress) as prog:
        task = prog.add_task(desc, total=cfg.epochs * steps_per_epoch, info="")
        prog.advance(task, (first - 1) * steps_per_epoch)
        epoch, last = first - 1, (first - 1 if stop else cfg.epochs)  # a start that had ended
        for epoch in range(first, last + 1):
            model.train()
            running, validating, e0, seen = 0.0, 0.0, time.perf_counter(), 0
            for i, (x, y) in enumerate(
                train.batches(cfg.batch_size, shuffle=True, generator=generator)
            ):
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    logits = model(x).float()
                    loss = loss_fn(logits, y)
                    if batch_loss is not None:
                        loss = loss + batch_loss(model, x, y, logits)
                    if extra_loss is not None:
                        loss = loss + extra_loss(model)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                seen += len(y)
                if after_step is not None:
                    after_step(step)
                running = 0.9 * running + 0.1 * float(loss.detach()) if i else float(loss.detach())
                if i % 20 == 0:
                    prog.update(task, info=f"epoch {epoch} loss {running:.4f}")
                prog.advance(task)
                last = i == steps_per_epoch - 1  # the epoch's end validates below
                if cfg.eval_every and step % cfg.eval_every == 0 and not last:
                    stop = check(epoch, running)
                    if stop:
                        break
            if not stop:
                if on_epoch_end is not None:
                    on_epoch_end(epoch)
                stop = check(epoch, running)
            epoch_times.append(_epoch_time(epoch, time.perf_counter() - e0, validating, seen))
            if after_epoch is not None:
                after_epoch(
                    TrainerState(
                        epoch, step, stop or epoch == cfg.epochs, model.state_dict(),
                        opt.state_dict(), history, epoch_times, vars(judge),
                    )
                )  # fmt: skip
            if stop:
                break
    best_auc, best_ll = judge.best_auc, judge.best_ll
    if judge.best_state is not None:
        model.load_state_dict(judge.best_state)
    else:  # no validation gave an AUC (one class in the split): not -1.0 / inf, but NaN
        best_auc = best_ll = float("nan")  # (written to JSON as null with its reason)
    return TrainResult(
        best_auc,
        best_ll,
        judge.best_epoch,
        epoch,
        time.perf_counter() - t0,
        history,
        best_step=judge.best_step,
        steps_run=step,
        epoch_times=epoch_times,
    )
