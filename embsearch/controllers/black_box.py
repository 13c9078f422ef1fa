"""Black-box controllers on Optuna's samplers: ``tpe`` (Bergstra et al. 2011) and ``random``.

Each Optuna trial is a candidate of the search space: one categorical parameter per (field,
group), named ``<field>/<group>``, over the space's candidate dims (``trial.suggest_categorical``).
Optuna's ask/tell interface (``study.ask()`` / ``study.tell()``) runs inside the
:class:`~embsearch.controllers.base.AskTellController` hooks, so the shared loop
(``search_loop.run_loop``) scores, records and stops as for every sample-based controller.
One in-memory study per budget (storage comes later), its sampler seeded from the run's
seed and the budget; Optuna's own logging is silenced (warnings only).

Scoring (``scoring="supernet"``, the only one so far): issue 22 lets each trial be "trained
from scratch, or fine-tuned from a supernet checkpoint when the controller has one"; this is
the supernet variant with *inherited* weights, as the evolutionary family scores its
candidates. One weight-sharing supernet (the masked max-width table OptEmbed and RULE build
on, :class:`~embsearch.embeddings.supernets_evo.MaskedSupernetEmbedding`, every example
drawing a dim per (field, group) uniformly) is trained once for every budget with
:func:`~embsearch.controllers.weight_sharing.train_weight_sharing_supernet`; a trial's score
is the validation AUC of its sub-network with the supernet's weights
(:class:`~embsearch.evaluator.InheritedWeightEvaluator`), on a fixed class-stratified
subsample of ``val_rows`` rows. Scores do not depend on the budget, so they are memoised
across the budgets of one search. Plans use ``projection='pad'`` by default (what the
inherited weights play exactly); the runner retrains the returned plan from scratch.

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
Next-generation Hyperparameter Optimization Framework", KDD 2019. ``cmaes`` (Optuna's
CmaEsSampler) needs the ``cmaes`` package, not a dependency yet, so it is not offered.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any, ClassVar

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from embsearch.backbones import CTRModel
from embsearch.context import SearchContext
from embsearch.controllers._signal import PROVENANCE_KEY, SIGNAL_KEY, candidate_of, signal_record
from embsearch.controllers.base import SEARCH_BACKBONE, AskTellController
from embsearch.controllers.param_spec import Param
from embsearch.controllers.weight_sharing import train_weight_sharing_supernet
from embsearch.embeddings.supernets_evo import SAMPLINGS, MaskedSupernetEmbedding
from embsearch.evaluator import InheritedWeightEvaluator
from embsearch.plan import Plan
from embsearch.search_loop import LoopResult, as_json
from embsearch.search_spaces.base import Candidate, SearchSpace

BLACK_BOX_SPECS: dict[str, Param] = {
    "trials": Param(64, "int", "trials per budget (each a candidate scored on validation)", 1),
    "scoring": Param(
        "supernet",
        "choice",
        "how a trial is scored: 'supernet' (inherited weights of one weight-sharing supernet)",
        choices=("supernet",),
    ),
    "supernet_epochs": Param(None, "int", "supernet epochs (None: --epochs)", 1, optional=True),
    "sampling": Param(
        "example",
        "choice",
        "how supernet training draws dims: 'example' (a dim per example and (field, group)), "
        "'step' or 'band'",
        choices=SAMPLINGS,
    ),
    "val_rows": Param(
        2048,
        "int",
        "rows of the fixed validation subsample trials are scored on (None: the whole split)",
        1,
        optional=True,
    ),
    "projection": Param(
        "pad",
        "choice",
        "plans' projection: 'pad' (what the inherited weights play) or 'linear'",
        choices=("pad", "linear"),
    ),
    "search_backbone": SEARCH_BACKBONE,
}


def quiet_optuna() -> None:
    """Optuna logs every trial at INFO; keep warnings only."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def param_name(space: SearchSpace, f: int, g: int) -> str:
    """The Optuna parameter of (field ``f``, group ``g``): ``<field>/<group>``."""
    return f"{space.schema.fields[f].name}/{g}"


def candidate_params(space: SearchSpace, cand: Candidate) -> dict[str, int]:
    """A candidate as Optuna parameters (one per (field, group))."""
    return {
        param_name(space, f, g): int(d) for f, dims in enumerate(cand) for g, d in enumerate(dims)
    }


