"""Frequency groups: split a field's frequency-ranked ids into contiguous ranges."""

from __future__ import annotations

import numpy as np


def frequency_groups(counts: np.ndarray, n_groups: int) -> list[tuple[int, int]]:
    """Cut ids ``0..n-1`` (ranked by frequency, see the schema) into at most ``n_groups``
    contiguous ranges holding roughly equal shares of the training occurrences.

    Equal-occurrence cuts follow NIS/AutoEmb's intent (head features in small groups, the
    long tail in big ones). Every group holds at least one id; empty cuts are merged.
    """
    n = len(counts)
    g = max(1, min(int(n_groups), n))
    if g == 1:
        return [(0, n)]
    # OOV (id 0) rides with the head group, unless the top id alone holds more than 1/G of
    # the occurrences: the first cut then falls after id 0, which gets a group of its own
    ranked = np.asarray(counts[1:], dtype=np.float64)
    cum = np.cumsum(ranked)
    total = cum[-1] if len(cum) and cum[-1] > 0 else 0.0
    if total == 0:
        cuts = np.linspace(1, n, g + 1).round().astype(int)[1:-1]
    else:
        cuts = 1 + np.searchsorted(cum, total * np.arange(1, g) / g, side="right")
    bounds = sorted({0, *(int(min(max(c, 1), n - 1)) for c in cuts), n})
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
