"""A hash table from ``int64`` keys to dense codes ``0..n-1`` given in insertion order,
vectorised in numpy (one job: the vocabulary that ``data prepare`` grows batch by batch).

Open addressing with linear probing in two flat arrays (``keys`` and ``codes``, ``-1``
marking an empty slot), at most half full; a key's first slot is the top bits of its
64-bit mix (MurmurHash3's ``fmix64`` finaliser). Each probe step is one numpy pass over
the keys still looking, so looking up or adding ``u`` keys costs ``O(u)``, whatever the
table holds: a record batch's distinct values are matched against the vocabulary without
touching the rest of it (issue 22 item 6: a per-batch probe of the whole vocabulary made
the vocabulary pass grow with rows x vocabulary).
"""

from __future__ import annotations

import numpy as np

_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)
_MIN_BITS = 10


class KeyTable:
    """``int64`` key -> code, codes ``0..n-1`` in the order keys were added (see module)."""

    def __init__(self) -> None:
        self._bits = _MIN_BITS
        self._keys = np.zeros(1 << self._bits, dtype=np.int64)
        self._codes = np.full(1 << self._bits, -1, dtype=np.int32)
        self.n = 0

    def find(self, keys: np.ndarray) -> np.ndarray:
        """``int32`` code of each key, ``-1`` where it is not in the table."""
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        out = np.full(len(keys), -1, dtype=np.int32)
        todo = np.arange(len(keys))
        slot = self._slots(keys)
        mask = len(self._codes) - 1
        while len(todo):
            code = self._codes[slot]
            used = code >= 0
            hit = used & (self._keys[slot] == keys[todo])
            out[todo[hit]] = code[hit]
            on = used & ~hit  # a slot held by another key: probe the next one
            todo, slot = todo[on], (slot[on] + 1) & mask
        return out

    def add(self, keys: np.ndarray) -> np.ndarray:
        """Give ``keys`` (distinct, none in the table yet) the next codes, in their order."""
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        codes = np.arange(self.n, self.n + len(keys), dtype=np.int32)
        if 2 * (self.n + len(keys)) > len(self._codes):
            self._grow(self.n + len(keys))
        self._place(keys, codes)
        self.n += len(keys)
        return codes

    def keys(self) -> np.ndarray:
        """Every key, in code order (read from the table: nothing else holds them)."""
        used = np.flatnonzero(self._codes >= 0)
        out = np.empty(self.n, dtype=np.int64)
        out[self._codes[used]] = self._keys[used]
        return out

    def _slots(self, keys: np.ndarray) -> np.ndarray:
        h = keys.view(np.uint64)
        h = h ^ (h >> _S33)
        h *= _M1
        h ^= h >> _S33
        h *= _M2
        h ^= h >> _S33
        return (h >> np.uint64(64 - self._bits)).astype(np.intp)

    def _place(self, keys: np.ndarray, codes: np.ndarray) -> None:
        """Store keys absent from the table: each takes the first empty slot from its own;
        keys that reach the same empty slot in one step leave one holder, the others probe
        on (whichever holds it, every key ends in a slot of its own)."""
        todo = np.arange(len(keys))
        slot = self._slots(keys)
        mask = len(self._codes) - 1
        while len(todo):
            free = np.flatnonzero(self._codes[slot] < 0)
            s, t = slot[free], todo[free]
            self._codes[s] = codes[t]
            won = self._codes[s] == codes[t]
            self._keys[s[won]] = keys[t[won]]
            on = np.ones(len(todo), dtype=bool)
            on[free[won]] = False
            todo, slot = todo[on], (slot[on] + 1) & mask

    def _grow(self, n: int) -> None:
        """Rebuild with at least ``2 n`` slots, every key keeping its code."""
        used = np.flatnonzero(self._codes >= 0)
        keys, codes = self._keys[used], self._codes[used]
        while (1 << self._bits) < 2 * n:
            self._bits += 1
        self._keys = np.zeros(1 << self._bits, dtype=np.int64)
        self._codes = np.full(1 << self._bits, -1, dtype=np.int32)
        self._place(keys, codes)
