"""AutoDim's supernet: Zhao et al., "AutoDim: Field-aware Embedding Dimension Search in
Recommender Systems" (WWW 2021), Sec. 2.1-2.2.

1. weight-sharing embeddings: one width-wide vector per id; candidate ``d_k`` uses its
   first ``d_k`` columns (:class:`~.mixture.CandidateBranches`);
2. a per-candidate linear projection to the width and a per-candidate batch norm;
3. a weighted sum of the branches with Gumbel-softmax weights over learnable per-field
   architecture logits (per (field, group) in the ``feature_dims`` space):
   ``p_k = softmax((log alpha_k + g_k) / tau)``, ``g_k ~ Gumbel(0, 1)`` drawn once per
   (field, group) and batch (so a field's branches fold into one projection per batch);
   in eval mode the plain ``alpha = softmax(logits)`` (no noise).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from embsearch.embeddings.supernets.mixture import Groups, MixedSupernet


class AutoDimSupernet(MixedSupernet):
    """AutoDim's embedding supernet; ``arch_logits[f, g, k]`` are its architecture parameters."""

    def __init__(
        self, groups: Groups, candidates: Sequence[int], width: int, temperature: float = 1.0
    ) -> None:
        super().__init__(groups, candidates, width)
        self.arch_logits = nn.Parameter(
            torch.zeros(self.table.num_fields, self.table.max_groups, len(self.candidates))
        )
        self.temperature = float(temperature)

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.arch_logits]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if n != "arch_logits"]

    def _weights(self) -> torch.Tensor:
        """Step 3: ``[F, G, K]``, one Gumbel draw per (field, group) and call (in training)."""
        logits = self.arch_logits
        if self.training:
            u = torch.rand_like(logits).clamp_(1e-10, 1.0 - 1e-7)
            return torch.softmax(
                (torch.log_softmax(logits, dim=-1) - torch.log(-torch.log(u))) / self.temperature,
                dim=-1,
            )
        return torch.softmax(logits, dim=-1)

    def field_weights(self) -> torch.Tensor | None:
        """``[F, K]`` when every field has one group (one draw per field and batch)."""
        return self._weights()[:, 0] if self.table.max_groups == 1 else None

    def row_weights(self, rows: torch.Tensor) -> torch.Tensor:
        """Each row's (field, group) weights, ``[len(rows), K]`` (one draw per call)."""
        w = self._weights()
        return w.reshape(-1, w.shape[-1]).index_select(0, self.table.row_slot.index_select(0, rows))

    @torch.no_grad()
    def probabilities(self) -> list[np.ndarray]:
        """``alpha = softmax(logits)`` per field, ``[groups of f, K]``."""
        p = torch.softmax(self.arch_logits.float(), dim=-1).cpu().numpy()
        return [p[f, :n] for f, n in enumerate(self.table.n_groups)]
