"""The controller plug-in contract.

A controller is a search strategy with one required method, ``search(ctx) -> Plan``. Like
scikit-learn estimators, ``__init__`` only stores keyword parameters (each checked against
its declaration in ``param_specs``, then :meth:`Controller.validate` for checks between
them) and the work happens in ``search``. Controllers that
train one supernet and can serve several budgets from it override ``search_budgets``.
Sample-based controllers (evolution, RL, black-box) subclass :class:`AskTellController`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

from embsearch.context import SearchContext
from embsearch.controllers.param_spec import (
    Param,
    check_params,
    defaults_of,
    extensions_of,
    help_of,
    specs_from_dicts,
)
from embsearch.errors import ConfigError
from embsearch.evaluator import Evaluator
from embsearch.plan import Plan
from embsearch.search_loop import ByCandidate, LoopResult, Trial, deadline_of, run_loop
from embsearch.search_spaces.base import Candidate, SearchSpace


@dataclass
class SearchState:
    """One search's working state, in one object rather than loose attributes: what a
    controller's hooks hand each other within a search (its space, its supernet, the
    evaluators built on it, the sampler of the budget being searched). ``search_budgets``
    starts every search with a fresh one (:meth:`Controller.new_state`, of the class's
    ``state_class``); the hooks read and write ``self.state``; it stays after the search
    for the checks that follow it (null signal, provenance). A family or controller that
    keeps more declares a subclass with those fields and names it in ``state_class``.
    """

    space: SearchSpace | None = None
    supernet: Any = None  # the trained supernet (an nn.Module), when the controller has one
    supernet_summary: dict[str, Any] = field(default_factory=dict)
    trials: ByCandidate | None = None  # default trial ids around ask/tell (AskTellController)


SEARCH_BACKBONE = Param(
    {},
    "object",
    "backbone parameters the supernet trains with instead of the run's recipe; the plans are "
    "trained with the recipe",
    optional=True,
    allowed="a JSON object of backbone parameters, e.g. '{\"batch_norm\": false}' "
    "({} or None: the run's recipe)",
)
SEARCH_BACKBONE_HELP = SEARCH_BACKBONE.line()  # (help and values, for plain-dict plug-ins)


class Controller(ABC):
    """Base class of every controller.

    Class attributes describe it in ``embsearch controllers``: ``name``, ``family``
    (rule-based, differentiable, evolutionary, rl, pruning, black-box, custom), ``paper``
    and ``default_space`` (the search space it works in when ``--space`` is not given).
    ``param_specs`` declares each tunable keyword parameter once, as a
    :class:`~embsearch.controllers.param_spec.Param` (default, kind, range or choices, a
    line of help, whether ``None`` is allowed, and ``extension``: why it is not the
    paper's, if it is not); ``__init__`` checks every value against it and
    ``embsearch controllers NAME`` prints it (:meth:`param_line`). ``params`` (the
    defaults), ``param_help`` and ``extensions`` are derived from it, read-only. A plug-in
    may still declare those three as plain dicts instead (see
    :func:`~embsearch.controllers.param_spec.specs_from_dicts`). A controller whose
    plans choose their own projection declares a ``projection`` parameter (it takes
    ``--projection`` when that is given), or ``fixed_projection`` when its structure allows
    only one (``--projection`` naming another is refused).
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = "custom"
    paper: ClassVar[str] = ""
    default_space: ClassVar[str] = "field_dims"
    supported_spaces: ClassVar[tuple[str, ...]] = ("field_dims", "feature_dims")
    param_specs: ClassVar[dict[str, Param]] = {}
    # derived from param_specs (by __init_subclass__), read-only:
    params: ClassVar[Mapping[str, Any]] = MappingProxyType({})
    param_help: ClassVar[Mapping[str, str]] = MappingProxyType({})
    extensions: ClassVar[Mapping[str, str]] = MappingProxyType({})
    fixed_projection: ClassVar[str | None] = None
    # takes ``--stream`` (the train split read once in time order): ESAPN's setting
    streams: ClassVar[bool] = False
    state_class: ClassVar[type[SearchState]] = SearchState
    state: SearchState

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Derive ``params``, ``param_help`` and ``extensions`` from ``param_specs``, or the
        specs from those plain dicts where the class declares them instead."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__
        legacy = [k for k in ("params", "param_help", "extensions") if k in own]
        if "param_specs" in own and legacy:
            raise TypeError(
                f"{cls.__qualname__} declares param_specs and {', '.join(legacy)}: "
                "declare param_specs alone (the others are derived from it)"
            )
        if legacy:
            specs = specs_from_dicts(
                cls.param_specs, own.get("params"), own.get("param_help"), own.get("extensions")
            )
        else:
            specs = dict(cls.param_specs)
        cls.param_specs = specs
        cls.params = MappingProxyType(defaults_of(specs))
        cls.param_help = MappingProxyType(help_of(specs))
        cls.extensions = MappingProxyType(extensions_of(specs))

    def __init__(self, **params: Any) -> None:
        unknown = set(params) - set(self.param_specs)
        if unknown:
            allowed = ", ".join(sorted(self.param_specs)) or "none"
            raise ConfigError(
                f"controller {self.name!r} has no parameter(s) {', '.join(sorted(unknown))}; allowed: {allowed}"
            )
        self.config: dict[str, Any] = {**deepcopy(dict(self.params)), **params}
        check_params(self.name, self.param_specs, self.config)
        self.validate()
        self.state = self.state_class()

    def new_state(self) -> SearchState:
        """Start a search with a fresh :attr:`state` (``state_class()``) and return it."""
        self.state = self.state_class()
        return self.state

    @classmethod
    def param_line(cls, key: str) -> str:
        """The line ``embsearch controllers NAME`` prints for ``key``: its help, what is
        allowed, and ``[extension: why]`` where it is not the paper's."""
        spec = cls.param_specs.get(key)
        return spec.line() if spec is not None else ""

    def validate(self) -> None:
        """Checks between parameters (each value alone is checked against its spec first);
        raise :class:`ConfigError` naming the parameter and what is allowed. Default: none."""
        return None

    def check_options(
        self, *, width: int, candidates: Sequence[int] | None, projection: str | None = None
    ) -> None:
        """Refuse search options the user gave (``candidates`` and ``projection`` are None
        when not given) that this controller's structure would silently override; one line,
        before any work. Here: a ``projection`` other than :attr:`fixed_projection`."""
        fixed = self.fixed_projection
        if projection is not None and fixed is not None and projection != fixed:
            raise ConfigError(
                f"controller {self.name!r} only builds --projection {fixed} plans; "
                f"drop --projection {projection}"
            )

    def check_space(self, ctx: SearchContext) -> None:
        if ctx.space.name not in self.supported_spaces:
            raise ConfigError(
                f"controller {self.name!r} works in the {', '.join(self.supported_spaces)} "
                f"space(s), not {ctx.space.name!r}; drop --space to use its default, "
                f"{self.default_space}"
            )

    @abstractmethod
    def search(self, ctx: SearchContext) -> Plan:
        """Return a plan whose ``table_bytes <= ctx.budget``."""

    def search_budgets(self, ctx: SearchContext) -> list[Plan]:
        """One plan per budget of ``ctx.budgets``. Default: an independent search for each."""
        self.new_state()
        return [self.search(ctx.with_budget(b)) for b in ctx.budgets]

    # -- the supernet's backbone (controllers that train one) ---------------------------
    def supernet_context(self, ctx: SearchContext) -> SearchContext:
        """``ctx`` with this controller's ``search_backbone`` parameter (backbone parameters
        its supernet trains with instead of the run's recipe; ``{}``: the recipe) applied.
        The plans are trained with the run's recipe whatever this is."""
        return ctx.with_backbone(self.config.get("search_backbone") or {})

    def search_backbone_record(self) -> dict[str, Any]:
        """``plan.extra`` entries saying how the supernet's backbone differed from the run's
        (nothing when it did not)."""
        overrides = self.config.get("search_backbone") or {}
        if not overrides:
            return {}
        why = self.extensions.get("search_backbone", "")
        return {"search_backbone": {"overrides": dict(overrides), "why": why}}

    def check_search_backbone(self) -> None:
        """``search_backbone`` must be a JSON object of backbone parameters (checked against
        the backbone when the search starts). ``__init__`` checks it where ``param_specs``
        declares it; this is for a plain-dict plug-in's ``validate``."""
        if "search_backbone" in self.config:
            SEARCH_BACKBONE.check(self.name, "search_backbone", self.config["search_backbone"])

    def make_plan(
        self,
        ctx: SearchContext,
        cand: Candidate,
        budget: int | None = None,
        space: SearchSpace | None = None,
        **kwargs: Any,
    ) -> Plan:
        """Turn a candidate of ``space`` (default ``ctx.space``) into a plan of this
        controller for ``budget`` (default ``ctx.budget``), with the data's fingerprint,
        checked against the budget."""
        return (space or ctx.space).to_plan(
            cand,
            self.name,
            ctx.budget if budget is None else budget,
            data_fingerprint=ctx.dataset.fingerprint(),
            **kwargs,
        )


class AskTellController(Controller):
    """A sample-based controller, driven by the shared loop (``embsearch.search_loop``).

    ``search_budgets(ctx)`` runs:

    1. ``prepare(ctx, deadline)`` once: e.g. train one supernet that serves every budget;
    2. per budget: ``start(ctx, budget)``, then the loop repeats ``ask_trial() -> Trial``,
       ``evaluator(ctx, budget)(candidate) -> score``, ``tell_trial(trial id, metrics)`` until
       ``done()``, ``ctx.max_seconds`` runs out or Ctrl-C, recording every evaluation;
    3. ``finish(ctx, budget, result) -> Plan`` from the loop's best candidate.

    ``ask()`` should return candidates of ``search_space(ctx)`` within the budget; the loop
    rejects (records, tells ``-inf``, never keeps) any that is not. Scores: higher is better.
    ``search(ctx)`` is ``search_budgets`` on the first budget alone.

    Trial ids (issue 22 item 2): the default ``ask_trial`` / ``tell_trial`` number the
    trials of ``ask()`` / ``tell(candidate, score)`` (a subclass writes those two); a
    controller with several trials in flight, "nothing now" answers (``None``) or more than
    one objective overrides ``ask_trial`` / ``tell_trial`` instead (``metrics`` holds
    ``score``, ``bytes`` and the evaluator's metrics).

    A controller whose scores do not depend on the budget (``budget_free_scores = True``,
    e.g. inherited-weight scores of one supernet) gets one score memo per evaluator shared
    by every budget: a candidate scored under one budget is not evaluated again under
    another.
    """

    budget_free_scores: bool = False
    # with --executor local/ray, score the budgets' candidates in this process all the same
    # (RULE: its evolution scores with an estimator fitted here, microseconds a candidate)
    search_in_process: bool = False

    def prepare(self, ctx: SearchContext, deadline: float | None) -> None:  # noqa: B027 - optional hook
        """Once per search, before any budget (``deadline`` is a ``time.perf_counter()`` value)."""

    def search_space(self, ctx: SearchContext) -> SearchSpace:
        """The space candidates live in (bytes are counted there); default ``ctx.space``."""
        return ctx.space

    @abstractmethod
    def evaluator(self, ctx: SearchContext, budget: int) -> Evaluator:
        """The evaluator the loop scores this budget's candidates with."""

    @abstractmethod
    def start(self, ctx: SearchContext, budget: int) -> None:
        """Reset the ask/tell state for one budget."""

    @abstractmethod
    def ask(self) -> Candidate:
        """Next candidate to evaluate."""

    @abstractmethod
    def tell(self, candidate: Candidate, score: float) -> None:
        """Report the score of an asked candidate."""

    @abstractmethod
    def done(self) -> bool:
        """True when this budget's search has nothing more to ask."""

    def ask_trial(self) -> Trial | None:
        """The next trial (an id and a candidate), or ``None`` for "nothing now"; default:
        :meth:`ask`'s candidate under the next id."""
        if self.state.trials is None:
            self.state.trials = ByCandidate(self)
        return self.state.trials.ask_trial()

    def tell_trial(self, trial_id: int, metrics: dict[str, float]) -> None:
        """Report trial ``trial_id``'s metrics; default: :meth:`tell` its candidate
        ``metrics["score"]``."""
        if self.state.trials is None:
            raise RuntimeError(f"{self.name}: tell_trial before any ask_trial")
        self.state.trials.tell_trial(trial_id, metrics)

    def fallback(self, ctx: SearchContext, budget: int) -> Candidate:
        """A feasible candidate when nothing was evaluated (interrupted or out of time at once)."""
        space = self.search_space(ctx)
        return space.repair(space.max_candidate(), budget)

    def finish(self, ctx: SearchContext, budget: int, result: LoopResult) -> Plan:
        """The plan of the loop's best candidate (default: checked against the budget)."""
        cand = result.best if result.best is not None else self.fallback(ctx, budget)
        return self.make_plan(
            ctx,
            cand,
            budget,
            self.search_space(ctx),
            extra={"search": result.summary(), "interrupted": result.interrupted},
        )

    def search(self, ctx: SearchContext) -> Plan:
        return self.search_budgets(ctx.with_budget(ctx.budget))[0]

    def search_budgets(self, ctx: SearchContext) -> list[Plan]:
        """One plan per budget of ``ctx.budgets`` from one ``prepare`` (e.g. one supernet).

        After Ctrl-C the remaining budgets are not searched: each gets the interrupted
        search's best candidate when it fits (budgets ascend), else :meth:`fallback`, with
        ``interrupted`` set, so the runner can still write ``search.json`` and plans.
        """
        deadline = deadline_of(ctx)
        self.new_state()
        self.prepare(ctx, deadline)
        space = self.search_space(ctx)
        plans: list[Plan] = []
        stopped: LoopResult | None = None
        memos: dict[int, tuple[Evaluator, dict[Candidate, float]]] = {}  # id -> (evaluator, memo)
        for budget in ctx.budgets:
            if stopped is None:
                self.start(ctx, budget)
                evaluator = self.evaluator(ctx, budget)
                memo = (
                    memos.setdefault(id(evaluator), (evaluator, {}))[1]
                    if self.budget_free_scores
                    else None
                )
                result = run_loop(
                    self, evaluator, ctx, budget, space=space, deadline=deadline, cache=memo,
                    in_process=self.search_in_process,
                )  # fmt: skip
                stopped = result if result.interrupted else None
            else:
                keep = (
                    stopped.best
                    if stopped.best is not None and space.bytes_of(stopped.best) <= budget
                    else None
                )
                result = LoopResult(
                    keep, stopped.best_score if keep else -math.inf, 0, 0.0, "interrupted"
                )
            plans.append(self.finish(ctx, budget, result))
        return plans
