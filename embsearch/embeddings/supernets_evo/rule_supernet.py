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

_EPS = 1e-8  # normalisation floor of a block's norm (torch.nn.functional.normalize's eps)


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
        """Mean squared cosine similarity between distinct blocks of the last batch's rows.

        Computed without the ``blocks x blocks`` Gram matrix of every row when blocks are
        narrower than they are many: with ``U`` a row's ``[blocks, k]`` normalised blocks,
        ``sum_{b != c} (u_b . u_c)^2 = ||U U^T||_F^2 - sum_b ||u_b||^4 = ||U^T U||_F^2 -
        sum_b ||u_b||^4``, and ``U^T U`` is ``k x k`` (``k = width / blocks``): the same value,
        ``blocks / k`` times fewer products. With ``k = 1`` (the default 16 blocks of a 16-wide
        table) every cosine is +-1 and the term is a constant with no gradient (except at
        ``|x| < eps``): the closed form below computes it elementwise.
        """
        e = self.last_lookup
        if e is None or self.blocks < 2:
            return self.table.new_zeros(())
        b, k = self.blocks, self.width // self.blocks
        if k == 1:  # ||u_b||^2 = x^2 / max(|x|, eps)^2, and U^T U is the scalar sum_b ||u_b||^2
            sq = e.pow(2).mul(1.0 / _EPS**2).clamp(max=1.0)
            off = sq.sum(-1).pow(2) - sq.pow(2).sum(-1)
            return off.mean() / (b * (b - 1))
        blk = torch.nn.functional.normalize(e.reshape(*e.shape[:-1], b, k), dim=-1, eps=_EPS)
        sq = blk.pow(2).sum(-1)  # [..., b]: ||u_b||^2 (1, or less for a near-zero block)
        if k < b:
            total = (blk.transpose(-1, -2) @ blk).pow(2).sum((-2, -1))
        else:
            total = (blk @ blk.transpose(-1, -2)).pow(2).sum((-2, -1))
        off = total - sq.pow(2).sum(-1)  # drop the b diagonal terms of each row
        return off.mean() / (b * (b - 1))
