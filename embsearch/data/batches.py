"""Batches as slices of a permutation over contiguous arrays: no per-sample Python.

The arrays are moved to the training device once (when they fit: else
:class:`~embsearch.data.chunks.ChunkedSplit` feeds the same batches in chunks) and each
batch is one ``index_select`` on the device.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from embsearch.data.dataset import Split


class DeviceSplit:
    """A split's ids and labels as tensors on ``device`` (``x`` int64 for lookups)."""

    def __init__(self, split: Split, device: torch.device | str = "cpu") -> None:
        # One copy each (memory-mapped arrays are read-only; lookups want int64 anyway).
        self.x = torch.from_numpy(np.array(split.x, dtype=np.int64)).to(device)
        self.y = torch.from_numpy(np.array(split.y, dtype=np.float32)).to(device)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def batches(
        self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)`` batches; shuffled batches are slices of one random permutation."""
        n = len(self)
        if shuffle:
            perm = torch.randperm(n, generator=generator).to(self.x.device)
            for start in range(0, n, batch_size):
                idx = perm[start : start + batch_size]
                yield self.x.index_select(0, idx), self.y.index_select(0, idx)
        else:
            for start in range(0, n, batch_size):
                yield self.x[start : start + batch_size], self.y[start : start + batch_size]