class BlackBoxController(AskTellController):
    """The ask/tell half every Optuna controller shares; a subclass gives :meth:`make_sampler`
    (the module docstring describes the encoding, the scoring and the repair)."""

    family = "black-box"
    default_space = "field_dims"
    budget_free_scores = True
    param_specs: ClassVar[dict[str, Param]] = BLACK_BOX_SPECS
    null_signal = "constant scores (the loop keeps the sampler's first candidate)"

    @abstractmethod
    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        """The Optuna sampler of a study seeded with ``seed``."""

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
        made = getattr(self, "space_", None)
        if made is None or made[0] is not ctx.space:
            self.space_ = made = (
                ctx.space,
                ctx.space.with_projection(str(self.config["projection"])),
            )
        return made[1]

    def prepare(self, ctx: SearchContext, deadline: float | None) -> None:
        """Train the weight-sharing supernet once for every budget; build the evaluator."""
        self.check_space(ctx)
        quiet_optuna()
        space = self.search_space(ctx)
        for budget in ctx.budgets:  # fail before training
            space.check_budget(budget)
        sctx = self.supernet_context(ctx)

        def build() -> CTRModel:
            emb = MaskedSupernetEmbedding(
                space.width,
                space.candidates,
                space.groups,
                space.schema.names,
                seed=ctx.seed,
                sampling=str(self.config["sampling"]),
            )
            return CTRModel(emb, sctx.make_backbone())

        epochs = self.config["supernet_epochs"] or ctx.train.epochs
        self.supernet_, summary = train_weight_sharing_supernet(
            sctx, build, epochs, deadline, desc=f"{self.name} supernet"
        )
        self.supernet_summary_ = summary
        ctx.record(event="supernet", controller=self.name, **summary)
        val, batch = ctx.data.split("val"), ctx.train.eval_batch_size
        self.evaluator_ = InheritedWeightEvaluator(
            self.supernet_, val, batch, max_rows=self.config["val_rows"]
        )

    def evaluator(self, ctx: SearchContext, budget: int) -> InheritedWeightEvaluator:
        return self.evaluator_

    # -- ask/tell over one Optuna study per budget ------------------------------------------
    def new_study(self, ctx: SearchContext, budget: int) -> optuna.Study:
        quiet_optuna()
        sampler = self.make_sampler(self.sampler_seed(ctx, budget))
        return optuna.create_study(direction="maximize", sampler=sampler)

    def start(self, ctx: SearchContext, budget: int) -> None:
        space = self.search_space(ctx)
        self.study_ = self.new_study(ctx, budget)
        self.study_space_, self.study_budget_ = space, budget
        self.pending_: tuple[optuna.trial.Trial, Candidate | None] | None = None
        self.told_, self.repaired_ = 0, 0
        self.distributions_ = {
            param_name(space, f, g): CategoricalDistribution(list(space.candidates))
            for f, groups in enumerate(space.groups)
            for g in range(len(groups))
        }

    def _sample(self, trial: optuna.trial.Trial) -> Candidate:
        space = self.study_space_
        return tuple(
            tuple(
                int(trial.suggest_categorical(param_name(space, f, g), list(space.candidates)))
                for g in range(len(groups))
            )
            for f, groups in enumerate(space.groups)
        )

    def ask(self) -> Candidate:
        trial = self.study_.ask()
        cand = self._sample(trial)
        space, budget = self.study_space_, self.study_budget_
        if space.bytes_of(cand) <= budget:
            self.pending_ = (trial, None)
            return cand
        repaired = space.repair(cand, budget)
        trial.set_user_attr("sampled_bytes", int(space.bytes_of(cand)))
        self.pending_ = (trial, repaired)
        return repaired

    def tell(self, candidate: Candidate, score: float) -> None:
        if self.pending_ is None:
            raise RuntimeError(f"{self.name}: tell() without an ask()")
        trial, repaired = self.pending_
        self.pending_ = None
        self.told_ += 1
        ok = math.isfinite(score)
        if repaired is None:
            if ok:
                self.study_.tell(trial, float(score))
            else:
                self.study_.tell(trial, state=TrialState.FAIL)
            return
        self.repaired_ += 1
        trial.set_user_attr("repaired_to", as_json(repaired))
        self.study_.tell(trial, state=TrialState.FAIL)
        if ok:  # the repaired parameters, with their score, are what the sampler learns from
            self.study_.add_trial(
                create_trial(
                    params=candidate_params(self.study_space_, repaired),
                    distributions=self.distributions_,
                    value=float(score),
                    user_attrs={"repaired_from": trial.number},
                )
            )

    def done(self) -> bool:
        return self.told_ >= int(self.config["trials"])

    # -- the plan --------------------------------------------------------------------------
    def null_candidate(self, ctx: SearchContext, budget: int) -> Candidate | None:
        """The null-signal check (issue 18): every trial told one constant score, the loop
        keeps the first candidate (a later one never beats it): the sampler's first
        candidate for ``budget``, repaired onto it. Deterministic (the budget's sampler seed)."""
        space = self.search_space(ctx)
        study = self.new_study(ctx, budget)
        cand = self._first(study, space)
        return space.repair(cand, budget)

    def _first(self, study: optuna.Study, space: SearchSpace) -> Candidate:
        kept = getattr(self, "study_space_", None)
        self.study_space_ = space
        try:
            return self._sample(study.ask())
        finally:
            self.study_space_ = kept  # type: ignore[assignment]

    def study_summary(self) -> dict[str, Any]:
        """JSON-ready facts on this budget's study for ``plan.extra["study"]``."""
        trials = self.study_.get_trials(deepcopy=False)
        states = [t.state for t in trials]
        return {
            "sampler": type(self.study_.sampler).__name__,
            "trials": len(trials),
            "complete": states.count(TrialState.COMPLETE),
            "repaired": self.repaired_,
            "failed": states.count(TrialState.FAIL),
        }

    def finish(self, ctx: SearchContext, budget: int, result: LoopResult) -> Plan:
        plan = super().finish(ctx, budget, result)
        started = getattr(self, "study_budget_", None) == budget
        if started:
            plan.extra["study"] = self.study_summary()
        if result.best is None:
            provenance = "fallback (nothing evaluated)"
        else:
            provenance = self.name if result.stop_reason == "done" else f"{self.name}, cut short"
        if result.stop_reason == "done" and result.best is not None:
            null = self.null_candidate(ctx, budget)
            plan.extra[SIGNAL_KEY] = signal_record(candidate_of(plan), null, self.null_signal)
        plan.extra.update(
            {
                PROVENANCE_KEY: provenance,
                "scoring": str(self.config["scoring"]),
                "supernet": self.supernet_summary_,
                "inherited_val_auc": result.best_score if result.best is not None else None,
            }
        )
        plan.extra.update(self.search_backbone_record())
        return plan


