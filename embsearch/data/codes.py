"""Dense codes of one column across record batches: the vocabulary pass of ``data prepare``.

A :class:`ColumnCodes` gives every distinct value of a column a code ``0..n-1`` in the
order of its first appearance in the file, batch after batch, holding only the values seen
so far (the vocabulary), never the rows. These are the codes that Arrow's
``dictionary_encode`` gives the whole column at once, so the ids that
:func:`~embsearch.data.encode.frequency_ranking` derives from them (ties broken by code) do
not depend on the batch size. Nulls of a categorical column are a value of their own; a
numeric column is bucketised (:func:`~embsearch.data.buckets.bucket_codes`), its code being
the bucket; a column whose values all have 8 bytes (Criteo's and Avazu's hex ids) is
hashed as int64 (:func:`fixed8_keys`, about twice as fast as strings) until a batch holds
another value.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from embsearch.data.buckets import bucket_codes
from embsearch.data.vocab import bucket_labels


class ColumnCodes:
    """First-appearance codes of one column's values, grown batch by batch (see module)."""

    def __init__(self, numeric: bool) -> None:
        self.numeric = numeric
        self.fixed8 = True  # values held as fixed8_keys int64 (until a batch is not fixed8)
        self.values: pa.Array | None = None  # values[code] (categorical)
        self.n = 0  # codes given so far (numeric: the largest bucket + 1)

    def encode(self, col: pa.ChunkedArray | pa.Array, grow: bool = True) -> np.ndarray:
        """``int32`` codes of a batch. ``grow``: values not seen yet get the next codes, in
        order of first appearance; else (the validation and test files, read after the
        train file) they get ``-1`` (numeric: a bucket code ``>= n``), later mapped to OOV."""
        if self.numeric:
            codes = bucket_codes(col)
            if grow and len(codes):
                self.n = max(self.n, int(codes.max()) + 1)
            return codes.astype(np.int32)
        keys = fixed8_keys(col) if self.fixed8 else None
        if keys is None and self.fixed8:
            self.fixed8 = False
            if self.values is not None:  # the same values, as the strings they were read from
                self.values = fixed8_strings(self.values.to_numpy())
        arr = pa.array(keys) if keys is not None else col
        enc = pc.dictionary_encode(arr, null_encoding="encode")
        chunks = enc.chunks if isinstance(enc, pa.ChunkedArray) else [enc]
        if not chunks:
            return np.zeros(0, dtype=np.int32)
        local = chunks[-1].dictionary  # this batch's distinct values, in first-appearance order
        idx = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in chunks])
        lut = np.full(len(local), -1, dtype=np.int64)
        if self.values is not None and len(self.values):
            # hash the batch's few distinct values and probe the vocabulary with them
            at = pc.fill_null(pc.index_in(self.values, value_set=local, skip_nulls=False), -1)
            at = np.asarray(at.to_numpy(zero_copy_only=False), dtype=np.int64)
            known = np.flatnonzero(at >= 0)
            lut[at[known]] = known
        if grow:
            new = np.flatnonzero(lut < 0)
            if len(new):
                lut[new] = np.arange(self.n, self.n + len(new))
                added = local.take(pa.array(new))
                self.values = (
                    added if self.values is None else pa.concat_arrays([self.values, added])
                )
                self.n += len(new)
        return lut[idx].astype(np.int32)

    def values_of(self, codes: np.ndarray) -> pa.Array:
        """The raw values (numeric: the bucket labels of
        :func:`~embsearch.data.vocab.bucket_labels`) of ``codes``."""
        if self.numeric:
            return bucket_labels(codes)
        if self.values is None:
            return pa.array([], pa.string())
        if self.fixed8:
            return fixed8_strings(self.values.to_numpy()[codes])
        return self.values.take(pa.array(codes, pa.int64()))


def fixed8_keys(col: pa.ChunkedArray | pa.Array) -> np.ndarray | None:
    """int64 keys of a string column whose values all have 8 bytes or are empty, else ``None``.

    Such columns (Criteo's and Avazu's hex ids) are common and large; read as one int64,
    8 bytes map to values one-to-one, and hashing int64 is about twice as fast as hashing
    strings. An empty string gets key -1 (eight 0xFF bytes), which valid UTF-8 never holds.
    """
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if not pa.types.is_string(arr.type) or arr.null_count or len(arr) == 0:
        return None
    n = len(arr)
    off = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4)
    lens = np.diff(off)
    full = lens == 8
    n_full = int(np.count_nonzero(full))
    if n_full + int(np.count_nonzero(lens == 0)) != n:
        return None
    if n_full == 0:
        return np.full(n, -1, dtype=np.int64)
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[off[0] : off[-1]]
    vals = np.frombuffer(data.tobytes() if data.ctypes.data % 8 else data, dtype=np.int64)
    if n_full == n:
        return vals
    out = np.full(n, -1, dtype=np.int64)
    out[full] = vals
    return out


def fixed8_strings(keys: np.ndarray) -> pa.Array:
    """The strings behind :func:`fixed8_keys` keys (its inverse; key -1 is ``""``)."""
    keys = np.ascontiguousarray(keys, dtype=np.int64)
    raw = pa.Array.from_buffers(pa.binary(8), len(keys), [None, pa.py_buffer(keys)])
    raw = pc.if_else(pa.array(keys == -1), pa.scalar(b"", pa.binary()), raw.cast(pa.binary()))
    return raw.cast(pa.string())
