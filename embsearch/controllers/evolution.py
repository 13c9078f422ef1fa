"""The evolution of the evolutionary family: :class:`Evolution`, configured by
:class:`EvolutionConfig`, as ask/tell, and its pure operators.

OptEmbed (Lyu et al., CIKM 2022), Sec. "Evolutionary search", and RULE (Chen et al., KDD
2021), Sec. "Evolutionary search", evolve candidates the same way:

1. an initial population of random candidates, each projected onto the budget;
2. every generation keeps the ``top_k`` best candidates seen so far (elitist top-k
   selection, or tournaments among them);
3. children are made by *crossover between fields* (each field's dims come whole from one
   parent: crossover points range over fields, never over dims inside a field or over
   rows) and by *mutation* (each (field, group) dim is redrawn with a probability);
4. a child over the budget is repaired onto it (:func:`fit_budget`: exact knapsack over
   dims no larger than the child's); a candidate over the budget is never kept.

Beyond the papers (each a choice a careful practitioner would make, said once here):

- ``patience`` (default 3; OptEmbed's 2): the evolution stops once the best score has not
  improved by more than ``min_delta`` for that many generations (the papers run a fixed
  number; late generations of a converged population re-score near-copies of the elite,
  and gains below the noise of a validation subsample are not progress). ``None`` runs
  every generation.
- the initial population also holds the uniform plan that fits the budget (the baseline a
  mixed plan must beat; random candidates rarely come near it) and the all-largest plan
  repaired onto the budget, and, for a controller that serves its plans
  (``carry_picks``: RULE), the plans picked for the smaller budgets of the same search;
- one score memo shared by every budget of a search (inherited-weight scores do not depend
  on the budget), so a candidate is evaluated at most once per search.

Every operator is pure: candidates are tuples of tuples and operators return new ones, so
parents are never edited in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from embsearch.controllers.param_spec import Param, check_params, defaults_of, help_of
from embsearch.errors import BudgetError
from embsearch.search_spaces.base import Candidate, SearchSpace

EVOLUTION_SPECS: dict[str, Param] = {
    "population": Param(20, "int", "candidates per generation", 2),
    "generations": Param(10, "int", "generations bred after the random first one", 0),
    "top_k": Param(
        10, "int", "best candidates so far that parent the next generation (at most population)", 1
    ),
    "mutation_prob": Param(
        0.1, "float", "chance that each (field, group) dim of a child is redrawn", 0.0, 1.0
    ),
    "crossover_prob": Param(
        0.5, "float", "chance that a child mixes two parents, whole fields from each", 0.0, 1.0
    ),
    "selection": Param(
        "topk",
        "choice",
        "parents: 'topk' (uniform among the top-k) or 'tournament'",
        choices=("topk", "tournament"),
    ),
    "patience": Param(
        3,
        "int",
        "stop after this many generations without a better best (None: never)",
        1,
        optional=True,
        extension="stopping the evolution early: embsearch's (None runs every generation)",
    ),
    "min_delta": Param(
        0.0,
        "float",
        "a better best must beat the last one by more than this to count",
        0.0,
        1.0,
        extension="the improvement patience counts: embsearch's",
    ),
}
# the defaults and help alone, for plug-ins that declare plain dicts
EVOLUTION_PARAMS, EVOLUTION_HELP = defaults_of(EVOLUTION_SPECS), help_of(EVOLUTION_SPECS)


# -- pure operators -------------------------------------------------------------------------
def crossover(a: Candidate, b: Candidate, rng: np.random.Generator) -> Candidate:
    """Uniform crossover *between fields*: field ``f`` comes whole from ``a`` or from ``b``."""
    if len(a) != len(b):
        raise ValueError(f"parents have {len(a)} and {len(b)} fields")
    take_a = rng.random(len(a)) < 0.5
    return tuple(tuple(da) if t else tuple(db) for da, db, t in zip(a, b, take_a))


def mutate(cand: Candidate, space: SearchSpace, rng: np.random.Generator, prob: float) -> Candidate:
    """Redraw each (field, group) key (a dim in the dims-only spaces) with probability
    ``prob`` among the block's *other* keys (``space.block_keys``)."""
    out = []
    for f, dims in enumerate(cand):
        new = []
        for g, d in enumerate(dims):
            others = [c for c in space.block_keys(f, g) if c != d]
            new.append(int(rng.choice(others)) if others and rng.random() < prob else int(d))
        out.append(tuple(new))
    return tuple(out)


