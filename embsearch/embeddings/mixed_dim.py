"""Mixed-dimension embedding table: per-(field, frequency group) dims, projected to one width.

Storage: all blocks that share a dim live in one table, so a forward pass costs one gather
per *distinct* dim (one fused gather for a uniform table, the full-size table included).
A field's blocks of dim ``d < width`` share one ``d x width`` projection (AutoEmb's and
MDE's structure); with ``projection='pad'`` vectors are zero-padded instead (DNIS, RULE).

Plans with block kinds or a precision other than fp32 (format 2) are served block by block
by :class:`~embsearch.embeddings.block_embedding.BlockEmbedding`, which this module wraps.

Exported layout (``export.py``) names one tensor per block, ``emb.<field>.<group>`` (format
2: ``emb.<field>.<group>.<part>``), and one per projection, ``proj.<field>.<dim>``, which plain torch can use without embsearch;
:func:`load_embedding` reads it back (it needs torch, safetensors and the plan, nothing of
the search).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from embsearch.embeddings.block_embedding import BlockEmbedding
from embsearch.errors import RunDirError
from embsearch.plan import Plan


class MixedDimEmbedding(nn.Module):
    """Embeds ``x: int64 [batch, fields]`` into ``[batch, fields, width]`` following a plan."""

    def __init__(self, plan: Plan) -> None:
        super().__init__()
        self.plan = plan
        self.width = plan.width
        self.projection = plan.projection
        # A plan with kinds or another precision than fp32 goes block by block (format 2).
        self.block_path = None
        if plan.precision != "fp32" or not plan.dims_only:
            self.block_path = BlockEmbedding(plan)
            self.dims: list[int] = []
            return
        n_fields = len(plan.fields)
        max_groups = max(len(f.groups) for f in plan.fields)
        self.grouped = max_groups > 1
        self.dims = sorted({g.dim for f in plan.fields for g in f.groups if g.dim > 0})
        cls_of = {d: i for i, d in enumerate(self.dims)}

        block_class = torch.full((n_fields, max_groups), -1, dtype=torch.long)
        block_offset = torch.zeros((n_fields, max_groups), dtype=torch.long)
        rows_in_class = [0] * len(self.dims)
        for f, fp in enumerate(plan.fields):
            for g, grp in enumerate(fp.groups):
                if grp.dim > 0:
                    c = cls_of[grp.dim]
                    block_class[f, g] = c
                    block_offset[f, g] = rows_in_class[c] - grp.start
                    rows_in_class[c] += grp.rows
        self.register_buffer("block_class", block_class, persistent=False)
        self.register_buffer("block_offset", block_offset, persistent=False)
        # Grouped plans: per row of all fields' ids laid end to end (id + field_base[f]), its
        # dim class and its row in that class's table, so the grouped forward needs two
        # integer gathers rather than a search over group bounds (int8/int32: these are
        # not budgeted, and int64 would outweigh a small table's own bytes).
        field_rows = [fp.rows for fp in plan.fields]
        field_base = torch.tensor([0, *field_rows[:-1]], dtype=torch.long).cumsum(0)
        n_rows = sum(field_rows) if self.grouped else 0
        pos_dtype = torch.int32 if n_rows < 2**31 else torch.long
        row_class = torch.full((n_rows,), -1, dtype=torch.int8)
        row_pos = torch.zeros(n_rows, dtype=pos_dtype)
        for f, fp in enumerate(plan.fields if self.grouped else []):
            for g, grp in enumerate(fp.groups):
                a, b = int(field_base[f]) + grp.start, int(field_base[f]) + grp.stop
                row_class[a:b] = int(block_class[f, g])
                row_pos[a:b] = (torch.arange(grp.start, grp.stop) + int(block_offset[f, g])).to(
                    pos_dtype
                )
        self.register_buffer("field_base", field_base, persistent=False)
        self.register_buffer("row_class", row_class, persistent=False)
        self.register_buffer("row_pos", row_pos, persistent=False)
        # Without groups every field has one class (or none: dim 0): the forward gathers
        # each class's fields and stacks them in field order (zeros for dim-0 fields).
        self.n_zero_fields = sum(1 for f in range(n_fields) if int(block_class[f, 0]) < 0)

        self.tables = nn.ParameterList()
        self.projections = nn.ParameterList()
        self._class_fields: list[list[int]] = []
        self._projected: list[bool] = []
        for c, d in enumerate(self.dims):
            fields_c = [f for f, fp in enumerate(plan.fields) if d in fp.dims]
            self._class_fields.append(fields_c)
            self.register_buffer(
                f"class_fields_{c}", torch.tensor(fields_c, dtype=torch.long), persistent=False
            )
            self.tables.append(nn.Parameter(torch.empty(rows_in_class[c], d)))
            projected = self.projection == "linear" and d != self.width
            self._projected.append(projected)
            shape = (len(fields_c), d, self.width) if projected else (0,)
            self.projections.append(nn.Parameter(torch.empty(shape), requires_grad=projected))
        self.reset_parameters()

    def table_weights(self) -> list[nn.Parameter]:
        """The id-indexed weights (one fused table per dim; the projections are not), which
        the backbone's ``embedding_regularizer`` penalises."""
        if self.block_path is not None:
            return self.block_path.table_weights()
        return list(self.tables)

    def reset_parameters(self) -> None:
        for t in self.tables:
            nn.init.normal_(t, std=0.01)
        for c, p in enumerate(self.projections):
            if self._projected[c]:
                nn.init.normal_(p, std=(1.0 / self.dims[c]) ** 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.block_path is not None:
            return self.block_path(x)
        batch, n_fields = x.shape
        if not self.dims:
            return x.new_zeros((batch, n_fields, self.width), dtype=torch.float32)
        if len(self.dims) == 1 and not self._projected[0] and bool((self.block_class >= 0).all()):
            # Fused path: one gather for every field (uniform and full-size tables).
            return self._lookup(0, x + self.field_base)
        # The other paths work field-major ([fields, batch, ...]: each field's slice is
        # contiguous, so per-class gathers, projections and sums need no copies) and
        # transpose once at the end.
        xt = x.t()
        if self.grouped:
            return self._forward_grouped(xt).transpose(0, 1)
        # Each class's [n, B, width] output is unbound into per-field views and stacked in
        # field order along dim 1: one copy into a contiguous [B, fields, width] (the
        # backbone's flatten needs none), whose backward is one copy too (a concatenation
        # put back in field order by index_select would scatter its gradient into zeros).
        off = self.block_offset[:, 0].unsqueeze(1)
        views: list[torch.Tensor | None] = [None] * n_fields
        for c in range(len(self.dims)):
            fields_c = getattr(self, f"class_fields_{c}")
            part = self._lookup(c, xt.index_select(0, fields_c) + off[fields_c])
            for f, v in zip(self._class_fields[c], part.unbind(0)):
                views[f] = v
        if self.n_zero_fields:
            zero = part.new_zeros((batch, self.width))
            views = [zero if v is None else v for v in views]
        return torch.stack(views, 1)  # type: ignore[arg-type]

    def _lookup(self, c: int, rows: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Rows ``rows [n, B]`` of class ``c``'s table (``n``: the class's fields, in order;
        the fused path passes ``[B, F]``), zeroed where ``keep`` is False, projected (or
        padded) to the width: ``[n, B, width]``."""
        d = self.dims[c]
        e = self.tables[c].index_select(0, rows.reshape(-1)).view(*rows.shape, d)
        if keep is not None:
            e = e * keep.unsqueeze(-1).to(e.dtype)
        if self._projected[c]:
            return torch.bmm(e, self.projections[c])
        return e if d == self.width else nn.functional.pad(e, (0, self.width - d))

    def _forward_grouped(self, xt: torch.Tensor) -> torch.Tensor:
        """Ids of one field may sit in blocks of several dims: every class looks up all its
        fields' ids, zeroes those of other classes and adds its share (field-major)."""
        n_fields, batch = xt.shape
        joint = (xt + self.field_base.unsqueeze(1)).reshape(-1)
        cls = self.row_class.index_select(0, joint).view(n_fields, batch)
        pos = self.row_pos.index_select(0, joint).view(n_fields, batch)
        out: torch.Tensor | None = None
        for c in range(len(self.dims)):
            fields_c = getattr(self, f"class_fields_{c}")
            whole = len(self._class_fields[c]) == n_fields
            m = (cls if whole else cls.index_select(0, fields_c)) == c
            rows = (pos if whole else pos.index_select(0, fields_c)) * m
            y = self._lookup(c, rows, m)
            if whole:
                out = y if out is None else out + y
            else:
                if out is None:
                    out = y.new_zeros((n_fields, batch, self.width))
                out = out.index_add(0, fields_c, y)
        assert out is not None
        return out

    # -- export layout ---------------------------------------------------------------------
    def block_tensors(self) -> dict[str, torch.Tensor]:
        """One tensor per block and per projection, named as in the export format."""
        if self.block_path is not None:
            return self.block_path.block_tensors()
        out: dict[str, torch.Tensor] = {}
        cls_of = {d: i for i, d in enumerate(self.dims)}
        for f, fp in enumerate(self.plan.fields):
            for g, grp in enumerate(fp.groups):
                if grp.dim > 0:
                    c = cls_of[grp.dim]
                    start = int(self.block_offset[f, g]) + grp.start
                    out[f"emb.{fp.name}.{g}"] = self.tables[c][start : start + grp.rows].detach()
            for d in sorted({d for d in fp.dims if d > 0}):
                c = cls_of[d]
                if self._projected[c]:
                    k = self._class_fields[c].index(f)
                    out[f"proj.{fp.name}.{d}"] = self.projections[c][k].detach()
        return out

    def load_block_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`block_tensors`."""
        if self.block_path is not None:
            return self.block_path.load_block_tensors(tensors)
        cls_of = {d: i for i, d in enumerate(self.dims)}
        with torch.no_grad():
            for f, fp in enumerate(self.plan.fields):
                for g, grp in enumerate(fp.groups):
                    if grp.dim > 0:
                        c = cls_of[grp.dim]
                        start = int(self.block_offset[f, g]) + grp.start
                        self.tables[c][start : start + grp.rows].copy_(
                            tensors[f"emb.{fp.name}.{g}"]
                        )
                for d in sorted({d for d in fp.dims if d > 0}):
                    c = cls_of[d]
                    if self._projected[c]:
                        k = self._class_fields[c].index(f)
                        self.projections[c][k].copy_(tensors[f"proj.{fp.name}.{d}"])

    @classmethod
    def load(cls, directory: str | Path) -> MixedDimEmbedding:
        """Rebuild the module from an export directory (``plan.json`` + ``weights.safetensors``)."""
        return load_embedding(directory)


def load_embedding(directory: str | Path) -> MixedDimEmbedding:
    """``MixedDimEmbedding`` rebuilt from an export directory (``plan.json`` +
    ``weights.safetensors``, as ``embsearch export`` writes them)."""
    directory = Path(directory)
    if not (directory / "weights.safetensors").is_file():
        raise RunDirError(
            f"{directory} holds no weights.safetensors; create it with `embsearch export`"
        )
    emb = MixedDimEmbedding(Plan.load(directory / "plan.json"))
    try:
        emb.load_block_tensors(load_file(str(directory / "weights.safetensors")))
    except (KeyError, ValueError, RuntimeError) as exc:  # a tensor missing or misshapen
        raise RunDirError(
            f"{directory / 'weights.safetensors'} does not match its plan.json ({exc}); "
            "export the run again"
        ) from None
    return emb
