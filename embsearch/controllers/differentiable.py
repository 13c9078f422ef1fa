"""The differentiable family's public base: subclass :class:`DartsController` (or
:class:`WeightsController`) to write a DARTS-style controller.

A search trains one supernet by first-order DARTS and discretises it for every budget:

1. :func:`check_val_split`: the validation split must feed architecture steps;
2. :func:`train_darts_supernet`: first-order DARTS (Liu, Simonyan and Yang, "DARTS:
   Differentiable Architecture Search", ICLR 2019, Sec. 2.3 with ``xi = 0``): the trainer's
   loop takes a weight step on a training batch, then (its ``after_step`` hook)
   :class:`ArchStep` takes an architecture step on a validation batch with a separate
   optimiser over the architecture parameters only (Adam unless the controller builds its
   own). Architecture batches default to half a training batch (DARTS leaves their size
   open; the few architecture parameters need no more rows). With ``early_stop=True`` (the
   default) the supernet stops like a retrain, on the trainer's patience, and the
   architecture kept is that of its best validation epoch, the epoch whose weights are kept
   too: an architecture stepped on the validation loss of an overfit supernet drops
   informative fields. ``early_stop=False`` is DARTS's fixed epochs and last architecture;
3. :func:`discretise`: learned preferences become a candidate under each byte budget.

Hooks of :class:`DartsController` (called by :meth:`DartsController.search_budgets`, in
this order):

- ``validate() -> None``: in ``__init__``; check ``self.config`` (call ``super()``);
- ``search_space(ctx) -> SearchSpace``: once, first; the space plans are made in
  (default ``ctx.space``; DNIS switches to zero padding, :class:`WeightsController` adds
  dim 0);
- ``floor_space(ctx, space) -> SearchSpace``: before training; the space whose smallest
  plan every budget must hold (default ``space``);
- ``build_supernet(ctx, space) -> nn.Module`` (required): once, after the seed is set; a
  fresh supernet with ``arch_parameters()`` and ``weight_parameters()``, put in front of
  the run's backbone;
- ``penalty(supernet)``, ``after_arch(supernet)``, ``on_step(supernet)``: once, before
  training; each returns a callable or ``None``: ``penalty() -> Tensor`` is added to every
  architecture step's loss, ``after_arch() -> None`` runs after every architecture step
  (e.g. clipping a mask), ``on_step(step) -> None`` before every one (e.g. annealing a
  temperature);
- ``arch_optimizer() -> factory | None`` and ``warm_steps(ctx) -> int``: before training;
  the architecture optimiser (``None``: Adam at ``arch_lr``) and the weight steps taken
  before the first architecture step (default 0);
- ``preference(supernet, space) -> list[np.ndarray]`` (required): once, after training;
  per field ``[groups, candidates]`` values the discretisation maximises
  (:class:`WeightsController` implements it from ``weights(supernet)``, its one required
  hook);
- ``describe(supernet, space) -> dict``: once, after training; what goes into
  ``plan.extra`` besides the common facts (default nothing);
- ``null_preference(space) -> list[np.ndarray] | None`` with the class attribute
  ``null_signal``: per budget, after the plan; the preference of the uninformative signal,
  so the plan records how much of it the learned signal decided (``None``: no check).

The trained supernet and model are kept as ``supernet_`` and ``model_``. Plans carry no
weights: the search runner retrains each from scratch.

Preferences, ``preference[f]`` of shape ``[groups of f, len(candidates)]``, are additive:
the knapsack maximises their sum over (field, group) subject to ``bytes <= budget``
(exact multiple-choice knapsack, ``space.best_under_budget``). AutoDim and AutoEmb learn
weights ``w[g, k]`` over the candidates (a distribution of each group's dim ``D``);
:class:`WeightsController` turns them into a value of dim ``d`` (``VALUE_KINDS``):

- ``'shortfall'`` (:func:`shortfall`, the shared default): minus the expected number of
  doublings ``d`` falls short of ``D``, ``-E[max(0, log2(D + 1) - log2(d + 1))]``: the plan
  closest to the learned architecture from below; the value never falls as ``d`` grows, so
  budgets get used;
- ``'distance'`` (:func:`distance`, AutoDim's and AutoEmb's default): minus the expected
  doublings ``d`` is away from ``D`` either way, ``-E|log2(D + 1) - log2(d + 1)|``: under a
  loose budget each group gets the (log-scale) median of its weights, the paper's argmax
  for a confident group, and width the weights do not ask for is not bought, so a plan may
  use less than its budget;
- ``'coverage'`` (:func:`coverage`, an ablation): ``log P(D <= d)``, the plan most likely to
  cover the learned architecture; flat below a group's likely dims, so it spends budgets
  on cheap groups.

Dropping (dim 0, among AutoDim's and AutoEmb's candidates by default, ``drop=True``) is
embsearch's extension: a group may take it only where its own weights favour it
(``argmax w = 0``, a tie counting as not favoured, :func:`drop_only_where_favoured`);
elsewhere dim 0 is valued ``-inf`` and never chosen, whatever the bytes it would free, so
the knapsack cannot drop a field the weights are sure of to buy width for small ones.

DNIS's value is the kept mask mass (a budgeted magnitude pruning). Mode ``argmax`` is the
papers' own per-group argmax of ``w`` (or of DNIS's thresholded mass), which ignores the
budget and raises :class:`BudgetError` when its plan does not fit.
"""

