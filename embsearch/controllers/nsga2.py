"""``nsga2``: NSGA-II (Deb et al. 2002) over per-(field, group) dims with two objectives,
validation AUC (maximised) and table bytes (minimised), through Optuna's ``NSGAIISampler``,
as a black-box controller (:mod:`.black_box`: supernet scoring, repair onto the budget,
storage, resume).

1. every trial is told ``(inherited validation AUC, bytes)``; a sampled candidate over the
   budget is repaired onto it first (the repaired point joins the sampler's generation:
   Lamarckian repair), so every scored point is feasible;
2. NSGA-II breeds each generation from the previous one by non-dominated sorting and
   crowding distance (Optuna's implementation: uniform crossover, per-parameter mutation);
3. the result is the **Pareto front** of the scored trials (no point has both a higher AUC
   and fewer bytes than another): the runner writes one plan per front point under
   ``front/`` in the run directory (``front/<k>/plan.json`` with its ``config.json``, so
   ``embsearch retrain RUN_DIR/front/<k>`` trains it) and ``front.json`` (the points, AUC
   and bytes); the run's own plan is the front point with the best AUC (ties: fewer bytes).
   Every front point is within the budget.

``population_size`` defaults to 16 (an extension: Optuna's 50 would leave 64 trials barely
one generation). Even so, 64 trials are 4 generations: on the planted fixture of
tests/test_black_box.py its best-AUC pick carried the signal no better than random search's
(11/60 seeds each under 1.3x informative/noise dims; nsga21). Give it more ``trials`` where
the front matters. The null signal: every trial told one constant AUC, the front is the
cheapest candidates the sampler met; the null plan is the cheapest of them (simulated with
the same seeds, no training).

Citations: Kalyanmoy Deb, Amrit Pratap, Sameer Agarwal, T. Meyarivan, "A Fast and Elitist
Multiobjective Genetic Algorithm: NSGA-II", IEEE Transactions on Evolutionary Computation
6(2), 2002; via Optuna (Akiba et al., KDD 2019).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import ClassVar

import optuna
from optuna.trial import FrozenTrial

from embsearch.context import SearchContext
from embsearch.controllers.base import SearchState
from embsearch.controllers.black_box import BlackBoxController, BlackBoxState
from embsearch.controllers.black_box_params import BLACK_BOX_SPECS
from embsearch.controllers.param_spec import Param
from embsearch.plan import Plan
from embsearch.search_loop import LoopResult
from embsearch.search_spaces.base import Candidate


def front_order(front: list[FrozenTrial]) -> list[FrozenTrial]:
    """Front trials by AUC descending, then bytes ascending, then trial number; a candidate
    scored twice (a repeat the loop answered from its memo) is kept once."""
    out, seen = [], set()
    for t in sorted(front, key=lambda t: (-t.values[0], t.values[1], t.number)):
        key = tuple(sorted(t.params.items()))
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out


@dataclass
class NSGA2State(BlackBoxState):
    """NSGA-II's search state, beyond :class:`BlackBoxState`: each searched budget's front
    as plans (``front_plans``; the runner writes them under ``front/``)."""

    front_plans: dict[int, list[Plan]] = field(default_factory=dict)


class NSGA2(BlackBoxController):
    """NSGA-II on (validation AUC, bytes); returns the Pareto front (module docstring)."""

    name = "nsga2"
    paper = (
        "Kalyanmoy Deb, Amrit Pratap, Sameer Agarwal, T. Meyarivan. A Fast and Elitist "
        "Multiobjective Genetic Algorithm: NSGA-II. IEEE TEVC 6(2), 2002; via Optuna "
        "(Takuya Akiba et al. Optuna: A Next-generation Hyperparameter Optimization "
        "Framework. KDD 2019)"
    )
    supported_spaces = ("field_dims", "feature_dims")
    directions = ("maximize", "minimize")
    state_class: ClassVar[type[SearchState]] = NSGA2State
    state: NSGA2State
    carried_prefixes = ("NSGAIISampler:",)  # the sampler's generation of a trial
    null_signal = "constant AUC (the front's cheapest candidate is kept)"
    param_specs: ClassVar[dict[str, Param]] = {
        **BLACK_BOX_SPECS,
        "population_size": Param(
            16,
            "int",
            "trials per NSGA-II generation",
            2,
            extension="16, not Optuna's 50: 64 trials make 4 generations",
        ),
        "crossover_prob": Param(0.9, "float", "chance a child is bred by crossover", 0.0, 1.0),
        "swapping_prob": Param(
            0.5,
            "float",
            "uniform crossover: chance each parameter comes from the other parent",
            0.0,
            1.0,
        ),
        "mutation_prob": Param(
            None,
            "float",
            "chance each parameter is redrawn (None: Optuna's, 1 / parameters)",
            0.0,
            1.0,
            optional=True,
        ),
    }

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.NSGAIISampler(
            population_size=int(self.config["population_size"]),
            crossover_prob=float(self.config["crossover_prob"]),
            swapping_prob=float(self.config["swapping_prob"]),
            mutation_prob=self.config["mutation_prob"],
            seed=seed,
        )

    def values_of(self, metrics: dict[str, float]) -> list[float]:
        return [float(metrics["score"]), float(metrics["bytes"])]

    def front(self) -> list[FrozenTrial]:
        """This budget's Pareto front (scored trials only: all within the budget), best AUC
        first."""
        return front_order(self.state.study.best_trials)

    def finish(self, ctx: SearchContext, budget: int, result: LoopResult) -> Plan:
        """The plan of the front's best-AUC point, with the front in ``plan.extra["front"]``
        and as plans in ``state.front_plans[budget]`` (the runner writes them)."""
        started = self.state.study_budget == budget
        front = self.front() if started else []
        if front:
            best = self.candidate_from(self.state.study_space, front[0].params)
            result = replace(result, best=best, best_score=front[0].values[0])
        plan = super().finish(ctx, budget, result)
        space = self.search_space(ctx)
        plans = [
            self.make_plan(
                ctx,
                self.candidate_from(self.state.study_space, t.params),
                budget,
                space,
                extra={"front_point": k, "inherited_val_auc": t.values[0], "trial": t.number},
            )
            for k, t in enumerate(front)
        ]
        self.state.front_plans[budget] = plans
        plan.extra["front"] = [
            {"point": k, "inherited_val_auc": t.values[0], "bytes": int(t.values[1])}
            for k, t in enumerate(front)
        ]
        return plan

    def front_plans(self, budget: int) -> list[Plan]:
        """The front's plans for ``budget`` (best AUC first; empty before its search)."""
        return self.state.front_plans.get(budget, [])

    def null_candidate(self, ctx: SearchContext, budget: int) -> Candidate | None:
        """The pick under a constant AUC: this budget's search replayed in memory with the
        same seeds and repairs, every trial told (0, its bytes), nothing trained; the front
        is then the cheapest candidates, the pick the cheapest (first met on ties)."""
        kept = copy.copy(self.state)  # start() rebinds the budget's fields; restored below
        try:
            self.start(replace(ctx, store=None), budget)
            while not self.done():
                trial = self.ask_trial()
                assert trial is not None
                nbytes = float(self.state.study_space.bytes_of(trial.candidate))
                self.tell_trial(trial.id, {"score": 0.0, "bytes": nbytes})
            return self.candidate_from(self.state.study_space, self.front()[0].params)
        finally:
            self.state = kept
