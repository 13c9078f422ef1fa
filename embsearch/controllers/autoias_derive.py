"""AutoIAS's derivation of the final architecture (:mod:`embsearch.controllers.autoias`,
step 5) when ``derive_samples`` > 0: ENAS's (Pham et al., ICML 2018, section 2.2, which
AutoIAS's REINFORCE-trained generator follows): draw architectures from the trained
generator, score each with inherited weights, keep the best, retrain it from scratch.

The candidates are the generator's most likely architecture within the budget (what
``derive_samples=0`` returns) and ``derive_samples`` draws; the scores are the reward's, but
on *held-out* validation rows (:func:`held_out_rows`, disjoint from the rows the generator
was trained on): the best of many scores on the rows the policy was fitted to would pick
that subsample's noise. With fewer held-out rows than ``val_rows`` (a small validation
split) the most likely architecture is kept: on the planted test's 2,000 validation rows,
all of them reward rows, the best of the draws on those rows fell to an informative/noise
ratio of 1.65 (seed 0, the most likely's 2.96) and agreed with the untrained generator's
plan on half the fields (seed 2). So is it with fewer than :data:`HELD_MIN_CLASS` held-out
rows of either class: the reward's rows take up to half their rows from the rare class, so
on talkingdata (~20 positives in 10k validation rows) every positive is a reward row, and
the held-out log loss of all-negative rows ties every candidate (the plan says why).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from embsearch.controllers.autoias_policy import ArchitecturePolicy
from embsearch.evaluator import stratified_rows

Arch = tuple[list[int], list[int], list[int]]  # dim options, op per pair, width options
HELD_OUT = 4  # held-out rows: up to this many times the reward's ``val_rows``
HELD_MIN_CLASS = 10  # held-out rows of each class the derivation needs (module docstring)


def held_out_rows(y: np.ndarray, reward_rows: np.ndarray, n: int) -> np.ndarray:
    """Sorted indices of up to ``n`` class-stratified rows of labels ``y`` outside
    ``reward_rows`` (none if every row is a reward row)."""
    rest = np.setdiff1d(np.arange(len(y)), reward_rows, assume_unique=True)
    if len(rest) == 0:
        return rest
    return rest[stratified_rows(y[rest], min(int(n), len(rest)))]


def skip_reason(held_y: np.ndarray, n: int) -> str | None:
    """Why the derivation keeps the most likely architecture on held-out labels ``held_y``
    (``n``: the reward's ``val_rows``), or None when they can rank the candidates."""
    if len(held_y) < n:
        return "the most likely: fewer held-out rows than val_rows"
    pos = int((held_y > 0.5).sum())
    if min(pos, len(held_y) - pos) < HELD_MIN_CLASS:
        return f"the most likely: fewer than {HELD_MIN_CLASS} held-out rows of a class"
    return None


def derive(
    policy: ArchitecturePolicy, most_likely: Arch, samples: int, reward: Callable[[Arch], float]
) -> tuple[Arch, dict[str, Any]]:
    """The best of ``most_likely`` and ``samples`` draws of ``policy`` by ``reward`` (held-out
    rows'), and a record of the choice (each distinct architecture scored once; ties keep
    the earlier, so the most likely wins a tie)."""
    arch = policy.sample(int(samples))
    candidates, seen = [most_likely], {repr(most_likely)}
    for i in range(len(arch)):
        row = arch.row(i)
        if repr(row) not in seen:
            seen.add(repr(row))
            candidates.append(row)
    scores = [reward(c) for c in candidates]
    best = int(np.argmax(scores))
    record = {
        "rule": f"best of the most likely and {samples} draws by the reward on held-out rows",
        "candidates": len(candidates),
        "chosen": "most likely" if best == 0 else "a draw",
        "most_likely_reward": round(scores[0], 6),
        "chosen_reward": round(scores[best], 6),
    }
    return candidates[best], record
