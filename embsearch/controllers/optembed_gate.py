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

Extension, ``composed_min_gain`` (proxy AUC, default 0.005; only in a composed space with a
row or precision axis): the pick must also beat the rival by at least this much on the proxy,
because there the proxy's paired SE is tiny (0.0001-0.0005 on frappe's hybrid space) while
it cannot see what retraining loses to shared rows and int8: picks that beat uniform by
0.0003-0.002 retrained 0.004-0.035 below it; picks that retrained better beat it by >= 0.13
(frappe split, 1/3/10/25%, seeds 0-2: benchmarks/results/composed_spaces/). With the
column-wise int8c/int4c (seeds 0-5, ``optembed_gate20_summary.txt``): hybrid picks that beat
uniform by 0.0003-0.0027 retrained 0.003-0.032 below it, those by >= 0.10 (all at 1%)
0.018-0.028 above (24/24 right); in ``field_dims+precision`` every pick gained <= 0.0038 and
uniform retrained better in 16 of 18 cells.
"""

from __future__ import annotations

import statistics
from typing import Any

from embsearch.candidate import Candidate
from embsearch.context import SearchContext
from embsearch.controllers._signal import candidate_of
from embsearch.controllers.block_proxy import BlockProxyEvaluator
from embsearch.controllers.evolutionary import paired_margin
from embsearch.controllers.uniform import uniform_plan
from embsearch.evaluator import Evaluator
from embsearch.plan import Plan
from embsearch.search_loop import as_json
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


def min_gain_of(space: SearchSpace, min_gain: float) -> float | None:
    """``composed_min_gain`` where it applies (a composed space with a row or precision
    axis: module docstring), else ``None`` (dims-only spaces: the SE margin alone)."""
    if isinstance(space, ComposedSpace) and {"meta_table", "precision"} & set(space.axes):
        return float(min_gain)
    return None


def gate_note(margin: dict) -> str:
    """The note a plan served by the gate carries: the pick's gain and the test it failed."""
    gain = margin["pick_val_auc"] - margin["uniform_val_auc"]
    se, k, floor = margin["difference_se"], margin["margin_se"], margin.get("min_gain")
    if floor is not None and gain > k * se and gain < floor:
        why = f"less than composed_min_gain ({floor:g}; --param composed_min_gain=0 drops it)"
    else:
        why = f"not more than {k:g} standard errors ({se:.4f} each)"
    return (
        f"kept the uniform plan: the search's pick beat it by {gain:+.4f} val AUC, {why}; "
        "--param uniform_margin=0 returns the pick"
    )


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


def gate_figures(
    space: SearchSpace,
    whole: Evaluator,
    best: Candidate,
    rival: Plan,
    k: float,
    min_gain: float | None,
) -> dict[str, Any] | None:
    """The gate's test and record: ``best`` (the pick, a candidate of ``space``) is returned
    when it beats ``rival`` on :func:`gate_pair`'s evaluator by more than ``k`` standard errors
    of the paired AUC difference (DeLong) and, where ``min_gain`` is not ``None``
    (:func:`min_gain_of`), by at least ``min_gain`` AUC. ``None`` when the pick is the rival."""
    whole, pick, uniform = gate_pair(space, whole, best, rival)
    if pick == uniform:
        return None
    test = paired_margin(whole, pick, uniform, k)
    gain = test.challenger_auc - test.incumbent_auc
    keep = test.challenger_wins and (min_gain is None or gain >= min_gain)
    return {
        "pick_val_auc": test.challenger_auc,
        "uniform_dim": statistics.mode(d for f in rival.fields for d in f.dims),
        "uniform_val_auc": test.incumbent_auc,
        "difference_se": test.se,
        "margin_se": k,
        "returned": "pick" if keep else "uniform",
        "pick": as_json(best),  # the evolution's pick, whichever is returned
        **({} if min_gain is None else {"min_gain": min_gain}),
    }
