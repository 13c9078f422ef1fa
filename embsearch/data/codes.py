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
another value, its vocabulary a :class:`~embsearch.data.keytable.KeyTable`, so a batch
costs its rows and its distinct values, not the vocabulary; any other column's batch
values are probed with the whole vocabulary (Arrow's ``index_in``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from embsearch.data.buckets import bucket_codes
from embsearch.data.keytable import KeyTable
from embsearch.data.vocab import bucket_labels


class ColumnCodes:
    """First-appearance codes of one column's values, grown batch by batch (see module)."""

    def __init__(self, numeric: bool) -> None:
        self.numeric = numeric
        self.fixed8 = True  # values held as fixed8_keys int64 (until a batch is not fixed8)
        self.keys = KeyTable()  # fixed8 key -> code
        self.strings: list[pa.Array] = []  # values in code order, once not fixed8
        self.n = 0  # codes given so far (numeric: the largest bucket + 1)
        self._freq = np.zeros(0, dtype=np.int64)  # rows of each code in the grown batches

    @property
    def freq(self) -> np.ndarray:
        """How many rows of the batches encoded with ``grow`` hold each code (the train
        file's counts), ``int64 [n]``."""
        return self._freq[: self.n]

    def _count(self, codes: np.ndarray, counts: np.ndarray) -> None:
        """Add ``counts`` to the rows of ``codes`` (distinct); the counts' array grows by
        doubling, so a batch costs its distinct values, not the vocabulary."""
        if len(self._freq) < self.n:
            grown = np.zeros(max(self.n, 2 * len(self._freq)), dtype=np.int64)
            grown[: len(self._freq)] = self._freq
            self._freq = grown
        self._freq[codes] += counts

    def encode(self, col: pa.ChunkedArray | pa.Array, grow: bool = True) -> np.ndarray:
        """``int32`` codes of a batch. ``grow``: values not seen yet get the next codes, in
        order of first appearance, and every code's rows are counted (:attr:`freq`); else
        (the validation and test files, read after the train file) they get ``-1``
        (numeric: buckets ``>= n`` too), later mapped to OOV."""
        if self.numeric:
            codes = bucket_codes(col)
            if grow and len(codes):
                self.n = max(self.n, int(codes.max()) + 1)
                counts = np.bincount(codes)
                self._count(np.arange(len(counts)), counts)
            elif not grow:
                codes[codes >= self.n] = -1
            return codes.astype(np.int32)
        keys = fixed8_keys(col) if self.fixed8 else None
        if keys is None and self.fixed8:
            self.fixed8 = False
            if self.n:  # the same values, as the strings they were read from
                self.strings = [fixed8_strings(self.keys.keys())]
            self.keys = KeyTable()
        if keys is not None:
            return self._encode_keys(keys, grow)
        return self._encode_strings(col, grow)

    def _encode_keys(self, keys: np.ndarray, grow: bool) -> np.ndarray:
        """Codes of fixed8 keys: the batch's distinct keys (Arrow's hash, in order of first
        appearance) looked up in, and added to, the vocabulary's :class:`KeyTable`."""
        enc = pc.dictionary_encode(pa.array(keys))
        local = enc.dictionary.to_numpy()
        idx = enc.indices.to_numpy()
        lut = self.keys.find(local)
        if grow:
            new = np.flatnonzero(lut < 0)
            if len(new):
                lut[new] = self.keys.add(local[new])
                self.n = self.keys.n
            self._count(lut, np.bincount(idx, minlength=len(local)))
        return lut[idx]

    def _encode_strings(self, col: pa.ChunkedArray | pa.Array, grow: bool) -> np.ndarray:
        """Codes of any other column: the batch's distinct values (nulls a value of their
        own) probed with the vocabulary's values."""
        enc = pc.dictionary_encode(col, null_encoding="encode")
        chunks = enc.chunks if isinstance(enc, pa.ChunkedArray) else [enc]
        if not chunks:
            return np.zeros(0, dtype=np.int32)
        local = chunks[-1].dictionary  # this batch's distinct values, in first-appearance order
        idx = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in chunks])
        lut = np.full(len(local), -1, dtype=np.int32)
        if self.n:
            values = pa.chunked_array(self.strings)
            at = pc.fill_null(pc.index_in(values, value_set=local, skip_nulls=False), -1)
            at = np.asarray(at.to_numpy(), dtype=np.int64)
            known = np.flatnonzero(at >= 0)
            lut[at[known]] = known
        if grow:
            new = np.flatnonzero(lut < 0)
            if len(new):
                lut[new] = np.arange(self.n, self.n + len(new))
                self.strings.append(local.take(pa.array(new)))
                self.n += len(new)
            self._count(lut, np.bincount(idx, minlength=len(local)))
        return lut[idx]

    def values_of(self, codes: np.ndarray) -> pa.Array:
        """The raw values (numeric: the bucket labels of
        :func:`~embsearch.data.vocab.bucket_labels`) of ``codes``."""
        if self.numeric:
            return bucket_labels(codes)
        if self.fixed8:
            return fixed8_strings(self.keys.keys()[codes])
        if not self.strings:
            return pa.array([], pa.string())
        if len(self.strings) > 1:
            self.strings = [pa.concat_arrays(self.strings)]
        return self.strings[0].take(pa.array(codes, pa.int64()))


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
