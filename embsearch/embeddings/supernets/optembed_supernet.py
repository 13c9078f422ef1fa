"""OptEmbed's supernet: Lyu et al., "OptEmbed: Learning Optimal Embedding Table for
Click-through Rate Prediction" (CIKM 2022), Sec. "Supernet training", as its official code
(github.com/fuyuanlyu/OptEmbed, ``models/modules_super.py``) trains it.

Two things are learned at once in one max-width table:

1. *Row pruning* (OptEmbed-E): each field ``f`` has a learnable threshold ``t_f``; an id's
   row is kept iff ``||e||_1 > t_f``. The unit step is trained with the official code's
   long-tailed straight-through estimator (:func:`long_tailed_grad`: forward the hard
   mask; backward the step's surrogate derivative ``2 - 4|z|`` for ``|z| <= 0.4``, ``0.4``
   up to ``|z| = 1``, ``0`` beyond, at ``z = ||e||_1 - t_f``), so only rows near their
   threshold move it. The paper's regulariser ``sum_f exp(-t_f)`` (weighted by ``alpha``)
   pushes thresholds up so that rows the loss does not defend are pruned. The thresholds
   have their own optimiser, plain SGD at their own learning rate
   (:meth:`OptEmbedSupernet.own_threshold_optimiser`; the official ``t_lr``), and the
   table an L2 penalty (the official code's ``wd`` on the embedding), which lets Adam
   shrink the rows the loss does not defend towards 0.
2. *Uniform dimension sampling* (OptEmbed-D): every training example draws one dim per
   field uniformly from the candidates and keeps the first ``d`` columns (the base class,
   ``sampling='example'``), so all candidate architectures are trained equally and can
   later be scored with inherited weights.

Storage: :meth:`OptEmbedSupernet.keep_masks` gives each field's kept ids; the controller
stores only those rows (``pruned`` blocks, whose id -> row maps the plan carries) and
credits the pruned ones in the budget (``controllers/optembed.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from embsearch.embeddings.supernets.masked import MaskedSupernet


def long_tailed_grad(z: torch.Tensor) -> torch.Tensor:
    """The long-tailed straight-through estimator's surrogate derivative of the unit step
    at ``z`` (OptEmbed's official ``BinaryStep``): ``2 - 4|z|`` for ``|z| <= 0.4``, ``0.4``
    for ``0.4 < |z| <= 1``, ``0`` beyond."""
    a = z.abs()
    return torch.where(a <= 0.4, 2 - 4 * a, torch.where(a <= 1, 0.4, 0.0)).to(z.dtype)


class _LongTailedStep(torch.autograd.Function):
    """Forward ``z > 0`` as 0/1; backward the incoming gradient times :func:`long_tailed_grad`."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(z)
        return (z > 0).to(z.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (z,) = ctx.saved_tensors
        return grad * long_tailed_grad(z)


class _PrunedMaskedLookup(torch.autograd.Function):
    """A training step's ``lookup`` + ``transform_rows`` + column mask, computed per *table
    row* rather than per looked-up id.

    An id's pruning decision (``||e||_1 > t_f``) and its column mask (its slot's dim) depend
    on its row only, so the forward is one ``[rows, width]`` mask ``keep * hard`` applied to
    the table before the gather, and the backward sums each id's gradient into its row first
    (the same ``index_add`` as a plain table's backward) and applies the straight-through
    estimator per row: with ``G`` a row's summed gradient, ``gc = G * keep``, ``z`` the row's
    ``||e||_1 - t_f`` and ``s = g(z) sum_k gc_k e_k`` (``g``: :func:`long_tailed_grad`),
    ``d e = gc * hard + s * sgn(e)`` and ``d t_f = -sum_{rows of f} s``. The
    same values and (up to float summation order) the same gradients as autograd through the
    per-id ops, which cost ~3x a plain lookup on CPU: cheaper whenever the table has fewer
    rows than a batch has ids (the caller checks).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        table: torch.Tensor,
        threshold: torch.Tensor,
        rows: torch.Tensor,
        keep: torch.Tensor,
        field_of_row: torch.Tensor,
    ) -> torch.Tensor:
        t = threshold.index_select(0, field_of_row)
        z = (table.abs().sum(-1) - t).unsqueeze(-1)
        hard = (z > 0).to(table.dtype)
        ctx.save_for_backward(table, hard, keep, rows, field_of_row, long_tailed_grad(z))
        ctx.n_fields = threshold.shape[0]
        pruned = table * (keep * hard)  # products with 0/1: exact, as the per-id masks
        return pruned.index_select(0, rows.reshape(-1)).view(*rows.shape, table.shape[1])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        table, hard, keep, rows, field_of_row, slope = ctx.saved_tensors
        width = table.shape[1]
        gc = torch.zeros_like(table).index_add_(0, rows.reshape(-1), grad.reshape(-1, width))
        gc.mul_(keep)
        s = (gc * table).sum(-1, keepdim=True) * slope  # per row: its STE mask's gradient
        grad_table = (gc * hard).add_(s * table.sgn())
        grad_t = None
        if ctx.needs_input_grad[1]:
            grad_t = s.new_zeros(ctx.n_fields).index_add_(0, field_of_row, s.squeeze(-1)).neg_()
        return grad_table, grad_t, None, None, None


class OptEmbedSupernet(MaskedSupernet):
    """Max-width table with per-field learnable pruning thresholds and sampled dim masks."""

    def __init__(
        self,
        width: int,
        candidates: Sequence[int],
        groups: Sequence[Sequence[tuple[int, int]]],
        names: Sequence[str],
        seed: int = 0,
        threshold_init: float = 0.0,
        sampling: str = "example",
    ) -> None:
        super().__init__(width, candidates, groups, names, seed, sampling=sampling)
        self.threshold = nn.Parameter(torch.full((len(self.groups),), float(threshold_init)))
        self._hooks: list[Any] = []

    def own_threshold_optimiser(self, lr: float, table_l2: float = 0.0) -> None:
        """Step 1's optimisers, as the official code's: the thresholds take a plain SGD step
        of ``lr`` as soon as a backward pass has accumulated their gradient, which is then
        cleared (so the trainer's Adam, which skips parameters without one, leaves them
        alone); ``table_l2`` adds ``table_l2 * table`` to the table's gradient (Adam's
        coupled weight decay, the official ``wd`` on the embedding)."""
        for h in self._hooks:
            h.remove()
        self._hooks = []

        @torch.no_grad()
        def sgd(p: torch.Tensor) -> None:
            if p.grad is not None:
                p.sub_(p.grad, alpha=float(lr))
                p.grad = None

        self._hooks.append(self.threshold.register_post_accumulate_grad_hook(sgd))
        if table_l2 > 0:

            @torch.no_grad()
            def l2(p: torch.Tensor) -> None:
                if p.grad is not None:
                    p.grad.add_(p, alpha=float(table_l2))

            self._hooks.append(self.table.register_post_accumulate_grad_hook(l2))

    def transform_rows(self, e: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Step 1: zero rows whose L1 norm does not exceed their field's threshold (the
        long-tailed straight-through estimator when gradients are on)."""
        # a lookup's rows are [batch, fields] with column f in field f: broadcast, no gather
        t = self.threshold if rows.dim() == 2 else self.threshold[self.field_of_row[rows]]
        z = e.abs().sum(-1) - t
        mask = _LongTailedStep.apply(z) if torch.is_grad_enabled() else (z > 0).to(e.dtype)
        return e * mask.unsqueeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The base class's forward. A training step with gradients and one draw for the batch
        (``sampling='step'``, an ablation; OptEmbed's draws per example) whose batch has at least as many ids as the table
        has rows runs it per table row (:class:`_PrunedMaskedLookup`:
        same values, same gradients up to float summation order)."""
        per_row = self.training and torch.is_grad_enabled() and self.sampling == "step"
        if not per_row or x.numel() < self.table.shape[0]:  # per-example draws: per id
            return super().forward(x)
        dims = self.sample_dims() if self.sample_in_training else self.slot_dims
        keep = self.column_mask(dims).index_select(0, self.slot_of_row)  # [rows, width]
        return _PrunedMaskedLookup.apply(
            self.table, self.threshold, self.rows_of(x), keep, self.field_of_row
        )

    def threshold_loss(self) -> torch.Tensor:
        """The paper's threshold regulariser ``sum_f exp(-t_f)``."""
        return torch.exp(-self.threshold).sum()

    @torch.no_grad()
    def keep_masks(self) -> list[torch.Tensor]:
        """Per field, the boolean mask of the ids its threshold keeps (``||e||_1 > t_f`` on
        the whole max-width row, as the official ``calc_feature_mask``), in id order."""
        keep = self.table.abs().sum(-1) > self.threshold[self.field_of_row]
        starts = self.offsets.tolist() + [keep.numel()]
        return [keep[starts[f] : starts[f + 1]].cpu() for f in range(len(self.groups))]

    @torch.no_grad()
    def pruned_fraction(self) -> list[float]:
        """Per field, the fraction of its rows the thresholds prune."""
        norm = self.table.abs().sum(-1)
        pruned = (norm <= self.threshold[self.field_of_row]).float()
        counts = torch.bincount(self.field_of_row, minlength=len(self.groups)).clamp(min=1)
        return (
            torch.bincount(self.field_of_row, weights=pruned, minlength=len(self.groups)) / counts
        ).tolist()
