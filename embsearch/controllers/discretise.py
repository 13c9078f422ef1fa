"""Step 3 of the differentiable family: learned preferences become a plan under a budget.

Preferences, ``preference[f]`` of shape ``[groups of f, len(candidates)]``, are additive:
:func:`discretise` maximises their sum over (field, group) subject to ``bytes <= budget``
(exact multiple-choice knapsack, ``space.best_under_budget``), or takes the papers' own
per-group argmax (``mode='argmax'``), which ignores the budget and raises
:class:`BudgetError` when its plan does not fit.

AutoDim and AutoEmb learn weights ``w[g, k]`` over the candidates (a distribution of each
group's dim ``D``); ``VALUE_KINDS`` turns them into a value of dim ``d``:

- ``'shortfall'`` (:func:`shortfall`, the shared default): minus the expected number of
  doublings ``d`` falls short of ``D``, ``-E[max(0, log2(D + 1) - log2(d + 1))]``: the plan
  closest to the learned architecture from below; the value never falls as ``d`` grows, so
  budgets get used;
- ``'distance'`` (:func:`distance`, AutoDim's and AutoEmb's default): minus the expected
  doublings ``d`` is away from ``D`` either way, ``-E|log2(D + 1) - log2(d + 1)|``: under a
  loose budget each group gets the (log-scale) median of its weights, the paper's argmax
  for a confident group, and width the weights do not ask for is not bought, so a plan may
  use less than its budget;
- ``'coverage'`` (:func:`coverage`, an ablation): ``log P(D <= d)``, the plan most likely to
  cover the learned architecture; flat below a group's likely dims, so it spends budgets
  on cheap groups.

Dropping (dim 0 among the candidates) is embsearch's extension: a group may take it only
where its own weights favour it (``argmax w = 0``, a tie counting as not favoured,
:func:`drop_only_where_favoured`); elsewhere dim 0 is valued ``-inf`` and never chosen,
whatever the bytes it would free, so the knapsack cannot drop a field the weights are sure
of to buy width for small ones. DNIS's value is the kept mask mass (a budgeted magnitude
pruning), computed in :mod:`.dnis`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from embsearch.budget import format_bytes
from embsearch.errors import BudgetError, ConfigError
from embsearch.search_spaces.base import Candidate, SearchSpace

DISCRETISE_MODES = ("knapsack", "argmax")


def discretise(
    space: SearchSpace, preference: Sequence[np.ndarray], budget: int, mode: str = "knapsack"
) -> Candidate:
    """Step 3: the candidate maximising total ``preference`` within ``budget`` bytes
    (``mode='knapsack'``), or the per-group argmax (``mode='argmax'``) checked against it."""
    if mode not in DISCRETISE_MODES:
        raise ConfigError(f"discretise must be one of {', '.join(DISCRETISE_MODES)}, got {mode!r}")
    if len(preference) != space.num_fields:
        raise ConfigError(
            f"preference covers {len(preference)} fields, the space has {space.num_fields}"
        )
    for f, p in enumerate(preference):
        want = (len(space.groups[f]), len(space.candidates))
        if np.shape(p) != want:
            raise ConfigError(
                f"preference of field {space.schema.fields[f].name!r} has shape {np.shape(p)}, expected {want}"
            )
    space.check_budget(budget)
    if mode == "knapsack":
        return space.best_under_budget(preference, budget)
    cand = space.argmax(preference)
    need = space.bytes_of(cand)
    if need > budget:
        raise BudgetError(
            f"the argmax plan needs {format_bytes(need)}, above the budget {format_bytes(budget)}; "
            f"use discretise='knapsack' (fits any feasible budget) or raise --budget to at least {need}"
        )
    return cand


def coverage(weights: np.ndarray) -> np.ndarray:
    """``log P(D <= d_k)`` for ``D`` distributed as ``weights`` (``[..., K]``, summing to 1)."""
    return np.log(np.clip(np.cumsum(np.asarray(weights, dtype=np.float64), axis=-1), 1e-12, None))


def _doublings_apart(candidates: Sequence[int]) -> np.ndarray:
    """``[k, j]``: how many doublings ``d_j`` lies above ``d_k`` (negative below), on the
    ``log2(d + 1)`` scale that :func:`shortfall` and :func:`distance` share."""
    level = np.log2(np.asarray(candidates, dtype=np.float64) + 1.0)
    return level[None, :] - level[:, None]


def shortfall(weights: np.ndarray, candidates: Sequence[int]) -> np.ndarray:
    """``-E[max(0, log2(D + 1) - log2(d_k + 1))]`` for ``D`` distributed as ``weights``
    (``[..., K]`` over the ascending ``candidates``): minus the expected doublings short."""
    short = np.clip(_doublings_apart(candidates), 0.0, None)  # [k, j]: d_k short of d_j
    return -(np.asarray(weights, dtype=np.float64) @ short.T)


def distance(weights: np.ndarray, candidates: Sequence[int]) -> np.ndarray:
    """``-E|log2(D + 1) - log2(d_k + 1)|`` for ``D`` distributed as ``weights``: minus the
    expected doublings ``d_k`` is away from the learned dim, short or over."""
    apart = np.abs(_doublings_apart(candidates))
    return -(np.asarray(weights, dtype=np.float64) @ apart.T)


def drop_only_where_favoured(
    value: np.ndarray, weights: np.ndarray, candidates: Sequence[int]
) -> np.ndarray:
    """``value`` with dim 0 disallowed (``-inf``) in every group whose weights do not put
    strictly more on dim 0 than on any other dim (a tie, e.g. untrained uniform weights,
    keeps the group; see the module docstring); unchanged when 0 is not a candidate."""
    if candidates[0] != 0 or len(candidates) == 1:
        return value
    w = np.asarray(weights, dtype=np.float64)
    out = np.array(value, dtype=np.float64)
    out[~(w[..., 0] > w[..., 1:].max(axis=-1)), 0] = -np.inf
    return out


# the knapsack's values of learned weights: name -> (value of w over the candidates, what
# plan.extra['preference'] holds, for D ~ the weights)
VALUE_KINDS: dict[str, tuple[Callable[[np.ndarray, Sequence[int]], np.ndarray], str]] = {
    "shortfall": (shortfall, "-E[max(0, log2(D + 1) - log2(d + 1))]"),
    "coverage": (lambda w, candidates: coverage(w), "log P(D <= d)"),
    "distance": (distance, "-E|log2(D + 1) - log2(d + 1)|"),
}
VALUES = tuple(VALUE_KINDS)
