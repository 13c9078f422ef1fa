"""Frequency-ranked id encoding shared by every reader and the synthetic generator.

Input is a column already turned into dense integer codes ``0..n_values-1`` (pyarrow's
``dictionary_encode`` does that for strings in C). Output maps each code to the id
convention of :mod:`embsearch.data.schema`: ``0`` = OOV, ``1..n`` by descending frequency.
"""

from __future__ import annotations

import numpy as np


def frequency_ranking(
    train_codes: np.ndarray, n_values: int, min_count: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(remap, counts)``.

    ``remap[code]`` is the id of ``code`` (0 when its training count is below
    ``min_count`` or it never occurs in training); ``counts[id]`` is the training count of
    each id, ``counts[0]`` summing every value folded into OOV. Ties break by code so the
    result is deterministic.
    """
    freq = np.bincount(np.asarray(train_codes, dtype=np.int64), minlength=n_values)
    return rank_counts(freq, min_count)


def rank_counts(freq: np.ndarray, min_count: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """:func:`frequency_ranking` from the training count of each code (``freq[code]``), as
    ``data prepare`` accumulates them batch by batch."""
    freq = np.asarray(freq, dtype=np.int64)
    n_values = len(freq)
    kept = np.flatnonzero(freq >= max(min_count, 1))
    order = kept[np.lexsort((kept, -freq[kept]))]
    remap = np.zeros(n_values, dtype=np.int32)
    remap[order] = np.arange(1, len(order) + 1, dtype=np.int32)
    counts = np.empty(len(order) + 1, dtype=np.int64)
    counts[0] = int(freq.sum() - freq[order].sum())
    counts[1:] = freq[order]
    return remap, counts


def apply_ranking(codes: np.ndarray, remap: np.ndarray) -> np.ndarray:
    """Map codes to ids; codes outside the training dictionary (``-1`` or ``>= len``) go to OOV."""
    codes = np.asarray(codes, dtype=np.int64)
    out = np.zeros(codes.shape, dtype=np.int32)
    ok = (codes >= 0) & (codes < len(remap))
    out[ok] = remap[codes[ok]]
    return out
