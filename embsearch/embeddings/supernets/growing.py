"""ESAPN's model: one max-width table whose every id (row) has its own current dim, the
leading columns it keeps (``pad`` semantics), which a controller only ever raises.

Liu et al. (SIGIR 2020) keep one table per candidate size and a learned transform from
each size to the next, copying an id's transformed embedding into the larger table when it
grows. Here the candidates share one table (weight sharing across widths, as the other
masked supernets): an id of dim ``d`` uses the first ``d`` columns of its row, so growing
it keeps what it has learned and adds columns; its rows then equal a
:class:`~embsearch.embeddings.mixed_dim.MixedDimEmbedding` block with ``projection='pad'``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from embsearch.embeddings.supernets.masked import MaskedSupernet


class GrowingSupernet(MaskedSupernet):
    """``x: int64 [batch, fields] -> [batch, fields, width]``, each id masked to its row's
    dim in :attr:`row_dims` (``int64 [total rows]``, every row starting at ``start_dim``).
    :meth:`grow` raises dims; nothing lowers them."""

    def __init__(
        self,
        width: int,
        candidates: Sequence[int],
        groups: Sequence[Sequence[tuple[int, int]]],
        names: Sequence[str],
        start_dim: int,
        seed: int = 0,
    ) -> None:
        super().__init__(width, candidates, groups, names, seed=seed)
        self.sample_in_training = False
        rows = int(self.table.shape[0])
        with torch.no_grad():  # the columns an id grows into start at zero: growing changes
            self.table[:, int(start_dim) :] = 0.0  # nothing until they are trained
        self.register_buffer(
            "row_dims", torch.full((rows,), int(start_dim), dtype=torch.long), persistent=False
        )
        # a dim per id of the next forward's batch, ``[batch, fields]``, in place of the rows'
        # (a controller's probe of other sizes); None: the rows' own
        self.example_dims: torch.Tensor | None = None
        # while ``keep_lookup``, each forward keeps the rows it read (full width, before the
        # mask) in ``last_lookup``; ``example_lookup``, with ``example_dims``: those rows in
        # place of a read of the table (a probe of the batch the last forward read, before
        # the table changed: ESAPN's, one gather of the batch's rows fewer)
        self.keep_lookup = False
        self.last_lookup: torch.Tensor | None = None
        self.example_lookup: torch.Tensor | None = None
        # row d: the column mask of dim d (a lookup: the broadcast compare of
        # MaskedSupernet.column_mask took 10x as long on a CPU batch; the same 0/1 values)
        cols = torch.arange(self.width)
        masks = (cols < torch.arange(self.width + 1)[:, None]).to(self.table.dtype)
        self.register_buffer("_dim_masks", masks, persistent=False)

    def grow(self, rows: torch.Tensor, dims: torch.Tensor) -> None:
        """Set the dims of table rows ``rows`` to ``dims`` where that is larger."""
        self.row_dims[rows] = torch.maximum(self.row_dims[rows], dims.to(self.row_dims.device))

    def column_mask(self, dims: torch.Tensor) -> torch.Tensor:
        """``[..., width]`` mask keeping the first ``dims[...]`` columns (dims at most the
        width)."""
        masks = self._dim_masks.to(self.table.dtype)
        return masks.index_select(0, dims.reshape(-1)).view(*dims.shape, self.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = self.example_dims
        if dims is not None and self.example_lookup is not None:
            return self.example_lookup * self.column_mask(dims)
        rows = self.rows_of(x).reshape(-1)
        e = self.table.index_select(0, rows).view(*x.shape, self.width)
        if self.keep_lookup:
            self.last_lookup = e
        if dims is None:
            dims = self.row_dims.index_select(0, rows).view(x.shape)
        return e * self.column_mask(dims)
