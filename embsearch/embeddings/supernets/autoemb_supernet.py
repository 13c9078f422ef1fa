"""AutoEmb's supernet: Zhao et al., "AutoEmb: Automated Embedding Dimensionality Search in
Streaming Recommendations" (ICDM 2021), Sec. 2.2-2.3, in the batch setting.

Shared weights, not AutoEmb's separate per-dim tables: one rows x width table instead of
rows x sum(candidates) (1.9x smaller for 2..16), and candidate d is then exactly the
first-d slice the exported mixed-dim table keeps.

1. weight-sharing embeddings with per-(field, candidate) projection and batch norm, as in
   AutoDim (:class:`~.mixture.CandidateBranches`; AutoEmb's tanh after the batch norm is
   left out so that a chosen branch folds exactly into the exported table);
2. the controller: one small network per field (AutoEmb has one for users, one for
   items) fed by the id's popularity (``log(1 + training count)``, scaled to [0, 1]),
   giving per-id soft weights over the candidates (softmax, no Gumbel noise: AutoEmb's
   soft selection);
3. the embedding is the weighted sum of the branches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from embsearch.embeddings.supernets.mixture import Groups, MixedSupernet


class Controller(nn.Module):
    """Step 2's controllers, one per field (AutoEmb has one for users and one for items):
    ``logits[f] = a[f] * z + c[f] + MLP_f(z) / hidden`` with ``z`` the id's popularity.

    The linear part gives every field its own logits ``c[f]`` and popularity slope
    ``a[f]`` from the first step; the per-field ReLU MLP adds non-linear popularity
    effects, scaled by ``1 / hidden`` because Adam moves each hidden unit by about the
    learning rate. Every output starts at zero: the first weights are uniform.
    """

    def __init__(self, n_fields: int, hidden: int, n_out: int) -> None:
        super().__init__()
        self.slope = nn.Parameter(torch.zeros(n_fields, n_out))
        self.bias = nn.Parameter(torch.zeros(n_fields, n_out))
        self.w1 = nn.Parameter(torch.randn(n_fields, hidden))
        self.b1 = nn.Parameter(torch.randn(n_fields, hidden) * 0.5)
        self.w2 = nn.Parameter(torch.zeros(n_fields, hidden, n_out))
        self.scale = 1.0 / hidden

    def forward(self, z: torch.Tensor, fields: torch.Tensor) -> torch.Tensor:
        """Logits ``[..., K]`` for popularities ``z`` of ids of ``fields`` (same shape, int64)."""
        h = torch.relu(z.unsqueeze(-1) * self.w1[fields] + self.b1[fields])
        mlp = (h.unsqueeze(-2) @ self.w2[fields]).squeeze(-2)
        return z.unsqueeze(-1) * self.slope[fields] + self.bias[fields] + mlp * self.scale

    def grid(self, z: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` for a grid of popularities ``z`` ``[F, S]``, row ``f`` fed to field
        ``f``'s controller, as logits ``[F, K, S]``: every field at once by one batched
        matmul, no parameter gathered per slot. Candidates run along dim 1, not last: a
        softmax over a short last dim is slow on CPU."""
        z = z.unsqueeze(1)
        h = torch.relu(torch.addcmul(self.b1.unsqueeze(2), self.w1.unsqueeze(2), z))
        linear = torch.addcmul(self.bias.unsqueeze(2), self.slope.unsqueeze(2), z)
        return torch.baddbmm(linear, self.w2.transpose(1, 2), h, alpha=self.scale)


