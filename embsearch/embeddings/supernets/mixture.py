"""Parts the DARTS-style supernets share: AutoDim's weight-sharing candidate branches and the
supernet that mixes them (their joint table is :class:`~embsearch.embeddings.joint_table.GroupedTable`).

Supernets take plain structures (``groups[f] = [(start, stop), ...]``, candidate dims,
width) rather than a search space, so the embeddings layer imports nothing above it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import nn

from embsearch.embeddings.joint_table import GroupedTable, Groups
from embsearch.embeddings.mixed_dim import MixedDimEmbedding
from embsearch.errors import ConfigError
from embsearch.plan import Plan

__all__ = ["CandidateBranches", "GroupedTable", "Groups", "MixedSupernet"]


class _GatherRows(torch.autograd.Function):
    """``src.index_select(0, index)`` whose backward accumulates with ``index_put_`` rather
    than ``index_add_``: on CPU the same sums in the same order, and up to 1.8x faster when
    many rows gather few (a batch's ids from its distinct ids)."""

    @staticmethod
    def forward(ctx, src: torch.Tensor, index: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(index)
        ctx.rows = src.shape[0]
        return src.index_select(0, index)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (index,) = ctx.saved_tensors
        out = grad.new_zeros(ctx.rows, *grad.shape[1:])
        return out.index_put_((index,), grad, accumulate=True), None


class CandidateBranches(nn.Module):
    """AutoDim's weight-sharing branches (Zhao et al., WWW 2021, Sec. 2.1, "weight-sharing
    embedding"): candidate ``d_k`` of field ``f`` takes the FIRST ``d_k`` columns of the
    field's width-wide vector, projects them to the width with its own ``W[f, k]``
    (``d_k x width``) and batch-normalises the result per (field, candidate), so that
    branches of different dims reach the mixing step with comparable magnitudes.

    ``forward(e [B, F, W]) -> [B, F, K, W]``. The batch norm centres in *input* space
    (``(e - mean) W`` is exactly ``e W - mean(e W)`` on every batch) and has a scale but no
    shift, so that in eval mode a chosen branch folds into a plain mixed-dim block (rows
    ``e[:, :d] - mean``, projection ``W * scale``): see :meth:`folded`. The scale starts
    at ``gamma_init = 0.01``, the size of a freshly initialised plain table, so the
    supernet starts as quiet as the table it stands for (at 1.0 every field, noise
    included, enters the backbone at unit variance and short searches learn little).
    """

    def __init__(
        self,
        n_fields: int,
        candidates: Sequence[int],
        width: int,
        gamma_init: float = 0.01,
        eps: float = 1e-5,
        momentum: float = 0.1,
    ) -> None:
        super().__init__()
        self.candidates = tuple(int(c) for c in candidates)
        self.width = int(width)
        self.eps, self.momentum = float(eps), float(momentum)
        self.update_stats = (
            True  # off during architecture steps: running stats see training batches only
        )
        k = len(self.candidates)
        row_mask = torch.zeros(k, width, 1)
        for i, d in enumerate(self.candidates):
            row_mask[i, :d] = 1.0
        self.register_buffer("row_mask", row_mask, persistent=False)
        self.proj = nn.Parameter(torch.empty(n_fields, k, width, width))
        self.gamma = nn.Parameter(torch.full((n_fields, k, width), float(gamma_init)))
        self.register_buffer("running_mean", torch.zeros(n_fields, width))
        self.register_buffer("running_var", torch.ones(n_fields, k, width))
        with torch.no_grad():
            for i, d in enumerate(self.candidates):
                nn.init.normal_(self.proj[:, i], std=(1.0 / max(d, 1)) ** 0.5)
            self.proj.mul_(self.row_mask)

    def stats(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean [F, W], P)`` with ``P[f, k] = W[f, k] * gamma / sqrt(var + eps)``: branch
        ``(f, k)`` is ``(e - mean)[:, f] @ P[f, k]``. The variance of each output channel
        comes from the batch covariance of ``e`` (``var = w^T cov w``, equal to the
        variance of ``(e - mean) W`` and far cheaper than forming every branch first)."""
        if not self.training:
            return self.running(e.dtype)
        mean = e.mean(0)
        ct = (e - mean).transpose(0, 1)  # [F, B, W]
        cov = torch.bmm(ct.transpose(1, 2), ct) / e.shape[0]
        return self.from_moments(mean, cov, e.shape[0])

    def from_moments(
        self, mean: torch.Tensor, cov: torch.Tensor, n: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training-mode :meth:`stats` from a batch's per-field mean ``[F, W]`` and
        covariance ``[F, W, W]`` over ``n`` rows (updating the running statistics unless
        ``update_stats`` is off)."""
        w = self.proj * self.row_mask
        var = (w * torch.einsum("fij,fkjo->fkio", cov, w)).sum(2)
        if self.update_stats:
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach().float(), self.momentum)
                self.running_var.lerp_(var.detach().float() * (n / max(n - 1, 1)), self.momentum)
        return mean, w * (self.gamma * torch.rsqrt(var + self.eps)).unsqueeze(2)

    def running(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Eval-mode :meth:`stats`: the running mean and variance."""
        w = self.proj * self.row_mask
        scale = self.gamma * torch.rsqrt(self.running_var + self.eps)
        return self.running_mean.to(dtype), w * scale.unsqueeze(2)

    def normalised(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(e - mean, P)``, see :meth:`stats`."""
        mean, p = self.stats(e)
        return e - mean, p

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        centred, p = self.normalised(e)
        return torch.einsum("bfw,fkwo->bfko", centred, p.to(centred.dtype))

    @torch.no_grad()
    def folded(self, f: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Eval-mode branch ``(f, k)`` as ``(mean [d], projection [d, width])``:
        ``branch(e) = (e[:d] - mean) @ projection``."""
        d = self.candidates[k]
        scale = self.gamma[f, k] * torch.rsqrt(self.running_var[f, k] + self.eps)
        return self.running_mean[f, :d].clone(), self.proj[f, k, :d] * scale.unsqueeze(0)


class MixedSupernet(nn.Module, ABC):
    """Shared table + candidate branches, mixed by per-id weights over candidates.

    Subclasses give :meth:`row_weights` and optionally :meth:`field_weights` (AutoDim:
    Gumbel-softmax of per-(field, group) logits, per field when there are no groups; AutoEmb:
    a controller network fed by frequency, per id); :meth:`mix_weights` assembles them for a
    batch. :meth:`fix` forces a one-hot
    choice per (field, group) (the discretised sub-network) and :meth:`export` copies that
    sub-network into a :class:`MixedDimEmbedding` with identical eval-mode output.
    """

    def __init__(self, groups: Groups, candidates: Sequence[int], width: int) -> None:
        super().__init__()
        if not candidates:
            raise ConfigError(
                "the candidate dim list is empty; give at least one dim, e.g. --candidates 2,4,8,16"
            )
        if min(candidates) < 0 or max(candidates) > width:
            raise ConfigError(
                f"candidate dims {list(candidates)} must lie in [0, width={width}]; drop the larger ones or raise --width"
            )
        self.table = GroupedTable(groups, width)
        self.branches = CandidateBranches(self.table.num_fields, candidates, width)
        self.candidates = self.branches.candidates
        self.width = int(width)
        self.register_buffer("fixed", torch.zeros(0), persistent=False)
        # per-id mixing stacks [c[:d_k] for every k]: its column i is column col_j[i] of c,
        # weighted by candidate col_k[i], and meets row col_k[i] * width + col_j[i] of P
        col_k = [k for k, d in enumerate(self.candidates) for _ in range(d)]
        col_j = [j for d in self.candidates for j in range(d)]
        col_p = [k * self.width + j for k, j in zip(col_k, col_j)]
        for name, cols in (("col_k", col_k), ("col_j", col_j), ("col_p", col_p)):
            self.register_buffer(name, torch.tensor(cols, dtype=torch.long), persistent=False)

    def table_weights(self) -> list[nn.Parameter]:
        """The shared id-indexed table (the backbone's ``embedding_regularizer`` penalises it;
        the branches' transforms and the architecture weights are not penalised)."""
        return [self.table.weight]

    def field_weights(self) -> torch.Tensor | None:
        """Weights over candidates shared by every id of a field, ``[fields, K]``, or None
        when they are per id (:meth:`row_weights`)."""
        return None

    @abstractmethod
    def row_weights(self, rows: torch.Tensor) -> torch.Tensor:
        """Weights over candidates of rows ``rows`` of the joint table (``id + offset``),
        ``[len(rows), K]``; they sum to 1 over K."""

    def mix_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Weights over candidates for ``x``: ``[fields, K]`` (one mixture per field for the
        whole batch) or ``[batch, fields, K]`` (one per id)."""
        w = self.field_weights()
        if w is not None:
            return w
        rows = (x + self.table.offsets).reshape(-1)
        return self.row_weights(rows).reshape(*x.shape, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fixed.numel():
            w = None if self.table.max_groups > 1 else self.fixed[:, 0]
        else:
            w = self.field_weights()
        if w is None:  # per-id weights
            return self._mix_per_id(x) if x.device.type == "cpu" else self._mix_per_row(x)
        # one mixture per field: mix the projections, then one matmul per field
        e = self.table(x)
        mean, p = self.branches.stats(e)
        p = p.to(e.dtype)
        ct = (e - mean).transpose(0, 1)  # [F, B, W]
        return torch.bmm(ct, torch.einsum("fk,fkio->fio", w.to(p.dtype), p)).transpose(0, 1)

    def _id_weights(self, rows: torch.Tensor) -> torch.Tensor:
        """Weights over candidates of rows ``rows`` of the joint table, ``[len(rows), K]``:
        the forced one-hot choice when fixed, else :meth:`row_weights`."""
        if self.fixed.numel():
            slot = self.table.row_slot.index_select(0, rows)
            return self.fixed.reshape(-1, self.fixed.shape[-1]).index_select(0, slot)
        return self.row_weights(rows)

    def _stacked_inputs(self, c: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``[w_k * c[:d_k] for every k]`` along the last dim: ``c [..., width]`` centred
        embeddings, ``w [..., K]`` their weights over candidates."""
        return c.index_select(-1, self.col_j) * w.index_select(-1, self.col_k)

    def _stacked_projections(self, p: torch.Tensor) -> torch.Tensor:
        """``[P_k[:d_k] for every k]`` stacked, ``[F, sum of dims, width]``, matching
        :meth:`_stacked_inputs` (``p [F, K, width, width]``)."""
        return p.reshape(p.shape[0], -1, self.width).index_select(1, self.col_p)

    def _mix_per_row(self, x: torch.Tensor) -> torch.Tensor:
        """Per-id weights, every row of the batch mixed on its own (:meth:`_mix_rows`). No
        step waits on the device (sizes known in advance): the path for accelerators, where
        rows are cheap and host syncs are not."""
        batch, n_fields = x.shape
        w = self._id_weights((x + self.table.offsets).reshape(-1))
        return self._mix_rows(x, w.view(batch, n_fields, -1))

    def _mix_rows(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``sum_k w[b, f, k] (c[:d_k] @ P_k[:d_k])`` with every row's own weights ``w [B, F,
        K]``: ``[w_k * c[:d_k] for all k] @ [P_k[:d_k] stacked]``, one batched matmul over the
        fields, with ``c = e - mean`` (slices: an index over the last dim is ~12x slower on
        CPU; the same elements as :meth:`_stacked_inputs`, which :meth:`_mix_per_id` uses)."""
        e = self.table(x)
        mean, p = self.branches.stats(e)
        ct = (e - mean).transpose(0, 1)  # [F, B, W]
        wt = w.to(e.dtype).transpose(0, 1)  # [F, B, K]
        kept = [(k, d) for k, d in enumerate(self.candidates) if d > 0]
        u = torch.cat([ct[..., :d] * wt[..., k : k + 1] for k, d in kept], dim=-1)
        q = torch.cat([p[:, k, :d] for k, d in kept], dim=1).to(e.dtype)  # [F, sum d, W]
        return torch.bmm(u, q).transpose(0, 1)

    def _mix_per_id(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`_mix_per_row`'s output, computed once per *distinct* id of the batch (an
        id's output depends on the id alone, and popular ids repeat many times in a batch;
        on CPU the rows are what costs), then gathered back. The batch statistics come from
        the distinct ids too, each weighted by its count in the batch: the same mean and
        covariance as over the batch's rows. Each field takes one matmul over its ids."""
        batch, n_fields = x.shape
        uniq, inverse, counts = self.table.distinct(x)  # sorted: grouped by field
        field = torch.div(
            self.table.row_slot.index_select(0, uniq), self.table.max_groups, rounding_mode="floor"
        )
        sizes = torch.bincount(field, minlength=n_fields).tolist()
        e = self.table.weight.index_select(0, uniq)
        if self.branches.training:
            cnt = counts.to(e.dtype).unsqueeze(1)
            mean = e.new_zeros(n_fields, self.width).index_add(0, field, e * cnt) / batch
            c = e - mean.index_select(0, field)
            cov = torch.stack([a.T @ b for a, b in zip((c * cnt).split(sizes), c.split(sizes))])
            p = self.branches.from_moments(mean, cov / batch, batch)[1]
        else:
            mean, p = self.branches.running(e.dtype)
            c = e - mean.index_select(0, field)
        p = p.to(c.dtype)
        w = self._id_weights(uniq).to(c.dtype)
        u = self._stacked_inputs(c, w)
        q = self._stacked_projections(p)
        out = torch.cat([part @ q[f] for f, part in enumerate(u.split(sizes))])
        return _GatherRows.apply(out, inverse).view(batch, n_fields, self.width)

    def fix(self, cand: Sequence[Sequence[int]] | None) -> None:
        """Play the sub-network ``cand`` (``dims[f][g]``), or the soft mixture again with None."""
        if cand is None:
            self.fixed = torch.zeros(0, device=self.fixed.device)
            return
        onehot = torch.zeros(self.table.num_fields, self.table.max_groups, len(self.candidates))
        for f, dims in enumerate(cand):
            for g, d in enumerate(dims):
                onehot[f, g, self.candidates.index(int(d))] = 1.0
        self.fixed = onehot.to(self.table.weight.device)

    @torch.no_grad()
    def export(self, plan: Plan) -> MixedDimEmbedding:
        """Copy the plan's sub-network into a :class:`MixedDimEmbedding` (BN folded).

        Each block stores ``e[:, :d] - mean`` and each ``(field, dim)`` the projection
        ``W[f, k] * gamma / sqrt(running_var + eps)`` (the batch norm folded into it); a
        width-dim block stores its projected rows directly (the table has no projection
        there). Needs ``projection='linear'``: a padded table has nowhere to put ``W``.
        """
        if plan.projection != "linear":
            raise ConfigError(
                f"exporting a {type(self).__name__} needs a plan with projection='linear', not {plan.projection!r}"
            )
        emb = MixedDimEmbedding(plan).to(self.table.weight.device)
        tensors: dict[str, torch.Tensor] = {}
        for f, fp in enumerate(plan.fields):
            rows = self.table.field_rows(f)
            for g, grp in enumerate(fp.groups):
                if grp.dim == 0:
                    continue
                mean, proj = self.branches.folded(f, self.candidates.index(grp.dim))
                block = rows[grp.start : grp.stop, : grp.dim] - mean
                if grp.dim == self.width:
                    tensors[f"emb.{fp.name}.{g}"] = block @ proj
                else:
                    tensors[f"emb.{fp.name}.{g}"] = block
                    tensors[f"proj.{fp.name}.{grp.dim}"] = proj
        emb.load_block_tensors(tensors)
        return emb
