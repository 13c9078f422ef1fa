"""DNIS's supernet: Cheng et al., "Differentiable Neural Input Search for Recommender
Systems" (arXiv:2006.04466, 2020), Sec. 3.

1. ids of a field are grouped by frequency (the ``feature_dims`` space); every id keeps a
   full width-wide embedding (zero padding is the structure: no projection);
2. the soft selection layer: a continuous mask ``m[f, g] in [0, 1]^width`` per (field,
   group) scales the embedding, ``e_hat = m[f, g(id)] * e``; the mask is learned (by the
   controller's DARTS-style steps, with an L1 sparsity penalty, :meth:`penalty`) and
   clipped back into [0, 1] after every step (:meth:`clip_`);
3. magnitude pruning of the masked weights ``m * e`` (they are not exactly zero after
   the search, so DNIS prunes them by magnitude): a group keeping ``d`` dims keeps the
   ``d`` columns of largest mean ``|m * e|`` over its ids (:meth:`importance`), and the
   value of dim ``d`` is the magnitude those columns keep over *all* the group's ids
   (:meth:`kept_mass`: ids x the sum of the ``d`` means). Pruning every weight of the
   table below one threshold keeps the most magnitude for its number of weights; this is
   that objective with whole columns per group, so a group of many ids counts as much
   as its weights (a per-id mean made the largest, rarest groups look cheap to starve:
   frappe's tail items got 1 dim at a 50% budget, -0.02 AUC against uniform).

The exported (``projection='pad'``) table keeps the FIRST ``d`` columns, so
:meth:`export` stores each block's kept columns largest-magnitude first; its output equals
the pruned supernet's with the width coordinates of each group reordered that way
(:meth:`kept_columns`), identical where the kept columns already lead. Retraining from
scratch, as the search runner does, is indifferent to that order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from embsearch.embeddings.joint_table import GroupedTable, Groups
from embsearch.embeddings.mixed_dim import MixedDimEmbedding
from embsearch.errors import ConfigError
from embsearch.plan import Plan


class DNISSupernet(nn.Module):
    """DNIS's masked embedding supernet; ``mask`` is its architecture parameter."""

    def __init__(self, groups: Groups, width: int, mask_init: float = 0.5) -> None:
        super().__init__()
        self.table = GroupedTable(groups, width)
        self.width = int(width)
        self.mask = nn.Parameter(
            torch.full((self.table.num_fields, self.table.max_groups, width), float(mask_init))
        )
        self.register_buffer("hard", torch.zeros(0), persistent=False)

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.mask]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [self.table.weight]

    def table_weights(self) -> list[nn.Parameter]:
        """The id-indexed table (the backbone's ``embedding_regularizer`` penalises it, not the mask)."""
        return [self.table.weight]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.hard if self.hard.numel() else self.mask
        return self.table(x) * self.table.per_group(m, x).to(self.table.weight.dtype)

    def penalty(self) -> torch.Tensor:
        """Step 2: L1 norm of the (used) mask entries, averaged over them."""
        valid = self.table.valid.unsqueeze(-1).to(self.mask.dtype)
        return (self.mask.abs() * valid).sum() / (valid.sum() * self.width)

    @torch.no_grad()
    def clip_(self) -> None:
        self.mask.clamp_(0.0, 1.0)

    @torch.no_grad()
    def masks(self) -> list[np.ndarray]:
        """The mask of every field, ``[groups of f, width]``."""
        m = self.mask.float().cpu().numpy()
        return [m[f, :n] for f, n in enumerate(self.table.n_groups)]

    @torch.no_grad()
    def importance(self) -> torch.Tensor:
        """Step 3's magnitudes: ``[F, G, width]``, the mean ``|m[f, g, j] * e[id, j]|`` over
        the ids of each group (the masked weights DNIS prunes; a mask alone is not
        comparable across groups, since an embedding can grow to undo a small mask)."""
        slot = self.table.row_slot
        n_slots = self.table.num_fields * self.table.max_groups
        total = torch.zeros(n_slots, self.width, device=slot.device)
        total.index_add_(0, slot, self.table.weight.detach().abs().float())
        total = total.reshape(self.table.num_fields, self.table.max_groups, self.width)
        mean = total / self.group_ids().clamp(min=1).unsqueeze(-1)
        return mean * self.mask.detach().abs().float()

    def group_ids(self) -> torch.Tensor:
        """Ids per (field, group), ``int64 [F, G]`` (0 for a field's unused groups)."""
        n_slots = self.table.num_fields * self.table.max_groups
        counts = torch.bincount(self.table.row_slot, minlength=n_slots)
        return counts.reshape(self.table.num_fields, self.table.max_groups)

    def kept_mass(self, candidates: Sequence[int], threshold: float = 0.0) -> list[np.ndarray]:
        """Step 3: ``value[f][g, k]`` = the ids of (f, g) times the sum, over its
        ``candidates[k]`` largest mean magnitudes, of ``magnitude - threshold``."""
        imp = self.importance().cpu().numpy()
        ids = self.group_ids().cpu().numpy().astype(np.float64)
        out = []
        for f, n in enumerate(self.table.n_groups):
            m = imp[f, :n] - threshold
            cum = np.concatenate(
                [np.zeros((len(m), 1)), np.cumsum(-np.sort(-m, axis=1), axis=1)], axis=1
            )
            out.append(ids[f, :n, None] * cum[:, list(candidates)])
        return out

    def kept_columns(
        self, f: int, g: int, d: int, importance: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Indices of the ``d`` largest magnitudes of (f, g), largest first (ties: lower
        index); pass ``importance()`` when calling for many blocks (it is one table pass)."""
        imp = self.importance() if importance is None else importance
        m = imp[f, g].cpu().numpy()
        return torch.as_tensor(np.argsort(-m, kind="stable")[:d], device=self.mask.device)

    @torch.no_grad()
    def fix(self, cand: Sequence[Sequence[int]] | None) -> None:
        """Prune to ``cand`` (``dims[f][g]``): keep each group's ``d`` columns of largest mean
        ``|m * e|`` (their mask entries), zero the rest."""
        if cand is None:
            self.hard = torch.zeros(0, device=self.mask.device)
            return
        hard = torch.zeros_like(self.mask)
        imp = self.importance()
        for f, dims in enumerate(cand):
            for g, d in enumerate(dims):
                keep = self.kept_columns(f, g, int(d), imp)
                hard[f, g, keep] = self.mask[f, g, keep]
        self.hard = hard

    @torch.no_grad()
    def export(self, plan: Plan) -> MixedDimEmbedding:
        """The pruned sub-network as a padded :class:`MixedDimEmbedding`: block (f, g) holds
        ``m * e`` on its kept columns, largest magnitude first (mask folded into the rows)."""
        if plan.projection != "pad":
            raise ConfigError(
                f"exporting a DNIS supernet needs a plan with projection='pad' (its structure), not {plan.projection!r}"
            )
        emb = MixedDimEmbedding(plan).to(self.mask.device)
        tensors: dict[str, torch.Tensor] = {}
        imp = self.importance()
        for f, fp in enumerate(plan.fields):
            rows = self.table.field_rows(f)
            for g, grp in enumerate(fp.groups):
                if grp.dim > 0:
                    keep = self.kept_columns(f, g, grp.dim, imp)
                    tensors[f"emb.{fp.name}.{g}"] = (
                        rows[grp.start : grp.stop][:, keep] * self.mask[f, g, keep]
                    )
        emb.load_block_tensors(tensors)
        return emb
