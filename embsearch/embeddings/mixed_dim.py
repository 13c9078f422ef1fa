"""Mixed-dimension embedding table: per-(field, frequency group) dims, projected to one width.

Storage: all blocks that share a dim live in one table, so a forward pass costs one gather
per *distinct* dim (one fused gather for a uniform table, the full-size table included).
A field's blocks of dim ``d < width`` share one ``d x width`` projection (AutoEmb's and
MDE's structure); with ``projection='pad'`` vectors are zero-padded instead (DNIS, RULE).

Exported layout (``export.py``) names one tensor per block, ``emb.<field>.<group>``, and one
per projection, ``proj.<field>.<dim>``, which plain torch can use without embsearch.
"""

from __future__ import annotations

import torch
from torch import nn

from embsearch.plan import Plan


class MixedDimEmbedding(nn.Module):
    """Embeds ``x: int64 [batch, fields]`` into ``[batch, fields, width]`` following a plan."""

    def __init__(self, plan: Plan) -> None:
        super().__init__()
        self.plan = plan
        self.width = plan.width
        self.projection = plan.projection
        n_fields = len(plan.fields)
        max_groups = max(len(f.groups) for f in plan.fields)
        self.grouped = max_groups > 1
        self.dims = sorted({g.dim for f in plan.fields for g in f.groups if g.dim > 0})
        cls_of = {d: i for i, d in enumerate(self.dims)}

        block_class = torch.full((n_fields, max_groups), -1, dtype=torch.long)
        block_offset = torch.zeros((n_fields, max_groups), dtype=torch.long)
        bounds = torch.full((n_fields, max(max_groups - 1, 1)), 2**62, dtype=torch.long)
        rows_in_class = [0] * len(self.dims)
        for f, fp in enumerate(plan.fields):
            for g, grp in enumerate(fp.groups):
                if g > 0:
                    bounds[f, g - 1] = grp.start
                if grp.dim > 0:
                    c = cls_of[grp.dim]
                    block_class[f, g] = c
                    block_offset[f, g] = rows_in_class[c] - grp.start
                    rows_in_class[c] += grp.rows
        self.register_buffer("block_class", block_class, persistent=False)
        self.register_buffer("block_offset", block_offset, persistent=False)
        self.register_buffer("bounds", bounds, persistent=False)

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

    def reset_parameters(self) -> None:
        for t in self.tables:
            nn.init.normal_(t, std=0.01)
        for c, p in enumerate(self.projections):
            if self._projected[c]:
                nn.init.normal_(p, std=(1.0 / self.dims[c]) ** 0.5)

    def group_index(self, x: torch.Tensor) -> torch.Tensor:
        """Frequency group of every id, ``[batch, fields]``."""
        if not self.grouped:
            return torch.zeros_like(x)
        return torch.searchsorted(self.bounds, x.t().contiguous(), right=True).t()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, n_fields = x.shape
        g = self.group_index(x)
        cls = (
            self.block_class.gather(1, g.t()).t()
            if self.grouped
            else self.block_class[:, 0].expand(batch, -1)
        )
        off = (
            self.block_offset.gather(1, g.t()).t()
            if self.grouped
            else self.block_offset[:, 0].expand(batch, -1)
        )
        if len(self.dims) == 1 and not self._projected[0] and bool((self.block_class >= 0).all()):
            # Fused path: one gather for every field (uniform and full-size tables).
            e = self.tables[0][x + off]
            return (
                e
                if self.dims[0] == self.width
                else nn.functional.pad(e, (0, self.width - self.dims[0]))
            )
        out = x.new_zeros(
            (batch, n_fields, self.width),
            dtype=self.tables[0].dtype if self.dims else torch.float32,
        )
        for c, d in enumerate(self.dims):
            fields_c = getattr(self, f"class_fields_{c}")
            m = cls[:, fields_c] == c
            rows = torch.where(
                m, x[:, fields_c] + off[:, fields_c], torch.zeros_like(x[:, fields_c])
            )
            e = self.tables[c][rows] * m.unsqueeze(-1).to(self.tables[c].dtype)
            if self._projected[c]:
                y = torch.einsum("bfd,fdk->bfk", e, self.projections[c])
            elif d != self.width:
                y = nn.functional.pad(e, (0, self.width - d))
            else:
                y = e
            out = out.index_add(1, fields_c, y.to(out.dtype))
        return out

    # -- export layout ---------------------------------------------------------------------
    def block_tensors(self) -> dict[str, torch.Tensor]:
        """One tensor per block and per projection, named as in the export format."""
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
    def load(cls, directory: str) -> MixedDimEmbedding:
        """Rebuild the module from an export directory (``plan.json`` + ``weights.safetensors``)."""
        from embsearch.export import load_embedding

        return load_embedding(directory)
