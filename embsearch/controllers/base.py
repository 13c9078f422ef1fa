"""The controller plug-in contract.

A controller is a search strategy with one required method, ``search(ctx) -> Plan``. Like
scikit-learn estimators, ``__init__`` only stores keyword parameters (validated in one
place, :meth:`Controller.validate`) and the work happens in ``search``. Controllers that
train one supernet and can serve several budgets from it override ``search_budgets``.
Sample-based controllers (evolution, RL, black-box) subclass :class:`AskTellController`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from embsearch.context import SearchContext
from embsearch.errors import ConfigError
from embsearch.plan import Plan
from embsearch.search_spaces.base import Candidate


class Controller(ABC):
    """Base class of every controller.

    Class attributes describe it in ``embsearch controllers``: ``name``, ``family``
    (rule-based, differentiable, evolutionary, rl, pruning, black-box, custom), ``paper``
    and ``default_space`` (the search space it works in when ``--space`` is not given).
    ``params`` declares tunable keyword parameters with their defaults.
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = "custom"
    paper: ClassVar[str] = ""
    default_space: ClassVar[str] = "field_dims"
    supported_spaces: ClassVar[tuple[str, ...]] = ("field_dims", "feature_dims")
    params: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        unknown = set(params) - set(self.params)
        if unknown:
            allowed = ", ".join(sorted(self.params)) or "none"
            raise ConfigError(f"controller {self.name!r} has no parameter(s) {', '.join(sorted(unknown))}; allowed: {allowed}")
        self.config: dict[str, Any] = {**self.params, **params}
        self.validate()

    def validate(self) -> None:
        """Check ``self.config``; raise :class:`ConfigError` naming the parameter and range."""

    def check_space(self, ctx: SearchContext) -> None:
        if ctx.space.name not in self.supported_spaces:
            raise ConfigError(
                f"controller {self.name!r} works in the {', '.join(self.supported_spaces)} space(s), not {ctx.space.name!r}"
            )

    @abstractmethod
    def search(self, ctx: SearchContext) -> Plan:
        """Return a plan whose ``table_bytes <= ctx.budget``."""

    def search_budgets(self, ctx: SearchContext) -> list[Plan]:
        """One plan per budget of ``ctx.budgets``. Default: an independent search for each."""
        return [self.search(ctx.with_budget(b)) for b in ctx.budgets]

    def make_plan(self, ctx: SearchContext, cand: Candidate, budget: int | None = None, **kwargs: Any) -> Plan:
        """Turn a candidate into a plan of this controller, checked against the budget."""
        return ctx.space.to_plan(
            cand, self.name, ctx.budget if budget is None else budget,
            data_fingerprint=ctx.dataset.fingerprint(), **kwargs,
        )


class AskTellController(Controller):
    """A sample-based controller: the shared search loop asks for candidates and tells scores.

    ``ask()`` returns a candidate within the budget; ``tell(candidate, score)`` reports its
    score (higher is better). ``setup(ctx)`` prepares state (e.g. trains a supernet) before
    the loop; ``best()`` returns the best candidate told so far.
    """

    @abstractmethod
    def setup(self, ctx: SearchContext) -> None:
        """Prepare for asking (called once per budget by the loop)."""

    @abstractmethod
    def ask(self) -> Candidate:
        """Next candidate to evaluate."""

    @abstractmethod
    def tell(self, candidate: Candidate, score: float) -> None:
        """Report the score of an asked candidate."""

    @abstractmethod
    def score(self, candidate: Candidate) -> float:
        """Evaluate a candidate (e.g. with inherited supernet weights)."""
