"""``uniform``: the largest single dimension for every field that fits the budget.

The baseline every method is compared with. The plan's width equals its dim, so the
uniform table needs no projection (a plain smaller table, as practitioners would build).

In a composed space (``search_spaces/composed.py``) a uniform setting is one value per
axis for every field: a dim ``d`` (the plan's width, as above), a precision, and a hashing
level ``k`` (every field hashed to about ``1 / 2**k`` of its ids: the hashing trick,
:func:`uniform_rows`; ``k = 0`` is the full table). The plan is the setting within the
budget that hashes least (the lowest ``k``), then of the largest dim, then of most bytes
(then more bits): on frappe at 10% the setting of most bytes hashed every field (test AUC
0.888) where full rows at fp16 fit (0.953); and with the column-wise int4c, bytes no longer
follow quality: at 25% the setting of most bytes, fp16 dim 8, scored 0.9570 where int4c dim
16 scored 0.9576 (seeds 0-2, each seed; at 10% both orders take int4c dim 12). Without
int8c/int4c the two orders agree up to half the fp32 table (fp16 at twice fp32's dim costs
the same bytes); above it this order takes fp16 at the full width over fp32 at a smaller dim.

Under per-field constraints (``--constraint``) a narrower table cannot hold a field whose
dims are bounded below, so the plan keeps the space's width (dims ``d = width .. 1`` as
above) and every constrained field takes the dim (or setting) of the uniform choice nearest
to what its constraint allows
(:func:`~embsearch.search_spaces.constrain.nearest`; a dim below the width then pays its
projection): the largest such choice that fits, in the same order as above.

``select="val"`` (embsearch's extension, a parameter; the default is the rule above): no rule
knows whether a dataset needs width, rows or bits. On the 1M-id synthetic set at 10% the
rule's int4c dim 12 (test AUC 0.7200) loses to fp32 dim 1 (0.7228), a setting of the same
space. So in a composed space the rule only proposes (:func:`axis_settings`): its own
setting, the rule within each precision of the space, and each single axis's setting that
the space composes (dims: fp32 at the largest dim; rows: fp32 at the width, the least
hashing; bits: full rows at the width). Each is trained from scratch with the run's recipe
(``select_epochs``). The best validation AUC replaces the rule's setting only when it beats
it by more than ``select_margin`` standard errors of the paired difference (DeLong, as
OptEmbed's uniform gate; :func:`~embsearch.controllers.uniform_select.select_by_validation`).
The plan records every score and the test (``extra["select"]``). Where the full table fits
there is nothing to choose. Measured (BENCHMARKS.md, seeds 0-2): on the synthetic set the
hybrid then beats the best single-axis cell by +0.0010 at 10% and +0.0001 at 25% (the rule:
-0.0013 / -0.0006), its winners leading the rule by 9-17 SEs; without the margin it chose by
noise on talkingdata's validation splits of ~24 positives (0.928 at 10% against the rule's
0.944, 9 splits), where with it the rule is kept on every split, as on frappe at 10%. The
rule stays the default (it trains nothing).

The rule lives in :func:`uniform_choice` (and :func:`uniform_plan`), which OptEmbed's uniform
gate also calls, with its pruned rows credited (``kept``: the uniform table of the kept rows,
``search_spaces/pruned_rows.py``), so both always build the same plan.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from embsearch.blocks import BITS, PRECISIONS
from embsearch.candidate import Candidate
from embsearch.context import SearchContext
from embsearch.controllers.base import Controller, SearchState
from embsearch.controllers.param_spec import Param
from embsearch.controllers.uniform_select import SelectMemo, select_by_validation
from embsearch.errors import BudgetError
from embsearch.plan import Plan
from embsearch.search_loop import deadline_of
from embsearch.search_spaces import COMPOSED_SPACES, constrain
from embsearch.search_spaces.base import SearchSpace
from embsearch.search_spaces.composed import ComposedSpace
from embsearch.search_spaces.pruned_rows import PrunedRowsSpace


def uniform_rows(space: ComposedSpace, dim: int, level: int, precision: str) -> Candidate | None:
    """Every field at ``dim`` and ``precision``, hashed to at most ``ceil(n / 2**level)``
    rows: the offered ``full`` or ``hash`` option storing the most rows within that (the
    fewest rows when none is within it); ``None`` when the setting is not in the space."""
    out = []
    for f, groups in enumerate(space.groups):
        keys = []
        for g, (a, b) in enumerate(groups):
            fits = _row_options(space, f, g, dim, precision)
            if not fits:
                return None
            target = max(math.ceil((b - a) / 2**level), 2)
            i = bisect.bisect_right(fits, (target, math.inf))
            keys.append(fits[i - 1][1] if i else fits[0][1])
        out.append(tuple(keys))
    return tuple(out)


def _row_options(
    space: ComposedSpace, f: int, g: int, dim: int, precision: str
) -> list[tuple[int, int]]:
    """Block ``(f, g)``'s full and hash options at ``dim`` and ``precision``: (stored rows,
    key), sorted, memoised on the space."""
    memo = space.__dict__.setdefault("_uniform_rows", {})
    key = (f, g, space.width, dim, precision)
    if key not in memo:
        rows = space.groups[f][g][1] - space.groups[f][g][0]
        memo[key] = sorted(
            (o.stored_rows(rows), k)
            for k, o in enumerate(space.block_options(f, g))
            if o.dim == dim and o.precision == precision and o.kind in ("full", "hash")
        )
    return memo[key]


def uniform_choice(
    space: SearchSpace, budget: int, kept: Sequence[int] | None = None
) -> tuple[SearchSpace, Candidate]:
    """The ``uniform`` rule (module docstring): the space the plan is made in (narrowed to
    the chosen width) and its candidate, within ``budget`` bytes. ``kept``: rows kept per
    field, credited (the uniform table of the kept rows, each field a ``pruned`` block where
    that is cheaper: OptEmbed's pruned rows; dims-only spaces). :class:`BudgetError` (one
    line) when no uniform setting fits."""
    if kept is not None:
        space = PrunedRowsSpace(space, kept)
    if isinstance(space, ComposedSpace):
        return _composed_choice(space, budget)
    for dim in range(space.width, 0, -1):
        if space.constraints:  # the space's width, constrained fields moved (docstring)
            narrow = space.with_candidates(sorted({*space.candidates, dim}))
        else:
            narrow = space.with_width(dim)
        cand = narrow.uniform(dim)
        if narrow.bytes_of(cand) <= budget:
            return narrow, cand
    rows = " of the kept rows" if kept is not None else ""
    raise BudgetError(f"budget {budget} B cannot hold even a dim-1 table{rows}; raise --budget")


def uniform_plan(
    ctx: SearchContext,
    budget: int | None = None,
    *,
    space: SearchSpace | None = None,
    kept: Sequence[int] | None = None,
    controller: str = "uniform",
) -> Plan:
    """The plan of :func:`uniform_choice` in ``space`` (default ``ctx.space``) for ``budget``
    (default ``ctx.budget``), named for ``controller``."""
    budget = ctx.budget if budget is None else budget
    narrow, cand = uniform_choice(space or ctx.space, budget, kept)
    return narrow.to_plan(cand, controller, budget, data_fingerprint=ctx.dataset.fingerprint())


def _composed_choice(space: ComposedSpace, budget: int) -> tuple[ComposedSpace, Candidate]:
    """The uniform setting within the budget that hashes least, then of the largest dim,
    then of most bytes (module docstring)."""
    narrow, cand, _ = _setting(space, budget)
    return narrow, cand


def _setting(
    space: ComposedSpace,
    budget: int,
    *,
    dims: Sequence[int] | None = None,
    levels: Sequence[int] | None = None,
    precisions: Sequence[str] | None = None,
) -> tuple[ComposedSpace, Candidate, str]:
    """:func:`_composed_choice`'s setting and a label naming it; ``dims``, ``levels``,
    ``precisions``: only the settings with these values (:func:`axis_settings`)."""
    all_dims = range(space.width, 0, -1) if "dims" in space.axes else (space.width,)
    if space.constraints:  # the space's width, constrained fields moved (docstring)
        all_dims = sorted((d for d in space.dim_choices if d > 0), reverse=True)
    most = max(b - a for gs in space.groups for a, b in gs)
    all_levels = range(0, most.bit_length() + 1) if "meta_table" in space.axes else (0,)
    all_precisions = PRECISIONS if "precision" in space.axes else (space.precision,)
    dims = [d for d in all_dims if dims is None or d in dims]
    levels = [k for k in all_levels if levels is None or k in levels]
    precisions = [p for p in all_precisions if precisions is None or p in precisions]
    best: tuple[tuple[int, int, int, int], ComposedSpace, Candidate, str] | None = None
    for dim in dims:
        narrow = space.with_width(dim) if dim != space.width and not space.constraints else space
        for level in levels:
            for p in precisions:
                cand = uniform_rows(narrow, dim, level, p)
                if cand is None:
                    continue
                cand = constrain.nearest(narrow, cand)
                nbytes = narrow.bytes_of(cand)
                rank = (-level, dim, nbytes, BITS[p])
                if nbytes <= budget and (best is None or rank > best[0]):
                    hashed = f", rows hashed to 1/{2**level}" if level else ""
                    best = (rank, narrow, cand, f"{p} dim {dim}{hashed}")
    if best is None:
        raise BudgetError(
            f"budget {budget} B cannot hold any uniform setting of the {space.name} "
            "space; raise --budget"
        )
    return best[1], best[2], best[3]


def axis_settings(space: ComposedSpace, budget: int) -> list[tuple[str, ComposedSpace, Candidate]]:
    """``select="val"``'s proposals (module docstring), each once, with a label naming its
    setting: the rule's setting; the rule within each precision of the space; then the
    setting of each single axis the space composes (``dims``: the space's precision and
    full rows; ``rows``: the space's precision at the width; ``bits``: full rows at the
    width). Settings no budget-fitting choice exists for are left out; where the full
    fp32 table fits, the rule's alone."""
    out: list[tuple[str, ComposedSpace, Candidate]] = []
    seen: set[tuple[int, Candidate]] = set()
    holds: list[dict[str, Sequence[Any]]] = [{}]
    if budget < space.full_table_bytes():
        if "precision" in space.axes:
            holds += [{"precisions": (p,)} for p in PRECISIONS]
        if "dims" in space.axes:
            holds.append({"precisions": (space.precision,), "levels": (0,)})
        if "meta_table" in space.axes:
            holds.append({"precisions": (space.precision,), "dims": (space.width,)})
        if "precision" in space.axes:
            holds.append({"levels": (0,), "dims": (space.width,)})
    for hold in holds:
        try:
            narrow, cand, label = _setting(space, budget, **hold)
        except BudgetError:
            if not hold:
                raise
            continue
        if (narrow.width, cand) not in seen:
            seen.add((narrow.width, cand))
            out.append((label, narrow, cand))
    return out


