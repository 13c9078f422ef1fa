"""AutoEmb's supernet: Zhao et al., "AutoEmb: Automated Embedding Dimensionality Search in
Streaming Recommendations" (ICDM 2021), Sec. 2.2-2.3, in the batch setting.

Shared weights, not AutoEmb's separate per-dim tables: one rows x width table instead of
rows x sum(candidates) (1.9x smaller for 2..16), and candidate d is then exactly the
first-d slice the exported mixed-dim table keeps.

1. weight-sharing embeddings with per-(field, candidate) projection and batch norm, as in
   AutoDim (:class:`~._shared.CandidateBranches`; AutoEmb's tanh after the batch norm is
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

from embsearch.embeddings.supernets._shared import Groups, MixedSupernet


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

    def forward(self, z: torch.Tensor, field: int | None = None) -> torch.Tensor:
        """Logits ``[B, F, K]`` for popularities ``z [B, F]``, or ``[n, K]`` for ``z [n]`` of one ``field``."""

        def sel(t: torch.Tensor) -> torch.Tensor:
            return t if field is None else t[field]

        h = torch.relu(z.unsqueeze(-1) * sel(self.w1) + sel(self.b1))
        mlp = h @ self.w2[field] if field is not None else torch.einsum("bfh,fhk->bfk", h, self.w2)
        return z.unsqueeze(-1) * sel(self.slope) + sel(self.bias) + mlp * self.scale


class AutoEmbSupernet(MixedSupernet):
    """AutoEmb's embedding supernet; the controllers' weights are its architecture parameters."""

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
        popularity = torch.tensor(np.concatenate(logc) / max(top, 1e-9), dtype=torch.float32)
        self.register_buffer("popularity", popularity, persistent=False)
        self.counts = [np.asarray(c, dtype=np.float64) for c in counts]
        self.controller = Controller(self.table.num_fields, hidden, len(self.candidates))

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.controller.parameters())

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith("controller.")]

    def controller_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Step 2: controller logits of every id of ``x`` (``[batch, fields]``), ``[batch, fields, K]``."""
        pop = nn.functional.embedding(x + self.table.offsets, self.popularity.unsqueeze(-1))
        return self.controller(pop.squeeze(-1))

    def mix_weights(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.controller_logits(x), dim=-1)

    @torch.no_grad()
    def group_weights(self, chunk: int = 65536) -> list[np.ndarray]:
        """Each group's mean controller weights over its training occurrences, ``[groups of f, K]``.

        Ids of a group with no training occurrence (all counts zero) count equally.
        """
        out = []
        device = self.popularity.device
        for f, gs in enumerate(self.table.groups):
            parts = []
            for start in range(0, self.table.rows[f], chunk):
                ids = torch.arange(start, min(start + chunk, self.table.rows[f]), device=device)
                pop = self.popularity[ids + self.table.offsets[f]]
                parts.append(torch.softmax(self.controller(pop, f).float(), dim=-1).cpu().numpy())
            w = np.concatenate(parts).astype(np.float64)
            rows = []
            for a, b in gs:
                c = self.counts[f][a:b]
                c = c if c.sum() > 0 else np.ones_like(c)
                rows.append((c[:, None] * w[a:b]).sum(0) / c.sum())
            out.append(np.asarray(rows))
        return out
