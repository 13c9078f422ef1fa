"""Numeric columns as bucket codes: the one rule ``prepare`` uses on the training data and
:meth:`~embsearch.data.vocab.Vocabulary.encode` uses on raw numbers later, so both give a
value the same id (both modules import it from here)."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def bucket_codes(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Bucketise a numeric column into small non-negative int64 codes (one code per bucket).

    ``v = floor(x)``; ``|v| <= 2`` keeps ``v`` as is; ``v > 2`` goes to bucket
    ``floor(log(v)^2)`` and ``v < -2`` to the mirrored negative bucket; missing or NaN is a
    bucket of its own. On Criteo's integers this is the usual ``log(x)^2`` rule (its
    negatives are -1..-3, each still its own bucket), except that the small values 0, 1, 2
    never share a bucket with a log bucket (``floor(log(3)^2) = 1`` would otherwise collide
    with ``1``). Floats are floored first so the same rule serves integers and floats.
    Codes depend only on the value, so they agree across files; code 0 is "missing".
    """
    x = pc.fill_null(pc.cast(col, pa.float64()), math.nan)
    x = np.asarray(
        x.to_numpy() if isinstance(x, pa.ChunkedArray) else x.to_numpy(zero_copy_only=False)
    )
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        v = np.floor(x)
        a = np.abs(v)
        big = a > 2
        b = np.floor(np.log(np.where(big, np.minimum(a, np.finfo(np.float64).max), 3.0)) ** 2)
        codes = np.where(big, 6.0 + 2.0 * b + (v < 0), v + 3.0)
        codes[np.isnan(x)] = 0.0
    return codes.astype(np.int64)
