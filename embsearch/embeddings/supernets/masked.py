"""The max-width table both evolutionary supernets share: a candidate keeps the first ``d``
columns of every (field, frequency group) block and zeroes the rest (``pad`` semantics).

One table ``[total rows, width]`` holds every field (rows offset per field; the joint
table of :mod:`embsearch.embeddings.joint_table`, as the DARTS supernets'). Each row
belongs to one *slot* (a (field, group) pair, numbered field-major); a candidate is a dim
per slot. Subclasses add a candidate-independent row transform (OptEmbed's row pruning) or
a regulariser (RULE's block diversity).

Because dims only mask (and, with RULE's switchable scales, scale) columns, a candidate's
sub-network equals a :class:`~embsearch.embeddings.mixed_dim.MixedDimEmbedding` with
``projection='pad'`` whose blocks hold the first ``d`` columns of the supernet rows, times
the candidate's scales (:meth:`block_tensors`), up to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from embsearch.candidate import Candidate
from embsearch.embeddings.joint_table import GroupedTable


@runtime_checkable
class MaskedTable(Protocol):
    """What the inherited-weight evaluator (``evaluator.py``) needs of a supernet's embedding
    module: a candidate only masks (or scales) the leading columns of each (field, group)
    slot of one full-width table, so the split's rows are looked up once and each candidate
    costs one mask. :class:`MaskedSupernet` implements it; a plug-in supernet that
    does can be scored the same way."""

    width: int

    def lookup(self, x: torch.Tensor) -> torch.Tensor:
        """Full-width rows of ``x`` after candidate-independent transforms, ``[B, F, width]``."""
        ...

    def slots(self, x: torch.Tensor) -> torch.Tensor:
        """The (field, group) slot of every id of ``x``, ``int64 [B, F]``."""
        ...

    def dims_of(self, cand: Candidate) -> torch.Tensor:
        """The candidate as one dim per slot, ``int64 [n_slots]``."""
        ...

    def slot_mask(self, dims: torch.Tensor, slots: torch.Tensor | None = None) -> torch.Tensor:
        """``[n_slots, width]``: what multiplies each slot's rows under ``dims``."""
        ...


SAMPLINGS = ("example", "step", "band")  # how training draws candidates (class docstring)


