"""OptEmbed's uniform gate (``optembed.py``'s ``uniform_margin``): its rival, the ``uniform``
controller's plan, and the proxy both are scored on, in every space OptEmbed searches.

The rival is exactly the plan :func:`~embsearch.controllers.uniform.uniform_plan` builds for
the context's space, budget and constraints, at OptEmbed's projection (moot without
constraints: a uniform plan's one dim is its width), with the pruned rows credited when
OptEmbed stores kept rows only (``kept``: the uniform table of the kept rows). The gate is
embsearch's, not the paper's (Lyu et al., CIKM 2022, return the evolution's pick).

In a composed space the uniform plan's dim need not be one the evolution offers (frappe's
hybrid space at 10%: dim 3 at fp16). Both the pick and the rival are then keyed in the
*signal space*: the search space with every dim ``1..width`` offered (an option's key in it
names the same dim, kind, size and precision whichever plan it comes from), scored by the
same block proxy (:meth:`BlockProxyEvaluator.for_space`: the same supernet rows, the same
validation rows), and the null-signal check compares plans in it too.
"""

from __future__ import annotations

from embsearch.candidate import Candidate
from embsearch.context import SearchContext
from embsearch.controllers._signal import candidate_of
from embsearch.controllers.block_proxy import BlockProxyEvaluator
from embsearch.controllers.uniform import uniform_plan
from embsearch.evaluator import Evaluator
from embsearch.plan import Plan
from embsearch.search_spaces.base import SearchSpace
from embsearch.search_spaces.composed import ComposedSpace
from embsearch.search_spaces.pruned_rows import PrunedRowsSpace


def rival_plan(ctx: SearchContext, space: SearchSpace, budget: int, projection: str) -> Plan:
    """The gate's rival for ``budget``: the ``uniform`` rule in the context's space (its
    constraints) at ``projection``, crediting the rows ``space`` (OptEmbed's search space)
    keeps when it is a :class:`PrunedRowsSpace`. :class:`BudgetError` when none fits."""
    kept = space.kept if isinstance(space, PrunedRowsSpace) else None
    return uniform_plan(ctx, budget, space=ctx.space.with_projection(projection), kept=kept)


def signal_space(space: SearchSpace) -> SearchSpace:
    """The space plans are compared in: a composed space with every dim ``1..width``
    offered (module docstring); a dims-only space as it is (its keys are dims)."""
    if not isinstance(space, ComposedSpace) or "dims" not in space.axes:
        return space
    return space.with_candidates(sorted({*space.candidates, *range(1, space.width + 1)}))


def signal_keys(space: SearchSpace, cand: Candidate) -> Candidate:
    """``cand`` (a candidate of ``space``) keyed in :func:`signal_space` (dims-only: itself)."""
    if not isinstance(space, ComposedSpace):
        return cand
    target = signal_space(space)
    assert isinstance(target, ComposedSpace)
    return tuple(
        tuple(target.key_of(f, g, space.option(f, g, k)) for g, k in enumerate(keys))
        for f, keys in enumerate(cand)
    )


def signal_candidate(space: SearchSpace, plan: Plan) -> Candidate:
    """``plan`` keyed in :func:`signal_space` (dims-only spaces: its dims)."""
    if not isinstance(space, ComposedSpace):
        return candidate_of(plan)
    return signal_space(space).candidate_of(plan)


def gate_pair(
    space: SearchSpace, whole: Evaluator, pick: Candidate, rival: Plan
) -> tuple[Evaluator, Candidate, Candidate]:
    """The evaluator, the pick and the rival the gate compares: in a composed space both
    keyed in :func:`signal_space` and scored by the same block proxy over it; otherwise the
    pick and the rival's dims on ``whole`` (the supernet's inherited weights)."""
    if not isinstance(space, ComposedSpace):
        return whole, pick, candidate_of(rival)
    target = signal_space(space)
    assert isinstance(whole, BlockProxyEvaluator) and isinstance(target, ComposedSpace)
    return whole.for_space(target), signal_keys(space, pick), target.candidate_of(rival)