class TPE(BlackBoxController):
    """Tree-structured Parzen Estimator over per-(field, group) dims (Optuna's TPESampler)."""

    name = "tpe"
    paper = (
        "James Bergstra, Remi Bardenet, Yoshua Bengio, Balazs Kegl. Algorithms for "
        "Hyper-Parameter Optimization. NeurIPS 2011; via Optuna (Takuya Akiba, Shotaro Sano, "
        "Toshihiko Yanase, Takeru Ohta, Masanori Koyama. Optuna: A Next-generation "
        "Hyperparameter Optimization Framework. KDD 2019)"
    )
    supported_spaces = ("field_dims", "feature_dims")
    param_specs: ClassVar[dict[str, Param]] = {
        **BLACK_BOX_SPECS,
        "n_startup_trials": Param(
            16, "int", "random trials before TPE models the scores (Optuna's n_startup_trials)", 0
        ),
        "multivariate": Param(
            True,
            "bool",
            "model the parameters jointly (Optuna's multivariate TPE) instead of one at a time",
        ),
        "n_ei_candidates": Param(
            24, "int", "samples from the good-trials density TPE ranks per trial", 1
        ),
    }

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        import warnings

        with warnings.catch_warnings():  # multivariate is "experimental" in Optuna's words
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                n_startup_trials=int(self.config["n_startup_trials"]),
                n_ei_candidates=int(self.config["n_ei_candidates"]),
                multivariate=bool(self.config["multivariate"]),
                seed=seed,
            )


class RandomSearch(BlackBoxController):
    """Uniform random candidates (Optuna's RandomSampler), repaired onto the budget."""

    name = "random"
    paper = (
        "James Bergstra, Yoshua Bengio. Random Search for Hyper-Parameter Optimization. JMLR "
        "13, 2012; via Optuna (Akiba et al., KDD 2019)"
    )
    supported_spaces = ("field_dims", "feature_dims")

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.RandomSampler(seed=seed)
