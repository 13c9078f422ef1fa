"""The evolutionary family's public base: subclass :class:`EvolutionaryController` to write
an evolutionary controller. It runs one :class:`~embsearch.controllers.evolution.Evolution`
per budget (top-k selection, crossover between fields, mutation, children repaired onto
the budget; :mod:`.evolution`) through the shared ask/tell loop, seeded with the uniform
plan that fits the budget and the widest candidate projected onto it. The supernet whose
inherited weights score the candidates is trained by
:func:`~embsearch.controllers.weight_sharing.train_weight_sharing_supernet`
(:mod:`.weight_sharing`).

Hooks of :class:`EvolutionaryController` (an
:class:`~embsearch.controllers.base.AskTellController` whose ``start``, ``ask``, ``tell``
and ``done`` run the budget's evolution), in the order the shared loop calls them:

- ``param_specs``: the parameters, ``EVOLUTION_SPECS`` (the base's) and the controller's
  own, checked in ``__init__``; ``validate() -> None`` after them: checks between
  parameters (call ``super()``, which checks ``top_k <= population``);
- ``prepare(ctx, deadline) -> None``: once per search, before any budget; train the
  supernet (:func:`~embsearch.controllers.weight_sharing.train_weight_sharing_supernet`,
  which stops at ``deadline``) and build the evaluators, keeping them in ``self.state``
  (an :class:`EvolutionState`, fresh for each search; a subclass with more to keep
  declares its own and names it in ``state_class``); a controller that runs final checks
  sets ``state.full`` (an evaluator) here;
- ``search_space(ctx) -> SearchSpace``: the space plans are made and bytes counted in;
  ``evolution_space(ctx) -> SearchSpace``: the space evolved in (default the same);
- ``evaluator(ctx, budget) -> Evaluator`` (required): per budget; what the loop scores
  candidates with (scores do not depend on the budget: ``budget_free_scores``);
- ``final_evaluator() -> Evaluator``: what :meth:`~EvolutionaryController.run_final_checks`
  scores finalists with (default ``state.full``);
- ``finish(ctx, budget, result) -> Plan``: per budget, after the loop; the plan from the
  loop's best candidate (call ``super()``, which records the evolution's summary), or a
  choice among finalists re-checked with ``run_final_checks`` and ``ranked_within``;
  a controller with ``carry_picks = True`` calls ``remember_pick(cand)`` with its pick, so
  the larger budgets' populations are seeded with it (``carried``).

Trials on an executor (``--executor local``/``ray``, issue 22 item 5): a controller that
sets ``remote_trials = True`` gives ``build_supernet(ctx, space)`` (its supernet, untrained)
and ``scorer(ctx, model)`` (a trained supernet -> the evaluator its loop scores with); its
``prepare`` calls both, and a worker rebuilds the same evaluator from the options and the
saved ``RUN_DIR/supernet.pt`` (``trial_recipe``, ``remote_evaluator``). The final checks
stay in this process.

Helpers: :func:`~embsearch.controllers.weight_sharing.plan_weights` (a plan's weights from
a zero-padded supernet, for a controller that serves its plans) and, for the null-signal
check, ``constant_score_finalists`` (what the evolution picks when every score is equal).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import nn

from embsearch.context import SearchContext
from embsearch.controllers.base import AskTellController, SearchState
from embsearch.controllers.evolution import (
    EVOLUTION_SPECS,
    Evolution,
    EvolutionConfig,
    check_top_k,
    uniform_selection,
)
from embsearch.controllers.param_spec import Param
from embsearch.controllers.weight_sharing import SupernetTrials
from embsearch.evaluator import Evaluator, InheritedWeightEvaluator
from embsearch.plan import Plan
from embsearch.search_loop import LoopResult, run_loop
from embsearch.search_spaces.base import Candidate, SearchSpace
from embsearch.train.metrics import PairedMargin, paired_auc_difference


def paired_margin(
    evaluator: InheritedWeightEvaluator, challenger: Candidate, incumbent: Candidate, k: float
) -> PairedMargin:
    """The final selection's one test, shared by the evolutionary controllers: does
    ``challenger`` validate better than ``incumbent`` by more than ``k`` standard errors of
    the paired AUC difference on ``evaluator``'s rows? (OptEmbed's uniform gate: the pick
    challenges the uniform plan; RULE's step 5: a safety check challenges the evolution's
    best.)"""
    a, b, se = paired_auc_difference(
        evaluator.y, evaluator.predict(challenger), evaluator.predict(incumbent)
    )
    return PairedMargin(a, b, se, float(k))


class FixedAsker:
    """An asker for the shared loop that hands out a fixed list of candidates (final checks)."""

    def __init__(self, name: str, cands: Sequence[Candidate]) -> None:
        self.name, self.queue = name, list(cands)
        self.total = len(self.queue)

    def done(self) -> bool:
        return not self.queue

    def ask(self) -> Candidate:
        return self.queue.pop(0)

    def tell(self, candidate: Candidate, score: float) -> None:
        """Scores change nothing here: the loop records them and keeps the best."""
        return None


@dataclass
class EvolutionState(SearchState):
    """An evolutionary search's state (``self.state``; :class:`SearchState` for the rest):
    its evaluators (``evaluator`` scores the evolution, ``full`` the whole validation split
    for the final checks, whose scores ``final_memo`` keeps), the budget's
    :class:`~embsearch.controllers.evolution.Evolution` and the budget it runs for, and each
    searched budget's pick (``picked``, budgets ascending; see ``carried``)."""

    evaluator: Evaluator | None = None
    full: Evaluator | None = None
    final_memo: dict[Candidate, float] = field(default_factory=dict)
    evolution: Evolution | None = None
    evolution_budget: int | None = None
    picked: list[Candidate] = field(default_factory=list)


