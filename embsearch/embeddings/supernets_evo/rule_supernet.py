"""RULE's supernet: Chen et al., "Learning Elastic Embeddings for Customizing On-Device
Recommenders" (KDD 2021), Sec. "Elastic embeddings" and "Diversity-driven regularisation".

The table is a G x B grid per field: G frequency groups (the ``feature_dims`` space) and B
dimension blocks of ``width / B`` columns each. An elastic embedding of an id in group g
uses the first ``k`` blocks of its row (``dim = k * width / B``, ``pad`` semantics), so
every block selection is a candidate of the space and plays with the same weights.

Training, once for every budget: each step draws a block count per (field, group)
uniformly (the base class), so every selection is trained, and the diversity regulariser
keeps the blocks of one row from duplicating each other: the mean squared cosine
similarity between the distinct blocks of each looked-up row (low when blocks carry
different information, which is what lets a few blocks stand in for all of them).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from embsearch.embeddings.supernets_evo._masked import MaskedSupernetEmbedding


class RuleEmbedding(MaskedSupernetEmbedding):
    """Max-width table cut into ``blocks`` column blocks, with the block-diversity term."""

    def __init__(
        self,
        width: int,
        candidates: Sequence[int],
        groups: Sequence[Sequence[tuple[int, int]]],
        names: Sequence[str],
        seed: int = 0,
        blocks: int = 4,
    ) -> None:
        if blocks < 1 or width % blocks:
            raise ValueError(f"width {width} is not a multiple of blocks={blocks}")
        super().__init__(width, candidates, groups, names, seed)
        self.blocks = int(blocks)

    def diversity_loss(self) -> torch.Tensor:
        """Mean squared cosine similarity between distinct blocks of the last batch's rows."""
        e = self.last_lookup
        if e is None or self.blocks < 2:
            return self.table.new_zeros(())
        blk = e.reshape(*e.shape[:-1], self.blocks, self.width // self.blocks)
        blk = torch.nn.functional.normalize(blk, dim=-1, eps=1e-8)
        gram = torch.einsum("nfbk,nfck->nfbc", blk, blk)
        off = ~torch.eye(self.blocks, dtype=torch.bool, device=gram.device)
        return gram[..., off].pow(2).mean()
