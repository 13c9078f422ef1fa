"""The differentiable family's public base: subclass :class:`DartsController` (or
:class:`WeightsController`) to write a DARTS-style controller.

A search trains one supernet and discretises it for every budget:

1. :func:`~embsearch.controllers.darts_training.check_val_split`: the validation split must
   feed architecture steps;
2. :func:`~embsearch.controllers.darts_training.train_darts_supernet`: first-order DARTS,
   weight steps on training batches alternating with architecture steps on validation
   batches (:mod:`.darts_training`);
3. :func:`~embsearch.controllers.discretise.discretise`: the learned preferences become the
   best plan within each byte budget (exact knapsack), or the papers' per-group argmax
   (:mod:`.discretise`, which also defines the value kinds of learned weights).

Hooks of :class:`DartsController` (called by :meth:`DartsController.search_budgets`, in
this order):

- ``param_specs``: the parameters (``COMMON_SPECS``, or ``WEIGHTS_SPECS`` for a
  :class:`WeightsController`, and the controller's own), checked in ``__init__``;
  ``validate() -> None`` after them: checks between parameters (call ``super()``);
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

:class:`WeightsController` is the base of controllers whose supernet learns weights over
the candidates (AutoDim, AutoEmb): its ``value`` parameter picks how weights become a
knapsack value (``shortfall``, ``distance`` or ``coverage``) and ``drop`` adds dim 0, taken
only where a group's weights favour it (both in :mod:`.discretise`).
"""

from __future__ import annotations

import copy
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from embsearch.backbones import CTRModel
from embsearch.context import SearchContext
from embsearch.controllers._signal import signal_record
from embsearch.controllers.base import SEARCH_BACKBONE, Controller, SearchState
from embsearch.controllers.darts_training import check_val_split, train_darts_supernet
from embsearch.controllers.discretise import (
    DISCRETISE_MODES,
    VALUE_KINDS,
    VALUES,
    discretise,
    drop_only_where_favoured,
)
from embsearch.controllers.param_spec import Param, defaults_of, help_of
from embsearch.errors import BudgetError
from embsearch.plan import Plan
from embsearch.search_spaces.base import Candidate, SearchSpace
from embsearch.train.device import seed_everything
from embsearch.train.trainer import TrainResult

COMMON_SPECS: dict[str, Param] = {
    "epochs": Param(None, "int", "supernet epochs (None: --epochs)", 1, 10_000, optional=True),
    "arch_lr": Param(
        3e-2, "float", "Adam learning rate of the architecture parameters", 0.0, 10.0, True
    ),
    "arch_batch_size": Param(
        None,
        "int",
        "validation rows per architecture step (None: half a training batch, at most the "
        "validation split)",
        2,
        2**24,
        optional=True,
    ),
    "arch_every": Param(1, "int", "one architecture step per this many weight steps", 1, 10_000),
    "discretise": Param(
        "knapsack",
        "choice",
        "'knapsack': the best plan within each budget; 'argmax': the paper's per-field rule, "
        "which ignores the budget",
        choices=DISCRETISE_MODES,
    ),
    "early_stop": Param(
        True,
        "bool",
        "stop the supernet like a retrain and keep its best epoch's architecture (false: "
        "DARTS's fixed epochs and last architecture)",
        extension="stopping the supernet like a retrain: embsearch's (DARTS runs all epochs)",
    ),
    "search_backbone": SEARCH_BACKBONE,
}

WEIGHTS_SPECS: dict[str, Param] = {
    **COMMON_SPECS,
    "discretise": replace(
        COMMON_SPECS["discretise"],
        extension="'knapsack' fits each budget exactly: embsearch's ('argmax' is the paper's)",
    ),
    "value": Param(
        "shortfall",
        "choice",
        "the knapsack's value of a dim: 'shortfall' (minus the expected doublings it falls "
        "short of the learned dim; fills the budget), 'distance' (minus the expected doublings "
        "away from it, short or over) or 'coverage' (log P(D <= d))",
        choices=VALUES,
        extension="a knapsack value from the weights: embsearch's ('coverage' is an ablation)",
    ),
    "drop": Param(
        True,
        "bool",
        "add dim 0 to the candidates; a field or group is dropped only where its weights favour "
        "dim 0 (false: no dim 0 unless --candidates names it)",
        extension="dim 0 as a candidate (dropping a field or group): embsearch's",
    ),
}

# the defaults and help alone, for plug-ins that declare plain dicts
COMMON_PARAMS, COMMON_HELP = defaults_of(COMMON_SPECS), help_of(COMMON_SPECS)
WEIGHTS_PARAMS, WEIGHTS_HELP = defaults_of(WEIGHTS_SPECS), help_of(WEIGHTS_SPECS)


@dataclass
class DartsState(SearchState):
    """A DARTS search's state, beyond :class:`SearchState` (its ``space`` and trained
    ``supernet``): the context it was searched in (``ctx``, so the null-signal check reuses
    the space's byte memos), the whole trained model (``model``: supernet and backbone),
    and what a controller derives once from the trained supernet (``derived``: e.g.
    AutoEmb's mean group weights)."""

    ctx: SearchContext | None = None
    model: nn.Module | None = None
    derived: Any = None


class DartsController(Controller):
    """A supernet trained once by first-order DARTS, then discretised for every budget.

    Subclasses give :meth:`build_supernet` (with ``arch_parameters()`` and
    ``weight_parameters()``), :meth:`preference` and optionally :meth:`describe` and the
    hooks :meth:`penalty`, :meth:`after_arch`, :meth:`on_step`. The trained supernet and
    model are kept in ``self.state`` (:class:`DartsState`, fresh for each search). The
    returned plans carry no weights:
    the search runner retrains each from scratch.
    """

    family = "differentiable"
    param_specs: ClassVar[dict[str, Param]] = COMMON_SPECS
    state_class: ClassVar[type[SearchState]] = DartsState
    state: DartsState
    # the uninformative signal :meth:`null_preference` stands for ("": none; see _signal.py)
    null_signal: ClassVar[str] = ""

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
        state = self.state
        space = state.space if state.ctx is ctx and state.space else self.search_space(ctx)
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
        self.new_state()
        space = self.search_space(ctx)
        if not ctx.budgets:
            raise BudgetError("no budget given; pass at least one --budget")
        for b in ctx.budgets:  # fail before training, not after
            self.floor_space(ctx, space).check_budget(b)
        supernet, result = self.train(ctx, space)
        self.state.ctx, self.state.space = ctx, space  # null_candidate reuses its byte memos
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
        self.state.supernet, self.state.model = supernet, model
        return supernet, result


class WeightsController(DartsController):
    """A DARTS controller whose supernet learns weights over the candidates (AutoDim,
    AutoEmb); their preference is derived from those weights in one way (see the module
    docstring for ``value`` and ``drop``)."""

    param_specs: ClassVar[dict[str, Param]] = WEIGHTS_SPECS

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
        """The knapsack's value (``value``: ``shortfall``, ``distance`` or ``coverage``, see
        :mod:`.discretise`), ``log w`` for the argmax; dim 0 only where the weights favour
        it."""
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