class EvolutionaryController(SupernetTrials, AskTellController):
    """The ask/tell half every evolutionary controller shares (OptEmbed's and RULE's search
    step): one :class:`~embsearch.controllers.evolution.Evolution` per budget over
    :meth:`evolution_space`, seeded with the uniform plan that fits the budget and the widest candidate projected onto it. Scores do
    not depend on the budget, so the shared loop memoises them across budgets
    (``budget_free_scores``). The hooks a subclass gives are listed in the module docstring."""

    budget_free_scores = True
    carry_picks: ClassVar[bool] = False  # see :meth:`carried`
    remote_trials: ClassVar[bool] = False  # see build_supernet, scorer (module docstring)
    param_specs: ClassVar[dict[str, Param]] = EVOLUTION_SPECS
    state_class: ClassVar[type[SearchState]] = EvolutionState
    state: EvolutionState

    def validate(self) -> None:
        super().validate()
        if "top_k" in self.config and "population" in self.config:
            check_top_k(self.name, self.config)

    def build_supernet(self, ctx: SearchContext, space: SearchSpace) -> nn.Module:
        """The supernet, untrained (seeded): ``prepare`` trains it, a worker loads its
        weights (``remote_trials``)."""
        raise NotImplementedError(f"{self.name}: no build_supernet; its trials stay here")

    def scorer(self, ctx: SearchContext, model: nn.Module) -> Evaluator:
        """What the loop scores with, from a trained supernet (``remote_trials``)."""
        raise NotImplementedError(f"{self.name}: no scorer; its trials stay here")

    def ranked_within(self, space: SearchSpace, budget: int) -> list[Candidate]:
        """This budget's told candidates, best first: finite scores within ``budget`` only."""
        return [
            c
            for c, s in self._evolution().ranked()
            if math.isfinite(s) and space.bytes_of(c) <= budget
        ]

    def run_final_checks(
        self, ctx: SearchContext, budget: int, space: SearchSpace, cands: Sequence[Candidate]
    ) -> LoopResult:
        """Score ``cands`` with :meth:`final_evaluator` through the shared loop: recorded as
        phase ``final``, memoised in ``state.final_memo``, in this process whatever the
        executor."""
        return run_loop(
            FixedAsker(self.name, cands),
            self.final_evaluator(),
            ctx,
            budget,
            space=space,
            phase="final",
            cache=self.state.final_memo,
            in_process=True,  # a few candidates on the whole split: cheaper than shipping
        )

    def final_evaluator(self) -> Evaluator:
        """What the final checks score with: ``state.full`` (the whole validation split)."""
        if self.state.full is None:
            raise RuntimeError(f"{self.name}: prepare() set no state.full for the final checks")
        return self.state.full

    def constant_score_finalists(self, ctx: SearchContext, budget: int, n: int) -> list[Candidate]:
        """For the null-signal check (issue 18): the evolution for ``budget`` told one constant
        score for every candidate, so it ranks them in the order it met them, without the
        smaller budgets' picks (they came from the signal); its first ``n`` within the
        budget. It draws from ``ctx.rng(budget)``, as the search did, and leaves the search's
        own evolution state as it was."""
        state = self.state
        kept = state.evolution, state.evolution_budget, state.picked
        try:
            state.picked = []
            self.start(ctx, budget)
            evolution = self._evolution()
            while not evolution.done():
                evolution.tell(evolution.ask(), 0.0)
            return self.ranked_within(self.evolution_space(ctx), budget)[:n]
        finally:
            state.evolution, state.evolution_budget, state.picked = kept

    def evolution_space(self, ctx: SearchContext) -> SearchSpace:
        """The space evolved in; default :meth:`search_space`."""
        return self.search_space(ctx)

    def carried(self, space: SearchSpace, budget: int) -> list[Candidate]:
        """With ``carry_picks``, the picks of the smaller budgets searched before this one
        (all fit it): seeded into its population, for the controller to re-check with its
        finalists, so that a larger budget's plan never scores below a smaller one's."""
        if not self.carry_picks:
            return []
        return [c for c in self.state.picked if space.bytes_of(c) <= budget]

    def remember_pick(self, cand: Candidate) -> None:
        """Record this budget's pick for :meth:`carried`."""
        self.state.picked.append(cand)

    def start(self, ctx: SearchContext, budget: int) -> None:
        """A fresh population for this budget."""
        space = self.evolution_space(ctx)
        cfg = EvolutionConfig.from_params(self.config)
        seeds = [u for u in [uniform_selection(space, budget)] if u is not None]
        seeds += self.carried(space, budget)
        seeds.append(space.max_candidate())
        self.state.evolution = Evolution(space, budget, cfg, ctx.rng(budget), seeds=seeds)
        self.state.evolution_budget = budget

    def evolution_summary(self, ctx: SearchContext, budget: int) -> dict[str, Any] | None:
        """Record (event ``evolution``) and return this budget's :meth:`Evolution.summary`;
        ``None`` when this budget's evolution never started (after Ctrl-C)."""
        if self.state.evolution_budget != budget:
            return None
        facts = self._evolution().summary()
        ctx.record(event="evolution", controller=self.name, budget=int(budget), **facts)
        if facts["stopped_early"]:
            ctx.log(
                f"{self.name} [budget {budget} B]: no better candidate for {facts['patience']} "
                f"generations; stopped after generation {facts['generations_run']} of "
                f"{facts['generations_max']}"
            )
        return facts

    def finish(self, ctx: SearchContext, budget: int, result: LoopResult) -> Plan:
        plan = super().finish(ctx, budget, result)
        plan.extra["evolution"] = self.evolution_summary(ctx, budget)
        plan.extra.update(self.search_backbone_record())
        return plan

    def _evolution(self) -> Evolution:
        """This budget's evolution (:meth:`start` made it)."""
        if self.state.evolution is None:
            raise RuntimeError(f"{self.name}: ask/tell before start()")
        return self.state.evolution

    def ask(self) -> Candidate | None:
        return self._evolution().ask()

    def tell(self, candidate: Candidate, score: float) -> None:
        self._evolution().tell(candidate, score)

    def done(self) -> bool:
        return self._evolution().done()
