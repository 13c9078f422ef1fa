"""Black-box controllers on Optuna's samplers: the base every one shares (``tpe``, Bergstra et
al. 2011, in :mod:`.tpe`; ``random`` in :mod:`.random_search`; ``cmaes``; ``nsga2``).

Each Optuna trial is a candidate of the search space: one categorical parameter per (field,
group), named ``<field>/<group>``, over the block's candidate dims
(``trial.suggest_categorical``); in a composed space one per (field, group) and axis, naming
one option of the block, scored on the supernet through the block proxy
(:mod:`.black_box_composed`, :mod:`.block_proxy`).
Optuna's ask/tell interface (``study.ask()`` / ``study.tell()``) runs inside the
:class:`~embsearch.controllers.base.AskTellController` hooks, so the shared loop
(``search_loop.run_loop``) scores, records and stops as for every sample-based controller;
a trial's id is its Optuna trial number, so several may be in flight. One study per budget,
in the run's Optuna storage when the context has one (the runner's journal file or
``--storage URL``; in memory otherwise), its sampler seeded per ask from the run's seed,
the budget and the ask's index, so a killed search resumes where it stopped
(:mod:`.black_box_study`); Optuna's own logging is silenced (warnings only). A subclass
gives the sampler and, if it cannot model categoricals (CMA-ES, :mod:`.cma_es`), its own
encoding (``distribution``/``suggest``/``encode``/``decode``).

Scoring (:mod:`.black_box_scoring`): ``scoring="supernet"`` (the default) is the issue's
"fine-tuned from a supernet checkpoint" with *inherited* weights, as the evolutionary family
scores its candidates: one weight-sharing supernet (the masked max-width table OptEmbed and
RULE build on, every example drawing a dim per (field, group) uniformly) is trained once for
every budget, and a trial's score is its sub-network's validation AUC on a fixed
class-stratified subsample of ``val_rows`` rows; such scores do not depend on the budget, so
they are memoised across the budgets of one search. ``scoring="scratch"`` trains each
trial's plan from scratch instead. Either can run in worker processes or on a Ray cluster
(``--executor``). Plans use ``projection='pad'`` by default (what the inherited weights play
exactly); the runner retrains the returned plan from scratch.

Over-budget trials are never scored: a sampled candidate over the budget is repaired onto
it (``space.repair``: the knapsack over dims no larger than the sampled ones, keeping each
dim as close as it can). The sampled trial is then told ``FAIL`` (its user attribute
``repaired_to`` names the trial that replaced it), and the repaired parameters are recorded
in the study with their score by ``study.add_trial`` (user attribute ``repaired_from``):
the sampler learns from the feasible candidates that were scored, never from an
infeasible one, and no infeasible trial can be the result (failed trials have no value).

The null signal (issue 18, :mod:`._signal`): a constant score for every trial. The loop keeps
a candidate only when it beats the best so far, so under a constant score the pick is the
first candidate the sampler asks for (repaired onto the budget): that is the null plan, and
``plan.extra["signal"]`` records the share of (field, group) cells the plan shares with it.

Citations: TPE, Bergstra, Bardenet, Bengio, Kegl, "Algorithms for Hyper-Parameter
Optimization", NeurIPS 2011; Optuna, Akiba, Sano, Yanase, Ohta, Koyama, "Optuna: A
Next-generation Hyperparameter Optimization Framework", KDD 2019. ``cmaes`` is in
:mod:`.cma_es`, ``nsga2`` (two objectives, a Pareto front) in :mod:`.nsga2`.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import TrialState, create_trial

from embsearch.context import SearchContext
from embsearch.controllers._signal import PROVENANCE_KEY, SIGNAL_KEY, signal_record
from embsearch.controllers.base import AskTellController, SearchState
from embsearch.controllers.black_box_composed import (
    composed_candidate,
    composed_distributions,
    composed_params,
    composed_sample,
    composed_start,
    param_name,
)
from embsearch.controllers.black_box_params import BLACK_BOX_SPECS
from embsearch.controllers.black_box_scoring import (
    ScratchEvaluator,
    inherited_evaluator,
    make_supernet,
    remote_evaluator,
    trial_epochs,
    trial_recipe,
)
from embsearch.controllers.black_box_study import (
    REPAIRED_FROM,
    ask_seed,
    ask_study,
    open_study,
    recover,
)
from embsearch.controllers.param_spec import Param
from embsearch.controllers.weight_sharing import train_weight_sharing_supernet
from embsearch.evaluator import Evaluator
from embsearch.plan import Plan
from embsearch.search_loop import LoopResult, Trial, as_json
from embsearch.search_spaces.base import Candidate, SearchSpace
from embsearch.search_spaces.composed import ComposedSpace


def quiet_optuna() -> None:
    """Optuna logs every trial at INFO; keep warnings only."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def candidate_params(space: SearchSpace, cand: Candidate) -> dict[str, int]:
    """A candidate as Optuna parameters (one per (field, group))."""
    return {
        param_name(space, f, g): int(d) for f, dims in enumerate(cand) for g, d in enumerate(dims)
    }


