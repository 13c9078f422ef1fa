"""OptEmbed's supernet: Lyu et al., "OptEmbed: Learning Optimal Embedding Table for
Click-through Rate Prediction" (CIKM 2022), Sec. "Supernet training".

Two things are learned at once in one max-width table:

1. *Row pruning* (OptEmbed-E): each field ``f`` has a learnable threshold ``t_f``; an id's
   row is kept iff ``||e||_1 > t_f``. The unit step is trained with a straight-through
   estimator (forward: the hard mask; backward: the derivative of ``||e||_1 - t_f``), and
   the paper's regulariser ``sum_f exp(-t_f)`` (weighted by ``alpha``) pushes thresholds up
   so that rows the loss does not defend are pruned.
2. *Uniform dimension sampling* (OptEmbed-D): every training step draws one dim per field
   uniformly from the candidates and keeps the first ``d`` columns (the base class), so all
   candidate architectures are trained equally and can later be scored with inherited
   weights.

Storage note: embsearch's ``MixedDimEmbedding`` stores every row, so pruned rows are not
removed from the exported table yet; the controller records each field's pruned-row
fraction in ``plan.extra`` (a row-pruned table layout comes in a later issue).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from embsearch.embeddings.supernets_evo._masked import MaskedSupernetEmbedding


class OptEmbedEmbedding(MaskedSupernetEmbedding):
    """Max-width table with per-field learnable pruning thresholds and sampled dim masks."""

    def __init__(
        self,
        width: int,
        candidates: Sequence[int],
        groups: Sequence[Sequence[tuple[int, int]]],
        names: Sequence[str],
        seed: int = 0,
        threshold_init: float = 0.0,
    ) -> None:
        super().__init__(width, candidates, groups, names, seed)
        self.threshold = nn.Parameter(torch.full((len(self.groups),), float(threshold_init)))

    def transform_rows(self, e: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Step 1: zero rows whose L1 norm does not exceed their field's threshold."""
        # a lookup's rows are [batch, fields] with column f in field f: broadcast, no gather
        t = self.threshold if rows.dim() == 2 else self.threshold[self.field_of_row[rows]]
        z = e.abs().sum(-1) - t
        hard = (z > 0).to(e.dtype)
        mask = hard + (z - z.detach()) if torch.is_grad_enabled() else hard  # straight-through
        return e * mask.unsqueeze(-1)

    def threshold_loss(self) -> torch.Tensor:
        """The paper's threshold regulariser ``sum_f exp(-t_f)``."""
        return torch.exp(-self.threshold).sum()

    @torch.no_grad()
    def pruned_fraction(self) -> list[float]:
        """Per field, the fraction of its rows the thresholds prune."""
        norm = self.table.abs().sum(-1)
        pruned = (norm <= self.threshold[self.field_of_row]).float()
        counts = torch.bincount(self.field_of_row, minlength=len(self.groups)).clamp(min=1)
        return (
            torch.bincount(self.field_of_row, weights=pruned, minlength=len(self.groups)) / counts
        ).tolist()