@dataclass
class UniformState(SearchState):
    """``select="val"``'s validation scores by (width, candidate), shared by the budgets of
    one search, and the search's deadline (``--max-seconds``)."""

    scores: SelectMemo = field(default_factory=SelectMemo)
    deadline: float | None = None


class Uniform(Controller):
    name = "uniform"
    family = "rule-based"
    paper = "Baseline: one embedding dimension for all fields"
    supported_spaces = ("field_dims", "feature_dims", *COMPOSED_SPACES)
    state_class = UniformState
    param_specs = {
        "select": Param(
            "rule",
            "choice",
            "how a composed space's setting is chosen: 'rule' (least hashing, then the "
            "largest dim, then most bytes) or 'val' (the rule's setting, the rule within each "
            "precision and each single axis's setting, each trained; the best validation AUC "
            "wins by select_margin or the rule's is kept); one setting in a dims-only space",
            choices=("rule", "val"),
            extension="'val': a rule cannot know whether a dataset needs width, rows or bits "
            "(1M-id synthetic set at 10%: fp32 dim 1 beats the rule's int4c dim 12)",
        ),
        "select_margin": Param(
            2.0,
            "float",
            "'val': the best validation AUC replaces the rule's setting only when it beats it "
            "by more than this many standard errors (paired, DeLong; 0: the best whatever its "
            "margin)",
            0.0,
            extension="a small validation split ranks settings by noise (talkingdata's 24 "
            "positives); OptEmbed's uniform gate runs the same test",
        ),
        "select_epochs": Param(
            None, "int", "epochs of each 'val' training (None: --epochs)", 1, optional=True
        ),
    }
    constraints_note = (
        "obeyed: the plan keeps the space's width and each constrained field takes the allowed "
        "dim (or setting) nearest the uniform one"
    )

    def search_budgets(self, ctx: SearchContext) -> list[Plan]:
        """One plan per budget; ``select="val"`` shares its scores and deadline among them."""
        self.new_state()
        self.state.deadline = deadline_of(ctx)
        return [self.search(ctx.with_budget(b)) for b in ctx.budgets]

    def search(self, ctx: SearchContext) -> Plan:
        """:func:`uniform_choice` for the context's space and budget; with ``select="val"``
        in a composed space, the best on validation of :func:`axis_settings`."""
        if self.config["select"] == "rule" or not isinstance(ctx.space, ComposedSpace):
            narrow, cand = uniform_choice(ctx.space, ctx.budget)
            return self.make_plan(ctx, cand, space=narrow)
        settings = axis_settings(ctx.space, ctx.budget)
        plans = [self.make_plan(ctx, cand, space=narrow) for _, narrow, cand in settings]
        if len(plans) == 1:
            return plans[0]
        proposals = [
            (label, (narrow.width, cand), plan)
            for (label, narrow, cand), plan in zip(settings, plans)
        ]
        state = self.state
        assert isinstance(state, UniformState)  # state_class
        chosen = select_by_validation(
            ctx,
            proposals,
            int(self.config["select_epochs"] or ctx.train.epochs),
            state.scores,
            state.deadline,
            self.name,
            float(self.config["select_margin"]),
        )
        plan = plans[chosen.best]
        plan.extra["select"] = {"chosen": settings[chosen.best][0], "settings": chosen.records}
        if chosen.margin is not None:
            plan.extra["select"]["margin"] = chosen.margin
        if chosen.trained is not None:  # its final training ran here: the runner saves it
            plan.weights, result = chosen.trained
            plan.metrics = {"val_auc": result.val_auc, "val_logloss": result.val_logloss}
            plan.extra["training"] = result.stopping_record()
        return plan