@dataclass
class BlackBoxState(SearchState):
    """A black-box search's state, beyond :class:`SearchState`: the context space its own
    space was made from (``made_from``), the ``evaluator`` (:mod:`.black_box_scoring`), and the budget
    being searched: its Optuna ``study``, sampler seed, space and budget, the trials in
    flight (``pending``: id -> (trial, repaired candidate or None)), how many were told and
    repaired, and each parameter's distribution."""

    made_from: SearchSpace | None = None
    evaluator: Evaluator | None = None
    study: optuna.Study | None = None
    study_seed: int = 0
    study_space: SearchSpace | None = None
    study_budget: int | None = None
    pending: dict[int, tuple[optuna.trial.Trial, Candidate | None]] = field(default_factory=dict)
    told: int = 0
    repaired: int = 0
    distributions: dict[str, BaseDistribution] = field(default_factory=dict)


class BlackBoxController(AskTellController):
    """The ask/tell half every Optuna controller shares; a subclass gives :meth:`make_sampler`
    (the module docstring describes the encoding, the scoring and the repair; the study's
    storage, seeds and resume are :mod:`.black_box_study`'s)."""

    family = "black-box"
    default_space = "field_dims"
    budget_free_scores = True
    param_specs: ClassVar[dict[str, Param]] = BLACK_BOX_SPECS
    state_class: ClassVar[type[SearchState]] = BlackBoxState
    state: BlackBoxState
    null_signal = "constant scores (the loop keeps the sampler's first candidate)"
    directions: ClassVar[tuple[str, ...]] = ("maximize",)  # one per value of values_of
    carried_prefixes: ClassVar[tuple[str, ...]] = ()  # see carried_attrs
    stores_trials = True  # its own study holds its trials (the loop's recorder skips it)
    remote_trials = True  # its trials can run in workers (trial_recipe, remote_evaluator)

    @abstractmethod
    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        """The Optuna sampler of a study seeded with ``seed``."""

    # -- the encoding (one parameter per (field, group)); CMA-ES encodes indices instead ---
    def distribution(self, space: SearchSpace, f: int = 0, g: int = 0) -> BaseDistribution:
        """Block ``(f, g)``'s parameter distribution: its keys (``space.block_keys``: the
        candidate dims in the dims-only spaces, option indices in composed ones), categorical."""
        return CategoricalDistribution(list(space.block_keys(f, g)))

    def suggest(
        self, trial: optuna.trial.Trial, name: str, space: SearchSpace, f: int = 0, g: int = 0
    ) -> int:
        """Block ``(f, g)``'s key from ``trial``."""
        return int(trial.suggest_categorical(name, list(space.block_keys(f, g))))

    def encode(self, space: SearchSpace, dim: int) -> Any:
        """A dim as its parameter value."""
        return int(dim)

    def decode(self, space: SearchSpace, value: Any) -> int:
        """A parameter value as its dim."""
        return int(value)

    def params_of(self, space: SearchSpace, cand: Candidate) -> dict[str, Any]:
        """A candidate as Optuna parameters (one per (field, group); in a composed space one
        per (field, group) and axis, ``<field>/<group>/<axis>``)."""
        if isinstance(space, ComposedSpace):
            return composed_params(space, cand)
        return {
            param_name(space, f, g): self.encode(space, d)
            for f, dims in enumerate(cand)
            for g, d in enumerate(dims)
        }

    def candidate_from(self, space: SearchSpace, params: dict[str, Any]) -> Candidate:
        """The candidate of a trial's parameters."""
        if isinstance(space, ComposedSpace):
            return composed_candidate(space, params)
        return tuple(
            tuple(self.decode(space, params[param_name(space, f, g)]) for g in range(len(gs)))
            for f, gs in enumerate(space.groups)
        )

    def values_of(self, metrics: dict[str, float]) -> float | list[float]:
        """What the study is told for a scored trial (one value per :attr:`directions`)."""
        return float(metrics["score"])

    @property
    def total(self) -> int:
        """Trials per budget (the loop's progress bar)."""
        return int(self.config["trials"])

    def sampler_seed(self, ctx: SearchContext, budget: int) -> int:
        """The budget's sampler seed, from the run's seed and the budget."""
        return int(ctx.rng(budget).integers(2**31 - 1))

    # -- the supernet (once per search) --------------------------------------------------------
    def search_space(self, ctx: SearchContext) -> SearchSpace:
        """The context's space with the plans' projection set to ``projection`` (one copy per
        context space, so its byte memos serve the whole search)."""
        state = self.state
        if state.space is None or state.made_from is not ctx.space:
            state.space = ctx.space.with_projection(str(self.config["projection"]))
            state.made_from = ctx.space
        return state.space

    def prepare(self, ctx: SearchContext, deadline: float | None) -> None:
        """Train the weight-sharing supernet once for every budget; build the evaluator."""
        self.check_space(ctx)
        quiet_optuna()
        space = self.search_space(ctx)
        for budget in ctx.budgets:  # fail before training
            space.check_budget(budget)
        if self.config["scoring"] == "scratch":  # no supernet: each trial trains its plan
            epochs = trial_epochs(self, ctx)
            self.state.evaluator = ScratchEvaluator(ctx, space, self.name, epochs)
            return
        # trained, or on a resume loaded (RUN_DIR/supernet.pt) or continued from its epoch
        # checkpoint, and saved for the workers (weight_sharing)
        self.state.supernet, summary = train_weight_sharing_supernet(
            self.supernet_context(ctx),
            lambda: make_supernet(self, ctx, space),
            self.config["supernet_epochs"] or ctx.train.epochs,
            deadline,
            desc=f"{self.name} supernet",
        )
        self.state.supernet_summary = summary
        ctx.record(event="supernet", controller=self.name, **summary)
        self.state.evaluator = inherited_evaluator(self, ctx, space, self.state.supernet)

    def evaluator(self, ctx: SearchContext, budget: int) -> Evaluator:
        return self.state.evaluator

    def trial_recipe(self, ctx: SearchContext, budget: int) -> dict[str, Any] | None:
        """What a worker rebuilds this search's evaluator from (``--executor local``/``ray``)."""
        return trial_recipe(self, ctx)

    def remote_evaluator(self, ctx: SearchContext, recipe: dict[str, Any]) -> Evaluator:
        """In a worker: the evaluator of ``recipe`` (:mod:`.black_box_scoring`)."""
        return remote_evaluator(self, ctx, recipe)

    # -- ask/tell over one Optuna study per budget ------------------------------------------
    def start(self, ctx: SearchContext, budget: int) -> None:
        """This budget's study (in the run's storage, taken up again after a kill)."""
        quiet_optuna()
        space = self.search_space(ctx)
        self.state.study_seed = self.sampler_seed(ctx, budget)
        name = ctx.store.study_name(self.name, budget) if ctx.store is not None else ""
        sampler = self.make_sampler(ask_seed(self.state.study_seed, 0))
        self.state.study = open_study(ctx.store, name, self.directions, sampler)
        self.state.study_space, self.state.study_budget = space, budget
        self.state.pending = {}
        self.state.told = recover(self.state.study)
        self.state.repaired = sum(
            1 for t in self.state.study.get_trials(deepcopy=False) if REPAIRED_FROM in t.user_attrs
        )
        self.state.distributions = {
            name: dist
            for f, groups in enumerate(space.groups)
            for g in range(len(groups))
            for name, dist in self.block_distributions(space, f, g).items()
        }
        if isinstance(space, ComposedSpace) and not self.state.study.get_trials(deepcopy=False):
            self.state.study.enqueue_trial(self.params_of(space, composed_start(space, budget)))

    def block_distributions(self, space: SearchSpace, f: int, g: int) -> dict[str, Any]:
        """Block ``(f, g)``'s parameters and their distributions: one, or in a composed
        space one categorical per axis (``space.axis_values``: each axis drawn on its own)."""
        if isinstance(space, ComposedSpace):
            return composed_distributions(space, f, g)
        return {param_name(space, f, g): self.distribution(space, f, g)}

    def resumed_trials(self) -> list[tuple[Candidate, float]]:
        """The scored trials a killed run of this budget left (none in a fresh study), in
        trial order: the loop starts from them and never runs them again."""
        done = self.state.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return [(self.candidate_from(self.state.study_space, t.params), t.values[0]) for t in done]

    def _sample(self, trial: optuna.trial.Trial) -> Candidate:
        space = self.state.study_space
        if isinstance(space, ComposedSpace):
            return composed_sample(trial, space)
        return tuple(
            tuple(self.suggest(trial, param_name(space, f, g), space, f, g) for g in range(len(gs)))
            for f, gs in enumerate(space.groups)
        )

    def ask_trial(self) -> Trial | None:
        """The next trial: the sampler's candidate, repaired onto the budget if over it;
        its id is the sampled Optuna trial's number."""
        if self.state.told + len(self.state.pending) >= self.total:  # the rest are in flight
            return None
        trial, _ = ask_study(self.state.study, self.make_sampler, self.state.study_seed)
        cand = self._sample(trial)
        space, budget = self.state.study_space, self.state.study_budget
        if space.bytes_of(cand) <= budget:
            self.state.pending[trial.number] = (trial, None)
            return Trial(trial.number, cand)
        repaired = space.repair(cand, budget)
        trial.set_user_attr("sampled_bytes", int(space.bytes_of(cand)))
        self.state.pending[trial.number] = (trial, repaired)
        return Trial(trial.number, repaired)

    def tell_trial(self, trial_id: int, metrics: dict[str, float]) -> None:
        """Tell the study trial ``trial_id``'s values; a repaired trial's sampled parameters
        are told ``FAIL`` and the repaired ones added with the values."""
        if trial_id not in self.state.pending:
            raise RuntimeError(f"{self.name}: tell_trial({trial_id}) for no trial in flight")
        trial, repaired = self.state.pending.pop(trial_id)
        self.state.told += 1
        ok = math.isfinite(float(metrics["score"]))
        if repaired is None:
            if ok:
                self.state.study.tell(trial, self.values_of(metrics))
            else:
                self.state.study.tell(trial, state=TrialState.FAIL)
            return
        self.state.repaired += 1
        trial.set_user_attr("repaired_to", as_json(repaired))
        if ok:  # the repaired parameters, with their values, are what the sampler learns from
            values = self.values_of(metrics)
            self.state.study.add_trial(  # before the FAIL: a kill between the two loses no score
                create_trial(
                    params=self.params_of(self.state.study_space, repaired),
                    distributions=self.state.distributions,
                    values=values if isinstance(values, list) else [values],
                    user_attrs={REPAIRED_FROM: trial.number},
                    system_attrs=self.carried_attrs(trial),
                )
            )
        self.state.study.tell(trial, state=TrialState.FAIL)

    def carried_attrs(self, trial: optuna.trial.Trial) -> dict[str, Any]:
        """The sampled trial's system attributes under :attr:`carried_prefixes` (a sampler's
        generation bookkeeping), for its repaired replacement: the repaired point is what
        the sampler's population holds (Lamarckian repair)."""
        if not self.carried_prefixes:
            return {}
        attrs = self.state.study._storage.get_trial(trial._trial_id).system_attrs
        return {k: v for k, v in attrs.items() if k.startswith(self.carried_prefixes)}

    def ask(self) -> Candidate:
        trial = self.ask_trial()
        assert trial is not None
        return trial.candidate

    def tell(self, candidate: Candidate, score: float) -> None:
        """The last asked trial's score (callers that know only candidates)."""
        if not self.state.pending:
            raise RuntimeError(f"{self.name}: tell() without an ask()")
        self.tell_trial(max(self.state.pending), {"score": float(score)})

    def done(self) -> bool:
        return self.state.told >= int(self.config["trials"])

    # -- the plan --------------------------------------------------------------------------
    def null_candidate(self, ctx: SearchContext, budget: int) -> Candidate | None:
        """The null-signal check (issue 18): every trial told one constant score, the loop
        keeps the first candidate (a later one never beats it): the sampler's first
        candidate for ``budget``, repaired onto it. Deterministic (the budget's sampler seed)."""
        space = self.search_space(ctx)
        if isinstance(space, ComposedSpace):  # the enqueued first trial (composed_start)
            return composed_start(space, budget)
        seed = ask_seed(self.sampler_seed(ctx, budget), 0)
        study = optuna.create_study(
            directions=list(self.directions), sampler=self.make_sampler(seed)
        )
        cand = self._first(study, space)
        return space.repair(cand, budget)

    def _first(self, study: optuna.Study, space: SearchSpace) -> Candidate:
        kept = self.state.study_space
        self.state.study_space = space
        try:
            return self._sample(study.ask())
        finally:
            self.state.study_space = kept

    def study_summary(self) -> dict[str, Any]:
        """JSON-ready facts on this budget's study for ``plan.extra["study"]``."""
        trials = self.state.study.get_trials(deepcopy=False)
        states = [t.state for t in trials]
        return {
            "sampler": type(self.state.study.sampler).__name__,
            "trials": len(trials),
            "complete": states.count(TrialState.COMPLETE),
            "repaired": self.state.repaired,
            "failed": states.count(TrialState.FAIL),
        }

    def finish(self, ctx: SearchContext, budget: int, result: LoopResult) -> Plan:
        plan = super().finish(ctx, budget, result)
        started = self.state.study_budget == budget
        if started:
            plan.extra["study"] = self.study_summary()
        if result.best is None:
            provenance = "fallback (nothing evaluated)"
        else:
            provenance = self.name if result.stop_reason == "done" else f"{self.name}, cut short"
        if result.stop_reason == "done" and result.best is not None:
            null = self.null_candidate(ctx, budget)
            chosen = self.search_space(ctx).candidate_of(plan)  # dims in dims-only spaces
            plan.extra[SIGNAL_KEY] = signal_record(chosen, null, self.null_signal)
        plan.extra.update(
            {
                PROVENANCE_KEY: provenance,
                "scoring": str(self.config["scoring"]),
                "supernet": self.state.supernet_summary,
                f"{self.state.evaluator.name}_val_auc": (
                    result.best_score if result.best is not None else None
                ),
            }
        )
        plan.extra.update(self.search_backbone_record())
        return plan