from __future__ import annotations

import copy
import sys
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from embsearch.backbones import CTRModel
from embsearch.budget import format_bytes
from embsearch.context import SearchContext
from embsearch.controllers._signal import signal_record
from embsearch.controllers.base import SEARCH_BACKBONE_HELP, Controller
from embsearch.data.batches import DeviceSplit
from embsearch.data.dataset import Split
from embsearch.embeddings.supernets import CandidateBranches
from embsearch.errors import BudgetError, ConfigError, DataError
from embsearch.plan import Plan
from embsearch.search_spaces.base import Candidate, SearchSpace
from embsearch.train.device import seed_everything
from embsearch.train.trainer import TrainResult, train_model

DISCRETISE_MODES = ("knapsack", "argmax")


def discretise(
    space: SearchSpace, preference: Sequence[np.ndarray], budget: int, mode: str = "knapsack"
) -> Candidate:
    """Step 3: the candidate maximising total ``preference`` within ``budget`` bytes
    (``mode='knapsack'``), or the per-group argmax (``mode='argmax'``) checked against it."""
    if mode not in DISCRETISE_MODES:
        raise ConfigError(f"discretise must be one of {', '.join(DISCRETISE_MODES)}, got {mode!r}")
    if len(preference) != space.num_fields:
        raise ConfigError(
            f"preference covers {len(preference)} fields, the space has {space.num_fields}"
        )
    for f, p in enumerate(preference):
        want = (len(space.groups[f]), len(space.candidates))
        if np.shape(p) != want:
            raise ConfigError(
                f"preference of field {space.schema.fields[f].name!r} has shape {np.shape(p)}, expected {want}"
            )
    space.check_budget(budget)
    if mode == "knapsack":
        return space.best_under_budget(preference, budget)
    cand = space.argmax(preference)
    need = space.bytes_of(cand)
    if need > budget:
        raise BudgetError(
            f"the argmax plan needs {format_bytes(need)}, above the budget {format_bytes(budget)}; "
            f"use discretise='knapsack' (fits any feasible budget) or raise --budget to at least {need}"
        )
    return cand


def coverage(weights: np.ndarray) -> np.ndarray:
    """``log P(D <= d_k)`` for ``D`` distributed as ``weights`` (``[..., K]``, summing to 1)."""
    return np.log(np.clip(np.cumsum(np.asarray(weights, dtype=np.float64), axis=-1), 1e-12, None))


def _doublings_apart(candidates: Sequence[int]) -> np.ndarray:
    """``[k, j]``: how many doublings ``d_j`` lies above ``d_k`` (negative below), on the
    ``log2(d + 1)`` scale that :func:`shortfall` and :func:`distance` share."""
    level = np.log2(np.asarray(candidates, dtype=np.float64) + 1.0)
    return level[None, :] - level[:, None]


