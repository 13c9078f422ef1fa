"""Numeric columns as bucket codes: the one rule ``prepare`` uses on the training data and
:meth:`~embsearch.data.vocab.Vocabulary.encode` uses on raw numbers later, so both give a
value the same id (both modules import it from here)."""

from __future__ import annotations

import functools
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
    Integer columns take :func:`_integer_codes`, the same codes by table lookup.
    """
    if pa.types.is_integer(col.type) and col.type != pa.uint64():  # uint64 may not fit int64
        return _integer_codes(col)
    return _float_codes(col)


def _float_codes(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """:func:`bucket_codes` of any numeric column, computed on float64."""
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


#: integers within this magnitude take their code from a table (:func:`_small_codes`)
_SMALL = 1 << 15


@functools.cache
def _small_codes() -> np.ndarray:
    """The codes of the integers ``-_SMALL .. _SMALL``, by :func:`_float_codes` itself."""
    return _float_codes(pa.array(np.arange(-_SMALL, _SMALL + 1, dtype=np.float64)))


def _integer_codes(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """:func:`bucket_codes` of an integer column: a table lookup for small values (the
    usual case for counts: no float conversion, no logarithm), :func:`_float_codes` for the
    others, code 0 for missing values. The same codes as the float path, by construction."""
    v = pc.fill_null(col, 0)
    v = np.asarray(
        v.to_numpy() if isinstance(v, pa.ChunkedArray) else v.to_numpy(zero_copy_only=False),
        dtype=np.int64,
    )
    codes = _small_codes()[np.clip(v, -_SMALL, _SMALL) + _SMALL]
    large = np.flatnonzero((v < -_SMALL) | (v > _SMALL))
    if len(large):
        codes[large] = _float_codes(pa.array(v[large]))
    if col.null_count:
        missing = pc.is_null(col)
        missing = (
            missing.to_numpy()
            if isinstance(missing, pa.ChunkedArray)
            else missing.to_numpy(zero_copy_only=False)
        )
        codes[np.asarray(missing, dtype=bool)] = 0
    return codes
