"""Scoring a composed-space candidate with a dims supernet's inherited weights (the proxy).

A weight-sharing supernet (:class:`~embsearch.embeddings.supernets.MaskedSupernet`) learns
one ``rows x width`` table whose leading ``d`` columns serve any dim ``d``. A composed
candidate also picks, per field, a meta-table kind and a precision; its *proxy* score plays
those on the supernet's trained rows without training anything, each block's tables set to
a fit of the supernet's rows (masked to the block's dim) that the kind can store (least
squares, except MEmCom's, below), then rounded to the block's precision as the export stores it:

- ``full``: the rows themselves;
- ``hash`` (``m`` rows): each shared row is the mean of the rows of the ids it serves
  (the mean of colliding rows);
- ``memcom`` (shared ``m x d`` rows times a per-id scalar): each shared row is the mean of
  its ids' rows, each id's scalar the projection of its row on it (on purpose, not the
  least-squares fit, each bucket's top singular direction: that ranked retrained frappe
  candidates worse, Spearman 0.677 against 0.844 at 10%,
  ``benchmarks/results/proxy_spearman/memcom_ls_fit_spear20.json``);
- ``qr`` with ``op='mult'``: per column, the quotient x remainder tables are a rank-one
  least-squares fit of the ``ceil(n / c) x c`` matrix of that column (its cells of ids
  beyond ``n`` left out; alternating least squares, :data:`QR_ITERATIONS` rounds);
- precision: ``fp16`` rounds the stored tables, ``int8`` quantises them row-wise,
  ``int8c``/``int4c`` column-wise over each fitted table, with its own column ranges, as
  the export does (:func:`~embsearch.embeddings.rows.round_rows`: a fake quantisation of the
  supernet's rows after training, where the retrained plan trains quantisation-aware).

The candidate's score is then the validation AUC of the supernet's backbone on those
embeddings, on a fixed stratified subsample (as :class:`~embsearch.evaluator.InheritedWeightEvaluator`).
Each (field, option) column is computed once and kept (a candidate then costs one backbone
pass). How well the proxy ranks candidates is measured by
``benchmarks/bench_proxy_spearman.py`` (Spearman against retrained test AUC).
"""

from __future__ import annotations

import copy
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from embsearch.blocks import hash_coefficients
from embsearch.candidate import Candidate
from embsearch.data.batches import DeviceSplit
from embsearch.embeddings.rows import round_rows
from embsearch.evaluator import SubsampleScorer
from embsearch.search_spaces.composed import BlockOption, ComposedSpace

#: alternating least-squares rounds of the QR fit
QR_ITERATIONS = 12


