"""A split fed to the trainer in chunks from its memory-mapped arrays, for data that does not
fit in memory (issue 22 item 6).

:class:`ChunkedSplit` has :class:`~embsearch.data.batches.DeviceSplit`'s interface and
yields the same batches: a shuffled epoch draws the same ``torch.randperm`` from the same
generator and cuts it into the same batches, so training gives the same model under a seed.
Only the rows are fetched differently: ``chunk_rows`` of them at a time (whole batches),
gathered from the prepared ``int32`` arrays in file order (sorted, for locality) and put
back in the permutation's order, the mapped pages released every :data:`GATHER_ROWS` rows
(:func:`~embsearch.data.dataset.release_pages`: resident memory does not grow with the
file either); on CUDA the chunk goes to pinned host memory and is copied
with ``non_blocking``, as ``int32`` (half the bytes), and widened on the device. The next
chunk is gathered by a worker thread while the current one trains. Resident: the chunk
being trained and the one being gathered, the permutation (4 bytes a row, as int32) and,
for a split that is validated, its labels (4 bytes a row); never the split's ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from embsearch.data.dataset import Split, release_pages

#: rows per chunk (rounded down to whole batches): about 20 MB of Criteo ids as int32
CHUNK_ROWS = 1 << 17
#: rows read from the memory maps between two releases of their pages: each row read maps
#: up to 64 KiB around it (the kernel's fault-around), so at most about 256 MiB stay mapped
GATHER_ROWS = 1 << 12


class ChunkedSplit:
    """A split's rows fetched chunk by chunk from its (memory-mapped) arrays; see module."""

    def __init__(
        self, split: Split, device: torch.device | str = "cpu", chunk_rows: int = CHUNK_ROWS
    ) -> None:
        self.split = split
        self.device = torch.device(device)
        self.chunk_rows = max(1, int(chunk_rows))
        self._y: torch.Tensor | None = None
        self._x: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.split)

    @property
    def y(self) -> torch.Tensor:
        """Every label, on the device (read once: 4 bytes a row; metrics need them all)."""
        if self._y is None:
            self._y = torch.from_numpy(np.array(self.split.y, dtype=np.float32)).to(self.device)
        return self._y

    @property
    def x(self) -> torch.Tensor:
        """Every row's ids as one int64 tensor on the device, as ``DeviceSplit.x``: read whole
        on first use, for the callers that need a split at once (an inherited-weights
        evaluator's rows); training and metrics never ask for it."""
        if self._x is None:
            self._x = torch.from_numpy(np.array(self.split.x, dtype=np.int64)).to(self.device)
        return self._x

    def batches(
        self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)`` batches, those of ``DeviceSplit.batches`` (see module)."""
        n = len(self)
        # int32 (4 bytes a row) draws the same permutation as DeviceSplit's int64 one
        # (tests/test_bigdata.py checks the batches and the model agree)
        dtype = torch.int32 if n < 2**31 else torch.int64
        perm = torch.randperm(n, generator=generator, dtype=dtype).numpy() if shuffle else None
        step = max(1, self.chunk_rows // batch_size) * batch_size
        starts = list(range(0, n, step))
        if not starts:
            return

        def rows(start: int) -> np.ndarray | slice:
            stop = min(start + step, n)
            return slice(start, stop) if perm is None else perm[start:stop]

        with ThreadPoolExecutor(max_workers=1) as pool:
            ahead = pool.submit(self._gather, rows(starts[0]))
            for k in range(len(starts)):
                x, y = ahead.result()
                if k + 1 < len(starts):
                    ahead = pool.submit(self._gather, rows(starts[k + 1]))
                x, y = self._to_device(x, y)
                for b in range(0, len(y), batch_size):
                    yield x[b : b + batch_size], y[b : b + batch_size]

    def _gather(self, idx: np.ndarray | slice) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows ``idx`` (a slice, or row numbers in the order wanted) as host tensors
        (int32 ids, float32 labels; pinned when the device is CUDA)."""
        if isinstance(idx, slice):
            x = np.array(self.split.x[idx], dtype=np.int32)
            y = np.array(self.split.y[idx], dtype=np.float32)
            release_pages(self.split.x)
            release_pages(self.split.y)
        else:
            order = np.argsort(idx, kind="stable")
            where = idx[order]  # file order: nearby rows share pages
            x = np.empty((len(idx), self.split.x.shape[1]), dtype=np.int32)
            y = np.empty(len(idx), dtype=np.float32)
            for a in range(0, len(idx), GATHER_ROWS):
                part = order[a : a + GATHER_ROWS]
                x[part] = self.split.x[where[a : a + GATHER_ROWS]]
                y[part] = self.split.y[where[a : a + GATHER_ROWS]]
                release_pages(self.split.x)
                release_pages(self.split.y)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        if self.device.type == "cuda":
            xt, yt = xt.pin_memory(), yt.pin_memory()
        return xt, yt

    def _to_device(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A gathered chunk on the device, ids widened to int64 (lookups want them)."""
        if self.device.type == "cuda":
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
        return x.long(), y