def shortfall(weights: np.ndarray, candidates: Sequence[int]) -> np.ndarray:
    """``-E[max(0, log2(D + 1) - log2(d_k + 1))]`` for ``D`` distributed as ``weights``
    (``[..., K]`` over the ascending ``candidates``): minus the expected doublings short."""
    short = np.clip(_doublings_apart(candidates), 0.0, None)  # [k, j]: d_k short of d_j
    return -(np.asarray(weights, dtype=np.float64) @ short.T)


def distance(weights: np.ndarray, candidates: Sequence[int]) -> np.ndarray:
    """``-E|log2(D + 1) - log2(d_k + 1)|`` for ``D`` distributed as ``weights``: minus the
    expected doublings ``d_k`` is away from the learned dim, short or over."""
    apart = np.abs(_doublings_apart(candidates))
    return -(np.asarray(weights, dtype=np.float64) @ apart.T)


def drop_only_where_favoured(
    value: np.ndarray, weights: np.ndarray, candidates: Sequence[int]
) -> np.ndarray:
    """``value`` with dim 0 disallowed (``-inf``) in every group whose weights do not put
    strictly more on dim 0 than on any other dim (a tie, e.g. untrained uniform weights,
    keeps the group; see the module docstring); unchanged when 0 is not a candidate."""
    if candidates[0] != 0 or len(candidates) == 1:
        return value
    w = np.asarray(weights, dtype=np.float64)
    out = np.array(value, dtype=np.float64)
    out[~(w[..., 0] > w[..., 1:].max(axis=-1)), 0] = -np.inf
    return out


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
        self._batches = self._cycle()
        self._momentum: dict[nn.Module, float | None] = {}

    def _cycle(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            for x, y in self.val.batches(self.batch_size, shuffle=True, generator=self.generator):
                if len(y) == self.batch_size:
                    yield x, y

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

    # weight steps leave the architecture parameters out of autograd (their gradients
    # would be thrown away); each architecture step turns them back on for itself
    for p in arch_params:
        p.requires_grad_(False)
    try:
        result = train_model(
            model, ctx.data, cfg, generator=generator, after_step=step, on_epoch_end=None if early_stop else snapshot, params=weight_params, desc=desc,
            extra_loss=ctx.penalty(),  # the recipe's penalties on the weight steps
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
    ctx.record(
        event="supernet_done", arch_steps=step.steps, val_auc=result.val_auc, seconds=result.seconds
    )
    return result


# the knapsack's values of learned weights: name -> (value of w over the candidates, what
# plan.extra['preference'] holds, for D ~ the weights)
VALUE_KINDS: dict[str, tuple[Callable[[np.ndarray, Sequence[int]], np.ndarray], str]] = {
    "shortfall": (shortfall, "-E[max(0, log2(D + 1) - log2(d + 1))]"),
    "coverage": (lambda w, candidates: coverage(w), "log P(D <= d)"),
    "distance": (distance, "-E|log2(D + 1) - log2(d + 1)|"),
}
VALUES = tuple(VALUE_KINDS)

COMMON_PARAMS: dict[str, Any] = {
    "epochs": None,
    "arch_lr": 3e-2,
    "arch_batch_size": None,
    "arch_every": 1,
    "discretise": "knapsack",
    "early_stop": True,
    "search_backbone": {},
}
COMMON_HELP: dict[str, str] = {
    "epochs": "supernet epochs (None: --epochs)",
    "arch_lr": "Adam learning rate of the architecture parameters",
    "arch_batch_size": "validation rows per architecture step (None: half a training batch, "
    "at most the validation split)",
    "arch_every": "one architecture step per this many weight steps",
    "discretise": "'knapsack': the best plan within each budget; 'argmax': the paper's "
    "per-field rule, which ignores the budget",
    "early_stop": "stop the supernet like a retrain and keep its best epoch's architecture "
    "(false: DARTS's fixed epochs and last architecture)",
    "search_backbone": SEARCH_BACKBONE_HELP,
}

WEIGHTS_PARAMS: dict[str, Any] = {**COMMON_PARAMS, "value": "shortfall", "drop": True}
WEIGHTS_HELP: dict[str, str] = {
    **COMMON_HELP,
    "value": "the knapsack's value of a dim: 'shortfall' (minus the expected doublings it "
    "falls short of the learned dim; fills the budget), 'distance' (minus the expected "
    "doublings away from it, short or over) or 'coverage' (log P(D <= d))",
    "drop": "add dim 0 to the candidates; a field or group is dropped only where its "
    "weights favour dim 0 (false: no dim 0 unless --candidates names it)",
}


class DartsController(Controller):
    """A supernet trained once by first-order DARTS, then discretised for every budget.

    Subclasses give :meth:`build_supernet` (with ``arch_parameters()`` and
    ``weight_parameters()``), :meth:`preference` and optionally :meth:`describe` and the
    hooks :meth:`penalty`, :meth:`after_arch`, :meth:`on_step`. The trained supernet and
    model are kept as ``supernet_`` and ``model_``. The returned plans carry no weights:
    the search runner retrains each from scratch.
    """

    family = "differentiable"
    params: ClassVar[dict[str, Any]] = COMMON_PARAMS
    param_help: ClassVar[dict[str, str]] = COMMON_HELP
    # the uninformative signal :meth:`null_preference` stands for ("": none; see _signal.py)
    null_signal: ClassVar[str] = ""

    # -- parameters ----------------------------------------------------------------------
    def _bad(self, name: str, allowed: str) -> ConfigError:
        return ConfigError(f"{self.name}: {name} must be {allowed}, got {self.config[name]!r}")

    def _check_number(
        self,
        name: str,
        lo: float,
        hi: float,
        *,
        integer: bool = False,
        optional: bool = False,
        open_lo: bool = False,
    ) -> None:
        """Raise :class:`ConfigError` unless ``config[name]`` is a number in the range."""
        v = self.config[name]
        if v is None and optional:
            return
        kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
        ok = (
            isinstance(v, kinds)
            and not isinstance(v, bool)
            and (lo < v if open_lo else lo <= v)
            and v <= hi
        )
        if not ok:
            kind = "an integer" if integer else "a number"
            none = " or None" if optional else ""
            raise self._bad(name, f"{kind} in {'(' if open_lo else '['}{lo:g}, {hi:g}]{none}")

    def _check_choice(self, name: str, choices: Sequence[str]) -> None:
        """Raise :class:`ConfigError` unless ``config[name]`` is one of ``choices``."""
        if self.config[name] not in choices:
            raise self._bad(name, " or ".join(repr(c) for c in choices))

    def _check_bool(self, name: str) -> None:
        """Raise :class:`ConfigError` unless ``config[name]`` is true or false."""
        if not isinstance(self.config[name], bool):
            raise self._bad(name, "true or false")

    def validate(self) -> None:
        self.check_search_backbone()
        self._check_number("epochs", 1, 10_000, integer=True, optional=True)
        self._check_number("arch_lr", 0.0, 10.0, open_lo=True)
        self._check_number("arch_batch_size", 2, 2**24, integer=True, optional=True)
        self._check_number("arch_every", 1, 10_000, integer=True)
        self._check_choice("discretise", DISCRETISE_MODES)
        self._check_bool("early_stop")

    # -- hooks ---------------------------------------------------------------------------
    def search_space(self, ctx: SearchContext) -> SearchSpace:
        """The space plans are made in (DNIS switches to zero padding)."""
        return ctx.space

    def floor_space(self, ctx: SearchContext, space: SearchSpace) -> SearchSpace:
        """The space whose smallest plan every budget must hold, checked before training."""
        return space

    @abstractmethod
    def build_supernet(self, ctx: SearchContext, space: SearchSpace) -> nn.Module:
        """A fresh supernet for ``space``."""

    @abstractmethod
    def preference(self, supernet: nn.Module, space: SearchSpace) -> list[np.ndarray]:
        """Per field ``[groups, candidates]`` values the discretisation maximises."""

    def describe(self, supernet: nn.Module, space: SearchSpace) -> dict[str, Any]:
        """What goes into ``plan.extra`` besides the common facts."""
        return {}

    def null_preference(self, space: SearchSpace) -> list[np.ndarray] | None:
        """:meth:`preference` computed from :attr:`null_signal` instead of the trained
        supernet (None: the controller has no null signal)."""
        return None

    def null_candidate(self, ctx: SearchContext, budget: int) -> Candidate | None:
        """Step 3 run on the null signal: the plan the discretisation gives for ``budget``
        when nothing was learned (None if the controller has no null signal, or the argmax
        of the null signal does not fit the budget). See :mod:`._signal`."""
        space = self.space_ if getattr(self, "ctx_", None) is ctx else self.search_space(ctx)
        pref = self.null_preference(space)
        if pref is None:
            return None
        try:
            return discretise(space, pref, budget, self.config["discretise"])
        except BudgetError:
            return None

    def penalty(self, supernet: nn.Module) -> Callable[[], torch.Tensor] | None:
        return None

    def after_arch(self, supernet: nn.Module) -> Callable[[], None] | None:
        return None

    def on_step(self, supernet: nn.Module) -> Callable[[int], None] | None:
        return None

    def arch_optimizer(self) -> Callable[[list[nn.Parameter]], torch.optim.Optimizer] | None:
        """The architecture parameters' optimiser (``None``: Adam at ``arch_lr``)."""
        return None

    def warm_steps(self, ctx: SearchContext) -> int:
        """Weight steps before the first architecture step (a warm start; default none)."""
        return 0

    # -- the search ----------------------------------------------------------------------
    def search(self, ctx: SearchContext) -> Plan:
        return self.search_budgets(ctx)[0]

    def search_budgets(self, ctx: SearchContext) -> list[Plan]:
        """Train one supernet, then discretise it for every budget of ``ctx.budgets``."""
        self.check_space(ctx)
        space = self.search_space(ctx)
        if not ctx.budgets:
            raise BudgetError("no budget given; pass at least one --budget")
        for b in ctx.budgets:  # fail before training, not after
            self.floor_space(ctx, space).check_budget(b)
        supernet, result = self.train(ctx, space)
        self.ctx_, self.space_ = ctx, space  # null_candidate reuses the space's byte memos
        pref = self.preference(supernet, space)
        extra = {
            "discretise": self.config["discretise"],
            "candidates": list(space.candidates),
            "preference": {n: np.round(p, 6).tolist() for n, p in zip(space.schema.names, pref)},
            **self.describe(supernet, space),
            "supernet": {
                "val_auc": float(result.val_auc), "best_epoch": result.best_epoch,
                "epochs_run": result.epochs_run, "seconds": round(result.seconds, 3),
            },
            **self.search_backbone_record(),
        }  # fmt: skip
        mode, fingerprint = self.config["discretise"], ctx.dataset.fingerprint()
        plans = []
        for b in ctx.budgets:
            cand, plan_extra = discretise(space, pref, b, mode), copy.deepcopy(extra)
            if self.null_signal:  # how much of the plan the learned signal decided
                null = self.null_candidate(ctx, b)
                plan_extra["signal"] = signal_record(cand, null, self.null_signal)
            plans.append(
                space.to_plan(cand, self.name, b, data_fingerprint=fingerprint, extra=plan_extra)
            )
        return plans

    def train(self, ctx: SearchContext, space: SearchSpace) -> tuple[nn.Module, TrainResult]:
        """Check the validation split, build the supernet in front of the backbone, train it."""
        val = ctx.dataset.split("val")
        arch_batch = int(
            self.config["arch_batch_size"] or min(max(ctx.train.batch_size // 2, 2), len(val))
        )
        check_val_split(val, arch_batch)
        generator = seed_everything(ctx.seed)
        supernet = self.build_supernet(ctx, space)
        sctx = self.supernet_context(ctx)  # the run's recipe, with search_backbone laid over it
        model = CTRModel(supernet, sctx.make_backbone()).to(ctx.device)
        result = train_darts_supernet(
            sctx, model, [*model.backbone.parameters(), *supernet.weight_parameters()], supernet.arch_parameters(),
            epochs=int(self.config["epochs"] or ctx.train.epochs), arch_lr=float(self.config["arch_lr"]),
            arch_batch_size=arch_batch, arch_every=int(self.config["arch_every"]), generator=generator,
            penalty=self.penalty(supernet), after_arch=self.after_arch(supernet), on_step=self.on_step(supernet),
            early_stop=bool(self.config["early_stop"]), desc=f"{self.name} supernet",
            arch_optimizer=self.arch_optimizer(), warm_steps=self.warm_steps(ctx),
        )  # fmt: skip
        model.eval()
        self.supernet_, self.model_ = supernet, model
        return supernet, result


class WeightsController(DartsController):
    """A DARTS controller whose supernet learns weights over the candidates (AutoDim,
    AutoEmb); their preference is derived from those weights in one way (see the module
    docstring for ``value`` and ``drop``)."""

    params: ClassVar[dict[str, Any]] = WEIGHTS_PARAMS
    param_help: ClassVar[dict[str, str]] = WEIGHTS_HELP
    extensions: ClassVar[dict[str, str]] = {
        "discretise": "'knapsack' fits each budget exactly: embsearch's ('argmax' is the paper's)",
        "early_stop": "stopping the supernet like a retrain: embsearch's (DARTS runs all epochs)",
        "value": "a knapsack value from the weights: embsearch's ('coverage' is an ablation)",
        "drop": "dim 0 as a candidate (dropping a field or group): embsearch's",
    }

    def validate(self) -> None:
        super().validate()
        self._check_choice("value", VALUES)
        self._check_bool("drop")

    def search_space(self, ctx: SearchContext) -> SearchSpace:
        """``ctx.space``, with dim 0 among the candidates when ``drop`` is on."""
        space = ctx.space
        if self.config["drop"] and 0 not in space.candidates:
            space = space.with_candidates((0, *space.candidates))
        return space

    def floor_space(self, ctx: SearchContext, space: SearchSpace) -> SearchSpace:
        """Budgets must hold every field at its smallest dim of ``ctx.space``: a field is
        dropped only where the trained weights favour it, unknown before training."""
        return ctx.space

    @abstractmethod
    def weights(self, supernet: nn.Module) -> list[np.ndarray]:
        """Learned weights over the candidates, per field ``[groups, candidates]``."""

    null_signal: ClassVar[str] = "uniform architecture weights"

    def preference(self, supernet: nn.Module, space: SearchSpace) -> list[np.ndarray]:
        """The knapsack's value (``value``: :func:`shortfall`, :func:`distance` or
        :func:`coverage`), ``log w`` for the argmax; dim 0 only where the weights favour it
        (see the module docstring)."""
        return self.preference_of(self.weights(supernet), space)

    def null_preference(self, space: SearchSpace) -> list[np.ndarray]:
        """:meth:`preference_of` uniform weights over the candidates in every group."""
        k = len(space.candidates)
        return self.preference_of([np.full((len(g), k), 1.0 / k) for g in space.groups], space)

    def preference_of(self, weights: Sequence[np.ndarray], space: SearchSpace) -> list[np.ndarray]:
        """Step 3's preference from weights per field ``[groups, candidates]``: the one code
        path for the learned weights and the null signal."""
        value_of = VALUE_KINDS[self.config["value"]][0]
        out = []
        for w in weights:
            if self.config["discretise"] == "argmax":
                v = np.log(np.clip(w, 1e-12, None))
            else:
                v = value_of(w, space.candidates)
            out.append(drop_only_where_favoured(v, w, space.candidates))
        return out

    def preference_kind(self, of: str, space: SearchSpace) -> str:
        """What ``plan.extra['preference']`` holds, ``of`` naming the weights."""
        if self.config["discretise"] == "argmax":
            kind = f"log w, w = {of}"
        else:
            kind = f"{VALUE_KINDS[self.config['value']][1]}, D ~ {of}"
        if space.candidates[0] == 0:
            kind += "; -inf: dim 0 where the weights do not favour it"
        return kind
