"""AutoDim's supernet: Zhao et al., "AutoDim: Field-aware Embedding Dimension Search in
Recommender Systems" (WWW 2021), Sec. 2.1-2.2.

1. weight-sharing embeddings: one width-wide vector per id; candidate ``d_k`` uses its
   first ``d_k`` columns (:class:`~.mixture.CandidateBranches`);
2. a per-candidate linear projection to the width and a per-candidate batch norm;
3. a weighted sum of the branches with Gumbel-softmax weights over learnable per-field
   architecture logits (per (field, group) in the ``feature_dims`` space):
   ``p_k = softmax((log alpha_k + g_k) / tau)``, ``g_k ~ Gumbel(0, 1)``. The paper writes
   this mixture for one input sample, each with its own draw (the Gumbel-softmax estimator
   of Jang et al. 2017): ``draw='sample'`` (the default) draws ``g`` per (row, field), so
   an architecture step's gradient averages its batch's draws. ``draw='batch'`` draws once
   per (field, group) and batch (a field's branches fold into one projection per batch,
   cheaper): the gradient then rests on one draw per step, and over a short search the
   logits wandered with it (see :mod:`embsearch.controllers.autodim`). In eval mode the
   plain ``alpha = softmax(logits)`` (no noise).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from embsearch.embeddings.supernets.mixture import Groups, MixedSupernet
from embsearch.errors import ConfigError

# how the Gumbel noise is drawn in training: per (row, field) or per (field, group) and batch
DRAWS = ("sample", "batch")


class AutoDimSupernet(MixedSupernet):
    """AutoDim's embedding supernet; ``arch_logits[f, g, k]`` are its architecture parameters."""

    def __init__(
        self,
        groups: Groups,
        candidates: Sequence[int],
        width: int,
        temperature: float = 1.0,
        draw: str = "sample",
    ) -> None:
        super().__init__(groups, candidates, width)
        if draw not in DRAWS:
            raise ConfigError(f"draw must be one of {', '.join(DRAWS)}, not {draw!r}")
        self.arch_logits = nn.Parameter(
            torch.zeros(self.table.num_fields, self.table.max_groups, len(self.candidates))
        )
        self.temperature = float(temperature)
        self.draw = draw

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.arch_logits]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if n != "arch_logits"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Step 3 with ``draw='sample'`` in training: every row mixed with its own draws;
        otherwise the mixture of :class:`MixedSupernet`."""
        if self.training and self.draw == "sample" and not self.fixed.numel():
            return self._mix_rows(x, self.sample_weights(x))
        return super().forward(x)

    def _noisy(self, log_alpha: torch.Tensor) -> torch.Tensor:
        """``(log alpha + g) / tau``, a fresh ``g ~ Gumbel(0, 1)`` for every entry."""
        u = torch.rand_like(log_alpha).clamp_(1e-10, 1.0 - 1e-7)
        return (log_alpha - torch.log(-torch.log(u))) / self.temperature

    def sample_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Step 3, ``draw='sample'``: ``[batch, fields, K]``, one Gumbel draw per (row, field)
        over the logits of the id's (field, group)."""
        k = len(self.candidates)
        log_alpha = torch.log_softmax(self.arch_logits, dim=-1)
        if self.table.max_groups == 1:  # one (field, group) per field: broadcast over rows
            log_alpha = log_alpha.reshape(1, -1, k).expand(x.shape[0], -1, -1)
        else:
            slots = self.table.slots(x).reshape(-1)
            log_alpha = log_alpha.reshape(-1, k).index_select(0, slots).view(*x.shape, k)
        z = self._noisy(log_alpha)
        z = (z - z.amax(dim=-1, keepdim=True)).exp()  # the softmax, faster over a short last dim
        return z / z.sum(dim=-1, keepdim=True)

    def _weights(self) -> torch.Tensor:
        """Step 3: ``[F, G, K]``, one Gumbel draw per (field, group) and call in training
        (``draw='batch'``)."""
        logits = self.arch_logits
        if self.training:
            return torch.softmax(self._noisy(torch.log_softmax(logits, dim=-1)), dim=-1)
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
