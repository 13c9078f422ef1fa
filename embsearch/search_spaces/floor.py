"""The one "smallest plan fits the budget" check.

Every place that refuses a budget below the smallest plan it could return (a space's
budgets, the knapsack, a controller's own structure such as RULE's blocks) raises through
:func:`check_fits`, so the refusal reads the same everywhere: the budget, the smallest
plan in bytes, and the ``--budget`` that would fit. Spaces call it as
:meth:`SearchSpace.check_budget <embsearch.search_spaces.base.SearchSpace.check_budget>`.
"""

from __future__ import annotations

from embsearch.budget import format_bytes
from embsearch.errors import BudgetError


def check_fits(
    budget: int,
    smallest: int,
    *,
    what: str = "plan",
    shown: str | None = None,
    prefix: str = "",
    remedy: str = "",
) -> None:
    """Raise :class:`BudgetError` when ``budget`` bytes are below ``smallest``.

    The message is ``{prefix}budget {shown} is below the smallest {what}, {smallest};
    raise --budget to at least {smallest}{remedy}``: ``shown`` is how the budget is named
    (default ``'{budget} B'``), ``prefix`` names the caller (e.g. ``'rule: '``) and
    ``remedy`` adds a further way out (e.g. ``' or use finer blocks (blocks=8)'``).
    """
    if budget >= smallest:
        return
    shown = f"{budget} B" if shown is None else shown
    raise BudgetError(
        f"{prefix}budget {shown} is below the smallest {what}, {format_bytes(smallest)}; "
        f"raise --budget to at least {smallest}{remedy}"
    )