def fit_budget(cand: Candidate, space: SearchSpace, budget: int) -> Candidate:
    """Step 4: ``cand`` projected onto the budget (unchanged when it fits): the space's exact
    repair (:meth:`~embsearch.search_spaces.base.SearchSpace.repair`: keep each dim as close
    to the child's as possible, never larger)."""
    if space.bytes_of(cand) <= budget:
        return cand
    fixed = space.repair(cand, budget)
    if space.bytes_of(fixed) > budget:  # the repair is exact; this guards the invariant
        raise BudgetError(
            f"internal: repaired candidate of {space.bytes_of(fixed)} B exceeds {budget} B"
        )
    return fixed


def uniform_selection(space: SearchSpace, budget: int) -> Candidate | None:
    """The same (largest) dim in every (field, group) that fits ``budget``; None if none does
    (a composed space: its most expressive setting at that dim, ``space.uniform``)."""
    for d in sorted((c for c in space.dim_choices if c > 0), reverse=True):
        cand = space.uniform(d)
        if space.bytes_of(cand) <= budget:
            return cand
    return None


def random_population(
    space: SearchSpace,
    budget: int,
    n: int,
    rng: np.random.Generator,
    seeds: Sequence[Candidate] = (),
) -> list[Candidate]:
    """Step 1: ``n`` distinct feasible candidates (seeds first, then random ones, repaired)."""
    out: list[Candidate] = []
    seen: set[Candidate] = set()
    pool = [*seeds]
    for _ in range(20 * n):
        if len(out) >= n:
            break
        cand = fit_budget(pool.pop(0) if pool else space.sample(rng), space, budget)
        if cand not in seen:
            seen.add(cand)
            out.append(cand)
    return out


def top_k(scored: Sequence[tuple[Candidate, float]], k: int) -> list[tuple[Candidate, float]]:
    """The ``k`` best (candidate, score) pairs, best first (NaN scores rank last)."""
    key = [(-s if np.isfinite(s) else np.inf) for _, s in scored]
    order = np.argsort(key, kind="stable")[:k]
    return [scored[i] for i in order]


def tournament(
    scored: Sequence[tuple[Candidate, float]], rng: np.random.Generator, size: int = 2
) -> Candidate:
    """The best of ``size`` candidates drawn at random (with replacement)."""
    picks = [scored[int(i)] for i in rng.integers(0, len(scored), size=max(size, 1))]
    return top_k(picks, 1)[0][0]


# -- the evolution as ask/tell ----------------------------------------------------------------
def _default(key: str) -> Any:
    return EVOLUTION_SPECS[key].default


@dataclass
class EvolutionConfig:
    """The evolution's parameters; the defaults are :data:`EVOLUTION_SPECS`'s."""

    population: int = _default("population")
    generations: int = _default("generations")
    top_k: int = _default("top_k")
    mutation_prob: float = _default("mutation_prob")
    crossover_prob: float = _default("crossover_prob")
    selection: str = _default("selection")
    patience: int | None = _default("patience")
    min_delta: float = _default("min_delta")

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> EvolutionConfig:
        return cls(**{k: params[k] for k in EVOLUTION_SPECS})


def check_top_k(name: str, params: dict[str, Any]) -> None:
    """The one check between the evolution's parameters: ``top_k <= population``."""
    spec = replace(EVOLUTION_SPECS["top_k"], high=params["population"])
    spec.check(name, "top_k", params["top_k"])


def validate_evolution(name: str, params: dict[str, Any]) -> None:
    """Check the evolution's parameters in ``params`` against :data:`EVOLUTION_SPECS`, then
    :func:`check_top_k`. A controller declaring ``param_specs`` has the first done by
    ``__init__`` and the second by :class:`EvolutionaryController`'s ``validate``; this is
    for a plug-in that declares plain dicts."""
    check_params(name, EVOLUTION_SPECS, params)
    check_top_k(name, params)


