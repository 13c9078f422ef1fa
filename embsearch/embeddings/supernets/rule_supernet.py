"""RULE's supernet: Chen et al., "Learning Elastic Embeddings for Customizing On-Device
Recommenders" (KDD 2021), Sec. "Elastic embeddings" and "Diversity-driven regularisation".

The table is a G x B grid per field: G frequency groups (the ``feature_dims`` space) and B
dimension blocks of ``width / B`` columns each. An elastic embedding of an id in group g
uses the first ``k`` blocks of its row (``dim = k * width / B``, ``pad`` semantics), so
every block selection is a candidate of the space and plays with the same weights.

Training, once for every budget: each example of a step draws its own block counts (the
base class's ``sampling``; RULE's default ``"band"`` draws selections of every size), and
the diversity regulariser keeps the blocks *of one group* from duplicating each other (the
survey's wording: "a diversity regularization to the blocks in the same group"). Block
``b`` of a group is the group's rows restricted to the block's columns, a
``[rows, width / B]`` matrix; the term is the mean squared cosine similarity between the
distinct blocks of each group, estimated on the rows the batch looks up (low when blocks
carry different information, which is what lets a few blocks stand in for all of them).

Switchable scales (``scales=True``, RULE's controller's default; not in the paper): each
(field, group) has, for every block count ``k``, its own learned factor per column, applied
to the first ``k`` blocks when ``k`` are selected (the per-width parameters of slimmable and
once-for-all networks). The blocks stay shared; a selection's factors are folded into the
columns it serves (:meth:`block_tensors`), so a served table is a plain table of its dims.
They cost ``G x B x width`` floats per field in training only.

Choices: blocks are compared over the group's rows, not within each row, so the term also
acts on one-column blocks (the default 16 blocks of a 16-wide table), where a within-row
cosine is always +-1 and has no gradient; how selections are drawn (``sampling``) is set
by RULE's controller, with the measured reason in its docstring.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from embsearch.embeddings.supernets.masked import MaskedSupernet

_EPS = 1e-8  # floor of the product of two blocks' norms in a cosine (normalize's eps)
# log-scales are stored divided by this, so Adam (steps ~lr in every parameter) moves a
# factor by ~2% a step at lr 1e-3, as fast as a table entry of size ~0.01 moves relatively;
# 5 instead of 20 halved the gain at synthetic 10% (`git show efc005f:BENCHMARKS.md`)
SCALE_GAIN = 20.0


class RuleSupernet(MaskedSupernet):
    """Max-width table cut into ``blocks`` column blocks, with the block-diversity term."""

    def __init__(
        self,
        width: int,
        candidates: Sequence[int],
        groups: Sequence[Sequence[tuple[int, int]]],
        names: Sequence[str],
        seed: int = 0,
        blocks: int = 4,
        sampling: str = "band",
        scales: bool = False,
    ) -> None:
        if blocks < 1 or width % blocks:
            raise ValueError(f"width {width} is not a multiple of blocks={blocks}")
        super().__init__(width, candidates, groups, names, seed, sampling=sampling)
        self.blocks = int(blocks)
        # switchable scales: a log-factor per (slot, block count, column), 0 = the plain table
        self.log_scales = (
            nn.Parameter(torch.zeros(self.n_slots, self.blocks, self.width)) if scales else None
        )
        sizes = [len(g) for g in self.groups]
        self.max_groups = max(sizes)
        first = torch.tensor([0, *sizes[:-1]], dtype=torch.long).cumsum(0)
        self.register_buffer("first_slot", first, persistent=False)
        # the training batch's looked-up rows and their ids, for :meth:`diversity_loss`
        # (the trainer adds regularisers after the forward, without the batch)
        self._batch: tuple[torch.Tensor, torch.Tensor] | None = None

    def lookup(self, x: torch.Tensor) -> torch.Tensor:
        """The base class's lookup; in training, the rows and ids are kept for the
        diversity term of this step."""
        e = super().lookup(x)
        self._batch = (e, x) if self.training else None
        return e

    def selection_scales(
        self, dims: torch.Tensor, slots: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        """Switchable scales (``scales=True``): slot ``s`` keeping ``k`` blocks multiplies its
        columns by ``exp(SCALE_GAIN * log_scales[s, k - 1])``, so each selection size has its
        own per-column factors on the shared blocks (dim 0 keeps nothing, whatever its
        factor). ``slots``: each entry's slot (default: the last axis runs over every slot)."""
        if self.log_scales is None:
            return None
        k = (dims // (self.width // self.blocks) - 1).clamp(0, self.blocks - 1)
        if slots is None:
            slots = torch.arange(self.n_slots, device=dims.device).expand_as(dims)
        return torch.exp(SCALE_GAIN * self.log_scales[slots, k])

    def diversity_loss(self) -> torch.Tensor:
        """Mean squared cosine similarity between the distinct blocks of each (field, group)
        present in the last batch, over that batch's rows of the group (module docstring).

        For a group with looked-up rows ``E`` (``[n, width]``), ``<E_b, E_c>`` (Frobenius, over
        block ``b``'s and ``c``'s columns) is the trace of the ``(b, c)`` block of the column
        Gram matrix ``E^T E``, so one ``[width, width]`` Gram per group serves every block
        pair; ids of different groups of a field are kept apart by a one-hot of their group.
        """
        if self._batch is None or self.blocks < 2:
            return self.table.new_zeros(())
        e, x = self._batch
        b, k, w = self.blocks, self.width // self.blocks, self.width
        if self.one_slot_per_field:
            gram = torch.einsum("nfw,nfv->fwv", e, e)  # [slots = fields, w, w]
            present = torch.ones(gram.shape[0], dtype=torch.bool, device=e.device)
        else:
            local = self.slots(x) - self.first_slot  # group of each id within its field
            onehot = torch.nn.functional.one_hot(local, self.max_groups).to(e.dtype)
            gram = torch.einsum("nfg,nfw,nfv->fgwv", onehot, e, e).reshape(-1, w, w)
            present = onehot.sum(0).reshape(-1) > 0
        inner = gram.reshape(-1, b, k, b, k).diagonal(dim1=2, dim2=4).sum(-1)  # [slots, b, b]
        sq = inner.diagonal(dim1=1, dim2=2)  # [slots, b]: squared norms of the blocks
        cos2 = inner.pow(2) / (sq.unsqueeze(-1) * sq.unsqueeze(-2)).clamp_min(_EPS**2)
        off = (cos2 * (1.0 - torch.eye(b, dtype=e.dtype, device=e.device))).sum((-2, -1))
        return off[present].mean() / (b * (b - 1))
