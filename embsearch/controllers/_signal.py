"""Does the learned signal decide the plan? The null-signal check of issue 18, section 3.

A learning controller turns a learned signal (architecture weights, mask magnitudes, an
estimator's scores) into a plan through a discretisation (a knapsack, an argmax, an
evolution). The same discretisation fed an *uninformative* signal (uniform architecture
weights, zero learned value) gives the **null plan**: what the discretisation and the
bytes alone would choose. The share of (field, group) cells on which the two plans agree,
``null_agreement``, says how much of the plan the signal decided: near 1, the plan is the
byte arithmetic's, whatever was learned.

A controller takes part by exposing its discretisation of the null signal
(:class:`LearnsSignal`: a ``null_signal`` description and ``null_candidate(ctx, budget)``,
callable after its search), and by recording :func:`signal_record` in
``plan.extra["signal"]``. :func:`embsearch.testing.check_controller` recomputes the null
plan through that method and checks the recorded share.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from embsearch.context import SearchContext
from embsearch.plan import Plan
from embsearch.search_spaces.base import Candidate

SIGNAL_KEY = "signal"  # plan.extra[SIGNAL_KEY] = signal_record(...)
PROVENANCE_KEY = "provenance"  # plan.extra[PROVENANCE_KEY]: which step chose the plan


@runtime_checkable
class LearnsSignal(Protocol):
    """A controller whose plans come from a learned signal through a discretisation it can
    rerun on an uninformative one."""

    null_signal: str  # what the null signal is, e.g. "uniform architecture weights"

    def null_candidate(self, ctx: SearchContext, budget: int) -> Candidate | None:
        """The plan (as dims per field and group) that this controller's discretisation
        gives for ``budget`` from the null signal; called after ``search_budgets(ctx)``.
        None where the null signal has no plan within ``budget`` (e.g. a budget-blind
        argmax)."""
        ...


def candidate_of(plan: Plan) -> Candidate:
    """The plan's dims, per field and group."""
    return tuple(tuple(f.dims) for f in plan.fields)


def null_agreement(chosen: Sequence[Sequence[int]], null: Sequence[Sequence[int]]) -> float:
    """The share of (field, group) cells whose dims are equal in both plans, in [0, 1]."""
    if len(chosen) != len(null) or any(len(a) != len(b) for a, b in zip(chosen, null)):
        raise ValueError("the two plans do not have the same fields and groups")
    cells = [(a, b) for fa, fb in zip(chosen, null) for a, b in zip(fa, fb)]
    if not cells:
        return 0.0
    return sum(int(a) == int(b) for a, b in cells) / len(cells)


def signal_record(
    chosen: Sequence[Sequence[int]], null: Sequence[Sequence[int]] | None, null_signal: str
) -> dict[str, Any]:
    """``plan.extra["signal"]``: the null agreement (rounded to 4 places; None when the
    null signal has no plan within the budget) and what the null signal was."""
    share = None if null is None else round(null_agreement(chosen, null), 4)
    return {"null_agreement": share, "null_signal": null_signal}


def summary_lines(extra: dict[str, Any]) -> list[str]:
    """The search summary's lines on the signal and provenance of a plan, when recorded:
    ``signal: null agreement 0.31`` (the share of (field, group) cells the plan from the
    null signal shares; ``n/a`` where that plan did not fit) and ``chosen by: evolution``."""
    lines = []
    signal = extra.get(SIGNAL_KEY)
    if isinstance(signal, dict) and "null_agreement" in signal:
        share = signal["null_agreement"]
        lines.append(f"signal: null agreement {'n/a' if share is None else f'{share:.2f}'}")
    provenance = extra.get(PROVENANCE_KEY)
    if provenance:
        lines.append(f"chosen by: {provenance}")
    return lines