class MaskedSupernet(nn.Module):
    """``x: int64 [batch, fields] -> [batch, fields, width]`` playing any candidate of a space
    given by its ``width``, ``candidates`` dims and per-field ``groups`` (id ranges).

    In training mode every forward call samples fresh dims (``sampling``):

    - ``"example"``: one dim per slot, uniform over the space's candidates, drawn for each
      example (OptEmbed's uniform sampling: its official code draws a dim per example and
      per field);
    - ``"step"``: the same, one draw for the whole batch (the same expected loss over
      candidates, averaged over one candidate per step instead of many; not a paper's, kept
      for ablations);
    - ``"band"``: for each example a level uniform over the candidates, then each slot's
      candidate within ``+-max(1, C // 4)`` places of it (clipped). Independent draws put a
      candidate's total bytes near the middle of the range (on the built-in synthetic data
      none of 2,000 draws fell under 15% of the full table); drawing a level first trains
      selections of every size, and the band still mixes dims across slots.

    In eval mode the dims set by :meth:`set_candidate` (default: the full width) are used.
    """

    def __init__(
        self,
        width: int,
        candidates: Sequence[int],
        groups: Sequence[Sequence[tuple[int, int]]],
        names: Sequence[str],
        seed: int = 0,
        sampling: str = "example",
    ) -> None:
        super().__init__()
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
        self.sampling = sampling
        self.width = int(width)
        self.candidates = tuple(int(c) for c in candidates)
        self.groups = [[(int(a), int(b)) for a, b in g] for g in groups]
        self.names = list(names)
        slot_of_row, field_of_row, slot = [], [], 0
        for f, groups in enumerate(self.groups):
            for a, b in groups:
                slot_of_row.append(torch.full((b - a,), slot, dtype=torch.long))
                field_of_row.append(torch.full((b - a,), f, dtype=torch.long))
                slot += 1
        self.n_slots = slot
        # one group per field (field_dims): an id's slot is its field's, known without lookup
        self.one_slot_per_field = all(len(g) == 1 for g in self.groups)
        self.register_buffer("slot_of_row", torch.cat(slot_of_row), persistent=False)
        self.register_buffer("field_of_row", torch.cat(field_of_row), persistent=False)
        self.register_buffer(
            "slot_dims", torch.full((slot,), self.width, dtype=torch.long), persistent=False
        )
        self.register_buffer(
            "_cand_values", torch.tensor(self.candidates, dtype=torch.long), persistent=False
        )
        self.register_buffer("_cols", torch.arange(self.width), persistent=False)
        # the weights and per-field row offsets: the joint table every supernet trains
        self.joint = GroupedTable(self.groups, self.width, init_std=0.01)  # as MixedDimEmbedding
        self.sample_in_training = True
        # an outside sampler (NIS's policy): ``examples -> [examples, n_slots]`` dims drawn in
        # training in place of ``sampling``'s own draws (None: ``sampling`` draws)
        self.outside_sampler: Callable[[int], torch.Tensor] | None = None
        self.generator = torch.Generator().manual_seed(int(seed))

    @property
    def table(self) -> nn.Parameter:
        """The joint ``[total rows, width]`` table (:class:`GroupedTable`'s weight)."""
        return self.joint.weight

    @property
    def offsets(self) -> torch.Tensor:
        """Each field's first row in :attr:`table`."""
        return self.joint.offsets

    # -- candidates -------------------------------------------------------------------------
    def table_weights(self) -> list[nn.Parameter]:
        """The id-indexed table (the backbone's ``embedding_regularizer`` penalises it)."""
        return [self.table]

    def dims_of(self, cand: Candidate) -> torch.Tensor:
        """The candidate as one dim per slot, ``int64 [n_slots]`` on the table's device."""
        flat = [int(d) for dims in cand for d in dims]
        if len(flat) != self.n_slots:
            raise ValueError(
                f"candidate has {len(flat)} (field, group) dims, the supernet {self.n_slots}"
            )
        return torch.tensor(flat, dtype=torch.long, device=self.table.device)

    def set_candidate(self, cand: Candidate) -> None:
        self.slot_dims = self.dims_of(cand)

    def sample_dims(self, examples: int | None = None) -> torch.Tensor:
        """Uniform dims per slot, ``[n_slots]``, or ``[examples, n_slots]`` (one row each)."""
        shape = (self.n_slots,) if examples is None else (examples, self.n_slots)
        idx = torch.randint(len(self.candidates), shape, generator=self.generator)
        return self._cand_values[idx.to(self._cand_values.device)]

    def sample_band(self, examples: int) -> torch.Tensor:
        """``sampling='band'``: ``[examples, n_slots]`` dims, each example's around a level."""
        n = len(self.candidates)
        w = max(1, n // 4)
        level = torch.randint(n, (examples, 1), generator=self.generator)
        jitter = torch.randint(-w, w + 1, (examples, self.n_slots), generator=self.generator)
        idx = (level + jitter).clamp(0, n - 1)
        return self._cand_values[idx.to(self._cand_values.device)]

    # -- lookups ------------------------------------------------------------------------------
    def rows_of(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.offsets

    def transform_rows(self, e: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Candidate-independent per-row transform (identity; OptEmbed prunes rows here)."""
        return e

    def lookup(self, x: torch.Tensor) -> torch.Tensor:
        """Full-width (row-transformed) embeddings, ``[batch, fields, width]``."""
        rows = self.rows_of(x)
        # index_select: on CPU its backward (one index_add) beats indexing's scatter
        e = self.table.index_select(0, rows.reshape(-1)).view(*rows.shape, self.table.shape[1])
        return self.transform_rows(e, rows)

    def slots(self, x: torch.Tensor) -> torch.Tensor:
        """Slot (flat (field, group) index) of every id, ``[batch, fields]``."""
        return self.slot_of_row.index_select(0, self.rows_of(x).reshape(-1)).view(x.shape)

    def column_mask(self, dims: torch.Tensor) -> torch.Tensor:
        """``[..., width]`` mask keeping the first ``dims[...]`` columns."""
        return (self._cols < dims.unsqueeze(-1)).to(self.table.dtype)

    def selection_scales(
        self, dims: torch.Tensor, slots: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        """``[..., width]`` factors on the kept columns of entries of ``dims`` (``[...]``),
        each of slot ``slots[...]`` (default: the last axis runs over every slot), or
        ``None`` (the base table has none; RULE's switchable scales)."""
        return None

    def slot_mask(self, dims: torch.Tensor, slots: torch.Tensor | None = None) -> torch.Tensor:
        """``[..., width]``: what multiplies rows of slot ``slots[...]`` (default: the last axis
        runs over every slot) under ``dims[...]``: the column mask, times the scales if any."""
        mask = self.column_mask(dims)
        scales = self.selection_scales(dims, slots)
        return mask if scales is None else mask * scales

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.lookup(x)
        drawing = self.training and self.sample_in_training
        outside = self.outside_sampler if drawing else None
        if outside is not None or (drawing and self.sampling != "step"):
            # [batch, n_slots]: each example its own draw
            draw = self.sample_band if self.sampling == "band" else self.sample_dims
            dims = (outside or draw)(x.shape[0]).to(e.device)
            if self.one_slot_per_field:  # slot = field
                return e * self.slot_mask(dims)
            slots = self.slots(x)
            return e * self.slot_mask(dims.gather(1, slots), slots)  # each id's slot's dim
        dims = self.sample_dims() if drawing else self.slot_dims
        mask = self.slot_mask(dims)  # [n_slots, width]: per slot, then broadcast or gathered
        return e * (mask if self.one_slot_per_field else mask[self.slots(x)])

    # -- export -------------------------------------------------------------------------------
    @torch.no_grad()
    def effective_table(self) -> torch.Tensor:
        """The whole table after the row transform (pruned rows zeroed)."""
        rows = torch.arange(self.table.shape[0], device=self.table.device)
        return self.transform_rows(self.table, rows).detach()

    def block_tensors(self, cand: Candidate) -> dict[str, torch.Tensor]:
        """The candidate's blocks in the export layout of ``MixedDimEmbedding`` (pad: no
        projections): ``emb.<field>.<group>`` = first ``d`` columns of the block's rows."""
        table = self.effective_table()
        with torch.no_grad():  # the selection's scales, folded into its columns
            factors = self.slot_mask(self.dims_of(cand))  # [n_slots, width]
        out: dict[str, torch.Tensor] = {}
        slot = 0
        for f, (name, groups) in enumerate(zip(self.names, self.groups)):
            base = int(self.offsets[f])
            for g, ((a, b), d) in enumerate(zip(groups, cand[f])):
                if d > 0:
                    block = table[base + a : base + b, : int(d)] * factors[slot, : int(d)]
                    out[f"emb.{name}.{g}"] = block.detach().clone()
                slot += 1
        return out