def fitted_rows(w: torch.Tensor, opt: BlockOption, name: str, group: int) -> torch.Tensor:
    """Per-id vectors ``[n, d]`` of the block ``opt`` fitted to rows ``w [n, d]`` (module
    docstring), at the option's precision."""
    n, p = w.shape[0], opt.precision
    ids = torch.arange(n, device=w.device)
    if opt.kind in ("hash", "memcom"):
        if opt.kind == "hash":
            a, b = hash_coefficients(name, group, 0)
            row = ((ids * a + b) % (2**31 - 1)) % opt.size
        else:
            row = ids % opt.size
        sums = torch.zeros(opt.size, w.shape[1], dtype=w.dtype, device=w.device)
        sums.index_add_(0, row, w)
        count = torch.bincount(row, minlength=opt.size).clamp(min=1).to(w.dtype)
        shared = round_rows(sums / count.unsqueeze(1), p)
        if opt.kind == "hash":
            return shared[row]
        base = shared[row]
        scalar = (w * base).sum(1) / (base * base).sum(1).clamp(min=1e-12)
        scalar = scalar if p == "fp32" else round_rows(scalar.unsqueeze(1), "fp16").squeeze(1)
        return base * scalar.unsqueeze(1)
    if opt.kind == "qr":
        c = opt.size
        q_rows = -(-n // c)
        m = torch.zeros(q_rows * c, w.shape[1], dtype=w.dtype, device=w.device)
        m[:n] = w
        m = m.view(q_rows, c, w.shape[1]).permute(2, 0, 1)  # [d, q, c]
        mask = (torch.arange(q_rows * c, device=w.device) < n).to(w.dtype).view(1, q_rows, c)
        v = torch.ones(w.shape[1], c, 1, dtype=w.dtype, device=w.device)
        for _ in range(QR_ITERATIONS):  # alternating least squares over the ids there are
            u = (m @ v) / (mask @ (v * v)).clamp(min=1e-12)  # [d, q, 1]
            v = (m.transpose(1, 2) @ u) / (mask.transpose(1, 2) @ (u * u)).clamp(min=1e-12)
        u = (m @ v) / (mask @ (v * v)).clamp(min=1e-12)
        q = round_rows(u.squeeze(2).T.contiguous(), p)  # [q, d]
        r = round_rows(v.squeeze(2).T.contiguous(), p)  # [c, d]
        return q[ids // c] * r[ids % c]
    return round_rows(w, p)


class BlockProxyEvaluator(SubsampleScorer):
    """Validation AUC of a composed candidate played on a dims supernet's inherited weights.

    ``model`` is a ``CTRModel`` whose ``embedding`` is a :class:`MaskedSupernet` over the
    space's fields (one group each) and whose plans are zero-padded (``projection='pad'``).
    """

    name = "inherited-blocks"

    def __init__(
        self,
        model: nn.Module,
        space: ComposedSpace,
        split: DeviceSplit,
        batch_size: int = 65536,
        max_rows: int | None = None,
        cache_entries: int = 4096,
    ) -> None:
        self.model, self.space = model, space
        self.backbone = model.backbone
        self.select_rows(split, max_rows)
        self.batch_size = int(batch_size)
        # keyed by option, not key, so a copy for another space shares it (:meth:`for_space`)
        self.cache: OrderedDict[tuple[int, BlockOption], torch.Tensor] = OrderedDict()
        self.cache_entries = int(cache_entries)
        self.last_metrics: dict[str, float] = {}
        model.eval()
        with torch.no_grad():
            self.table = model.embedding.effective_table()
        self.offsets = [int(o) for o in model.embedding.offsets]

    def for_space(self, space: ComposedSpace) -> BlockProxyEvaluator:
        """This proxy (the same supernet rows, validation rows and cached columns) scoring
        candidates of ``space``, a copy of its space with other dims offered (e.g. one that
        also offers the ``uniform`` controller's dim, for OptEmbed's uniform gate)."""
        if space.width != self.space.width or space.schema is not self.space.schema:
            raise ValueError("the proxy scores spaces of its own schema and width only")
        clone = copy.copy(self)
        clone.space = space
        return clone

    @torch.no_grad()
    def column(self, f: int, key: int) -> torch.Tensor:
        """Field ``f``'s embeddings ``[rows evaluated, width]`` under option ``key``."""
        opt = self.space.option(f, 0, key)
        if (f, opt) in self.cache:
            self.cache.move_to_end((f, opt))
            return self.cache[(f, opt)]
        n = self.space.schema.fields[f].cardinality
        out = torch.zeros(
            len(self.x), self.space.width, dtype=self.table.dtype, device=self.table.device
        )
        if opt.dim > 0:
            w = self.table[self.offsets[f] : self.offsets[f] + n, : opt.dim]
            fitted = fitted_rows(w, opt, self.space.schema.fields[f].name, 0)
            out[:, : opt.dim] = fitted[self.x[:, f]]
        self.cache[(f, opt)] = out
        if len(self.cache) > self.cache_entries:
            self.cache.popitem(last=False)
        return out

    @torch.no_grad()
    def predict(self, candidate: Candidate) -> np.ndarray:
        e = torch.stack([self.column(f, int(keys[0])) for f, keys in enumerate(candidate)], 1)
        self.backbone.eval()
        out = [
            self.backbone(e[s : s + self.batch_size]).float()
            for s in range(0, len(e), self.batch_size)
        ]
        logits = torch.cat(out) if out else torch.zeros(0)
        return torch.sigmoid(logits).cpu().numpy()