class Evolution:
    """Steps 1-4 as ask/tell: ``ask()`` hands out the current generation one candidate at a
    time; once all of it is told, the next generation is bred from the top-k. Generation 0
    is the random population; ``generations`` more follow, so at most
    ``population * (generations + 1)`` candidates are evaluated. With ``cfg.patience`` the
    evolution stops after the first ``patience`` consecutive generations whose candidates
    did not beat the best score so far by more than ``cfg.min_delta`` (``stopped_early``;
    see :meth:`summary`)."""

    name = "evolution"

    def __init__(
        self,
        space: SearchSpace,
        budget: int,
        cfg: EvolutionConfig,
        rng: np.random.Generator,
        seeds: Sequence[Candidate] = (),
    ) -> None:
        space.check_budget(budget)
        self.space, self.budget, self.cfg, self.rng = space, budget, cfg, rng
        self.scores: dict[Candidate, float] = {}
        self.generation = 0
        self._queue = random_population(space, budget, cfg.population, rng, seeds)
        self._pending: set[Candidate] = set()
        self.best = -np.inf  # best finite score so far
        self.mark = -np.inf  # the score of the last improvement by more than min_delta
        self.best_generation = 0  # the generation of that improvement
        self.stopped_early = False
        self.exhausted = False  # breeding found no unseen feasible child

    @property
    def total(self) -> int:
        """At most this many candidates are evaluated (the progress display's total)."""
        return self.cfg.population * (self.cfg.generations + 1)

    def done(self) -> bool:
        """True once the last generation is told (or no unseen child could be bred)."""
        return not self._queue and not self._pending

    def ask(self) -> Candidate | None:
        """The next candidate of the current generation; ``None`` ("nothing now") while the
        generation is out and not all told (the next one is bred from its scores)."""
        if not self._queue:
            if self._pending:
                return None
            raise RuntimeError("ask() after the search is done")
        cand = self._queue.pop(0)
        self._pending.add(cand)
        return cand

    def tell(self, cand: Candidate, score: float) -> None:
        self._pending.discard(cand)
        self.scores[cand] = float(score)
        if np.isfinite(score) and score > self.best:
            self.best = float(score)
        if np.isfinite(score) and score > self.mark + self.cfg.min_delta:
            self.mark, self.best_generation = float(score), self.generation
        if self._queue or self._pending or self.generation >= self.cfg.generations:
            return
        patience = self.cfg.patience
        if patience is not None and self.generation - self.best_generation >= patience:
            self.stopped_early = True  # the generation is complete: no more breeding
            return
        self._breed()

    def summary(self) -> dict[str, Any]:
        """JSON-ready facts: generations bred and told, and whether patience stopped it."""
        return {
            "generations_run": self.generation,
            "generations_max": self.cfg.generations,
            "best_generation": self.best_generation,
            "patience": self.cfg.patience,
            "min_delta": self.cfg.min_delta,
            "stopped_early": self.stopped_early,
            "exhausted": self.exhausted,
            "candidates": len(self.scores),
        }

    def ranked(self) -> list[tuple[Candidate, float]]:
        """Every told candidate with its score, best first."""
        return top_k(list(self.scores.items()), len(self.scores))

    def _parent(self, elite: list[tuple[Candidate, float]]) -> Candidate:
        if self.cfg.selection == "tournament":
            return tournament(elite, self.rng)
        return elite[int(self.rng.integers(len(elite)))][0]

    def _breed(self) -> None:
        """Steps 2-4: top-k survivors breed ``population`` new, feasible, unseen children."""
        elite = top_k(list(self.scores.items()), self.cfg.top_k)
        if not elite:
            self.exhausted = True
            return
        children: list[Candidate] = []
        for _ in range(20 * self.cfg.population):
            if len(children) >= self.cfg.population:
                break
            child = self._parent(elite)
            if self.rng.random() < self.cfg.crossover_prob:
                child = crossover(child, self._parent(elite), self.rng)
            child = fit_budget(
                mutate(child, self.space, self.rng, self.cfg.mutation_prob), self.space, self.budget
            )
            if child not in self.scores and child not in children:
                children.append(child)
        if children:  # a generation counts once it has candidates to evaluate
            self.generation += 1
        else:
            self.exhausted = True  # no unseen feasible child: the search is done
        self._queue = children
