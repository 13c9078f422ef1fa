"""Exact multiple-choice knapsack: pick one option per unit, maximise total value, cost <= budget.

Used to turn learned preferences (architecture weights, importance scores) into a plan that
fits a byte budget. Solved exactly by a sparse Pareto dynamic programme over units: the
frontier keeps, for every reachable cost, the best value, and drops every state that costs
more yet is worth no more than another. Costs are exact integers (bytes), so no rounding is
ever involved and the answer is optimal, which tests check against brute force.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from embsearch.errors import BudgetError
from embsearch.search_spaces.floor import check_fits


def solve_mckp(
    costs: Sequence[Sequence[int]], values: Sequence[Sequence[float]], budget: int
) -> list[int]:
    """Return the index of the chosen option of each unit.

    Ties in value are broken toward lower cost. An option valued ``-inf`` is not allowed
    (never chosen). Raises :class:`BudgetError` when even the cheapest allowed option of
    every unit does not fit.
    """
    n_units = len(costs)
    allowed = [np.asarray(v, dtype=np.float64) > -np.inf for v in values]
    if not all(a.any() for a in allowed):
        raise BudgetError("every option of a unit is disallowed (valued -inf); allow at least one")
    min_cost = [int(np.asarray(c, dtype=np.int64)[a].min()) for c, a in zip(costs, allowed)]
    min_total = sum(min_cost)
    check_fits(budget, min_total, what="plan the values allow")
    # Suffix minimum cost: a state is useless if even the cheapest rest cannot fit.
    suffix_min = np.zeros(n_units + 1, dtype=np.int64)
    for i in range(n_units - 1, -1, -1):
        suffix_min[i] = suffix_min[i + 1] + min_cost[i]

    front_cost = np.zeros(1, dtype=np.int64)
    front_value = np.zeros(1, dtype=np.float64)
    back: list[tuple[np.ndarray, np.ndarray]] = []  # per unit: (parent index, option index)
    for i in range(n_units):
        c, v, ids = _undominated(
            np.asarray(costs[i], dtype=np.int64), np.asarray(values[i], dtype=np.float64)
        )
        new_cost = (front_cost[:, None] + c[None, :]).ravel()
        new_value = (front_value[:, None] + v[None, :]).ravel()
        parent = np.repeat(np.arange(len(front_cost)), len(c))
        option = np.tile(ids, len(front_cost))
        ok = new_cost + suffix_min[i + 1] <= budget
        new_cost, new_value, parent, option = new_cost[ok], new_value[ok], parent[ok], option[ok]
        # Pareto filter: sort by cost asc (value desc on ties), keep strictly improving values.
        order = np.lexsort((-new_value, new_cost))
        new_cost, new_value = new_cost[order], new_value[order]
        parent, option = parent[order], option[order]
        best_before = np.maximum.accumulate(np.concatenate(([-np.inf], new_value[:-1])))
        keep = new_value > best_before
        front_cost, front_value = new_cost[keep], new_value[keep]
        back.append((parent[keep], option[keep]))

    state = int(np.argmax(front_value))  # frontier values increase with cost; last is best
    choice = [0] * n_units
    for i in range(n_units - 1, -1, -1):
        parent, option = back[i]
        choice[i] = int(option[state])
        state = int(parent[state])
    return choice


def _undominated(c: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A unit's options that no cheaper-or-equal option beats: (costs, values, original indices)."""
    order = np.lexsort((-v, c))
    best_before = np.maximum.accumulate(np.concatenate(([-np.inf], v[order][:-1])))
    keep = order[v[order] > best_before]
    return c[keep], v[keep], keep
