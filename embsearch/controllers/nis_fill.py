"""NIS's budget fill (:meth:`embsearch.controllers.nis.NIS.fill`, an extension): the bytes the
policy's most likely architecture leaves of a budget, spent where the policy loses least
likelihood per byte.

The policy learns on inherited weights, where more blocks seldom pay before retraining, so
its most likely architecture within a budget can leave most of it unspent. The filled plan
is the most likely architecture that keeps every (field, group) at least at its unfilled
option and spends the budget: the exact knapsack over ``log p + mu * bytes / budget`` (a
Lagrange multiplier ``mu`` on the bytes spent) for the smallest ``mu`` of a doubling grid
whose plan spends, within 1/64 of the budget, as much as the largest ``mu``'s. What is
still left then goes to the most likely upgrades that fit, one at a time.

Measured reason for the knapsack: upgrading greedily by likelihood alone (the first fill)
spent frappe's 25% on the small fields' last blocks and left no room for one block of a
large item group the policy rated 0.27 (0.72 for 0 blocks), whose ids then left the
vocabulary.
"""

from __future__ import annotations

import numpy as np

from embsearch.search_spaces.base import Candidate, SearchSpace
from embsearch.search_spaces.knapsack import solve_mckp

MU_GRID = (0.0, *(2.0**k for k in range(13)))  # the multipliers tried, smallest first


def fill(
    space: SearchSpace, costs: np.ndarray, cand: Candidate, log_probs: np.ndarray, budget: int
) -> Candidate:
    """``cand`` (dims per field and group of ``space``) upgraded to spend ``budget``:
    ``costs[s, o]`` bytes of slot ``s`` (field-major (field, group)) keeping option ``o``
    (``inf``: ruled out by a constraint), ``log_probs[s, o]`` the policy's. Every slot keeps
    at least its option in ``cand``; the result never passes the budget."""
    index = {d: i for i, d in enumerate(space.candidates)}
    chosen = [index[d] for dims in cand for d in dims]
    allowed = [  # per slot, the options its field's constraint allows (--constraint)
        {index[d] for d in space.block_keys(f, g)}
        for f, groups in enumerate(space.groups)
        for g in range(len(groups))
    ]
    chosen = lagrangian(costs, chosen, allowed, log_probs, budget)
    left = budget - float(sum(costs[s, o] for s, o in enumerate(chosen)))
    while True:  # the crumbs: the most likely upgrade that fits, one at a time
        best, pick = -np.inf, None
        for s, o in enumerate(chosen):
            for o2 in range(o + 1, costs.shape[1]):
                extra = costs[s, o2] - costs[s, o]
                if extra <= left and log_probs[s, o2] > best and o2 in allowed[s]:
                    best, pick = log_probs[s, o2], (s, o2, extra)
        if pick is None:
            break
        s, o2, extra = pick
        chosen[s], left = o2, left - extra
    out, at = [], 0
    for groups in space.groups:
        out.append(tuple(space.candidates[i] for i in chosen[at : at + len(groups)]))
        at += len(groups)
    filled = tuple(out)
    return filled if space.bytes_of(filled) <= budget else cand


def lagrangian(
    costs: np.ndarray,
    chosen: list[int],
    allowed: list[set[int]],
    log_probs: np.ndarray,
    budget: int,
) -> list[int]:
    """Option indices per slot (none below ``chosen``'s, only ``allowed`` ones above it):
    the exact knapsack over ``log p + mu * bytes / budget`` for the smallest ``mu`` of
    :data:`MU_GRID` that spends, within ``budget / 64``, as much as the largest."""
    ok = np.array(
        [
            [o2 == o or (o2 > o and o2 in allowed[s]) for o2 in range(costs.shape[1])]
            for s, o in enumerate(chosen)
        ]
    ) & np.isfinite(costs)
    whole = np.where(ok, costs, budget + 1).astype(np.int64)
    share = np.where(ok, costs, 0.0) / max(budget, 1)

    def solve(mu: float) -> tuple[list[int], int]:
        values = np.where(ok, log_probs + mu * share, -np.inf)
        pick = solve_mckp(list(whole), list(values), budget)
        return pick, int(sum(whole[s, o] for s, o in enumerate(pick)))

    solved = [solve(mu) for mu in MU_GRID]
    most = solved[-1][1]
    return next(pick for pick, spent in solved if spent >= most - budget / 64)