class AutoEmbSupernet(MixedSupernet):
    """AutoEmb's embedding supernet; the controllers' weights are its architecture parameters."""

    # most (padded) popularity slots laid out as a grid (see __init__): at 40k slots over
    # 39 fields the grid still ran at 0.75x the time of the batch's own slots, at 160k 1.7x
    grid_slots = 32768

    def __init__(
        self,
        groups: Groups,
        candidates: Sequence[int],
        width: int,
        counts: Sequence[np.ndarray],
        hidden: int = 32,
    ) -> None:
        super().__init__(groups, candidates, width)
        logc = [np.log1p(np.asarray(c, dtype=np.float64)) for c in counts]
        top = max(float(c.max()) for c in logc) if logc else 1.0
        # ids of a field with equal training counts share their controller output: every
        # row maps to one (field, count) "popularity slot". When that fits, the slots form
        # a [fields, most slots of a field] grid (rows padded at the end) and each step runs
        # the controller on all of them, one batched matmul; else they are listed field
        # after field and each step runs it on the distinct slots of the batch
        values, inverses = zip(*(np.unique(c, return_inverse=True) for c in logc))
        per_field = max(len(v) for v in values)
        self.grid = len(values) * per_field <= self.grid_slots
        starts = np.cumsum([0, *(per_field if self.grid else len(v) for v in values)])
        popularity = np.zeros(int(starts[-1]))
        for f, v in enumerate(values):
            popularity[starts[f] : starts[f] + len(v)] = v / max(top, 1e-9)
        slot_of_row = np.concatenate(
            [inv.reshape(-1) + starts[f] for f, inv in enumerate(inverses)]
        )
        slot_field = np.repeat(np.arange(len(values)), np.diff(starts))
        if self.grid:
            popularity = popularity.reshape(len(values), per_field)
        self.register_buffer(
            "row_pop_slot", torch.as_tensor(slot_of_row, dtype=torch.long), persistent=False
        )
        self.register_buffer(
            "slot_field", torch.as_tensor(slot_field, dtype=torch.long), persistent=False
        )
        self.register_buffer(
            "slot_popularity", torch.as_tensor(popularity, dtype=torch.float32), persistent=False
        )
        self.counts = [np.asarray(c, dtype=np.float64) for c in counts]
        self.controller = Controller(self.table.num_fields, hidden, len(self.candidates))

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.controller.parameters())

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith("controller.")]

    def slot_weights(self) -> torch.Tensor:
        """Step 2: softmax of the controller's logits for every popularity slot (grid
        padding included), ``[slots, K]``, indexed by ``row_pop_slot``."""
        if not self.grid:
            logits = self.controller(self.slot_popularity, self.slot_field)
            return torch.softmax(logits, dim=-1)
        weights = torch.softmax(self.controller.grid(self.slot_popularity), dim=1)
        return weights.transpose(1, 2).reshape(-1, weights.shape[1])

    def row_weights(self, rows: torch.Tensor) -> torch.Tensor:
        """Step 2's weights for rows ``rows`` of the joint table, ``[len(rows), K]``: the
        controller runs once per popularity slot (on the grid: on all of them; a batch
        meets most, and finding those it meets costs more than the rest), and each row
        picks its slot's (``index_select``: its backward is one ``index_add``)."""
        slots = self.row_pop_slot.index_select(0, rows)
        if self.grid:
            return self.slot_weights().index_select(0, slots)
        uniq, inverse = torch.unique(slots, return_inverse=True)
        logits = self.controller(self.slot_popularity[uniq], self.slot_field[uniq])
        return torch.softmax(logits, dim=-1).index_select(0, inverse)

    @torch.no_grad()
    def group_weights(self) -> list[np.ndarray]:
        """Each group's mean controller weights over its training occurrences, ``[groups of f, K]``.

        Ids of a group with no training occurrence (all counts zero) count equally.
        """
        out = []
        slot_weights = self.slot_weights().float().cpu().numpy().astype(np.float64)
        row_slot = self.row_pop_slot.cpu().numpy()
        for f, gs in enumerate(self.table.groups):
            start = int(self.table.offsets[f])
            w = slot_weights[row_slot[start : start + self.table.rows[f]]]
            rows = []
            for a, b in gs:
                c = self.counts[f][a:b]
                c = c if c.sum() > 0 else np.ones_like(c)
                rows.append((c[:, None] * w[a:b]).sum(0) / c.sum())
            out.append(np.asarray(rows))
        return out
