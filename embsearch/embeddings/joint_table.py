"""The one joint max-width table every supernet trains: all fields' rows in one
``[sum of rows, width]`` parameter (rows offset per field), with each id's frequency group.

DARTS-style supernets (``supernets/``) mix candidate branches over it; masked supernets
(``supernets/``) keep the first ``d`` columns of each (field, group) block of it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from embsearch.errors import ConfigError

Groups = Sequence[Sequence[tuple[int, int]]]


class GroupedTable(nn.Module):
    """Every field's ids in one ``[sum of rows, width]`` table, plus each id's frequency group.

    ``forward(x)`` maps ``int64 [batch, fields]`` to ``[batch, fields, width]``;
    :meth:`group_index` gives the group of every id (contiguous id ranges, as in
    :class:`~embsearch.embeddings.mixed_dim.MixedDimEmbedding`).
    """

    def __init__(self, groups: Groups, width: int, init_std: float = 0.01) -> None:
        super().__init__()
        if not groups or any(not g for g in groups):
            raise ConfigError(
                "a supernet needs at least one field, each with at least one frequency group"
            )
        self.width = int(width)
        self.n_groups = [len(g) for g in groups]
        self.max_groups = max(self.n_groups)
        rows = [int(g[-1][1]) for g in groups]
        offsets = torch.tensor([0, *rows[:-1]], dtype=torch.long).cumsum(0)
        valid = torch.zeros(len(groups), self.max_groups, dtype=torch.bool)
        for f, n in enumerate(self.n_groups):
            valid[f, :n] = True
        # slot of every row of the joint table: f * max_groups + (its group), so that a
        # per-(field, group) value reaches every id by one gather (``per_group``)
        slot = torch.empty(sum(rows), dtype=torch.long)
        for f, gs in enumerate(groups):
            for g, (start, stop) in enumerate(gs):
                slot[int(offsets[f]) + int(start) : int(offsets[f]) + int(stop)] = (
                    f * self.max_groups + g
                )
        self.register_buffer("offsets", offsets, persistent=False)
        self.register_buffer("valid", valid, persistent=False)
        self.register_buffer("row_slot", slot, persistent=False)
        self.groups = [[(int(a), int(b)) for a, b in gs] for gs in groups]
        self.rows = rows
        self.weight = nn.Parameter(torch.empty(sum(rows), self.width))
        nn.init.normal_(self.weight, std=init_std)

    @property
    def num_fields(self) -> int:
        return len(self.rows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # index_select: on CPU its backward (one index_add) beats embedding's and indexing's
        rows = (x + self.offsets).reshape(-1)
        return self.weight.index_select(0, rows).view(*x.shape, self.width)

    def group_index(self, x: torch.Tensor) -> torch.Tensor:
        """Frequency group of every id, ``int64 [batch, fields]`` (from its row's slot)."""
        return self.slots(x) % self.max_groups

    def field_rows(self, f: int) -> torch.Tensor:
        """The rows of field ``f`` (a view)."""
        start = int(self.offsets[f])
        return self.weight[start : start + self.rows[f]]

    def distinct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The batch's distinct rows of the joint table (``id + offset``), sorted, so grouped
        by field: ``(rows [U], inverse [x.numel()], counts [U])``, ``rows[inverse]`` being
        the rows of ``x`` in order, as ``torch.unique(..., return_inverse=True,
        return_counts=True)`` gives them. A table of at most twice as many rows as the
        batch has ids counts them (one ``bincount``) rather than sorting them: a few
        times faster on CPU."""
        joint = (x + self.offsets).reshape(-1)
        if self.weight.shape[0] > 2 * joint.numel():
            return torch.unique(joint, return_inverse=True, return_counts=True)
        counts = torch.bincount(joint, minlength=self.weight.shape[0])
        present = counts > 0
        rows = present.nonzero().squeeze(1)
        inverse = (present.cumsum(0) - 1).index_select(0, joint)
        return rows, inverse, counts.index_select(0, rows)

    def slots(self, x: torch.Tensor) -> torch.Tensor:
        """``f * max_groups + group`` of every id of ``x``, ``int64 [batch, fields]``."""
        return self.row_slot.index_select(0, (x + self.offsets).reshape(-1)).view(x.shape)

    def per_group(self, values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Pick ``values[f, group of x[b, f]]`` for every id: ``[F, G, ...] -> [B, F, ...]``.

        One gather through the rows' slots (``index_select``: its backward is one
        ``index_add``, far cheaper than advanced indexing's deterministic scatter)."""
        if self.max_groups == 1:
            return values[:, 0].unsqueeze(0).expand(x.shape[0], *values[:, 0].shape)
        flat = values.reshape(self.num_fields * self.max_groups, -1)
        picked = flat.index_select(0, self.slots(x).reshape(-1))
        return picked.reshape(*x.shape, *values.shape[2:])
