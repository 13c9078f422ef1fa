"""The embedding of a plan whose blocks have kinds or precisions (format 2, ``plan.py``).

One table module per (field, group) block (``tables.py``); a field's blocks of dim
``d < width`` share one ``d x width`` projection (stored in the plan's float precision,
``blocks.projection_dtype``), or are zero-padded when the plan's projection is ``pad``.
A forward pass calls each block once on its field's ids (the ids of other groups masked to
zero), so it costs one lookup per block: a few dozen calls for a whole batch, none per sample.

Exported names: ``emb.<field>.<group>.<part>`` per block part (``blocks.BlockSpec.parts``)
and ``proj.<field>.<dim>`` per projection.

A ``pruned`` block takes its id -> row map from ``plan.row_maps`` when the plan has learned
ones (OptEmbed's), fixed while the table trains; otherwise the kind's default (the first
``kept`` ids), which an export's own maps then replace (:meth:`load_block_tensors`).
"""

from __future__ import annotations

import torch
from torch import nn

from embsearch.blocks import projection_dtype
from embsearch.embeddings.rows import round_rows
from embsearch.embeddings.tables import BlockTable, PrunedTable, make_table
from embsearch.errors import ConfigError
from embsearch.plan import Plan
from embsearch.row_maps import map_name


class BlockEmbedding(nn.Module):
    """Embeds ``x: int64 [batch, fields]`` into ``[batch, fields, width]`` block by block."""

    def __init__(self, plan: Plan) -> None:
        super().__init__()
        self.plan = plan
        self.width = plan.width
        self.linear = plan.projection == "linear"
        self.proj_precision = "fp32" if projection_dtype(plan.precision) == "float32" else "fp16"
        self.blocks = nn.ModuleDict()
        self.projections = nn.ParameterDict()
        self._layout: list[list[tuple[str, int, int, int]]] = []  # per field: key, start, stop, dim
        for f, fp in enumerate(plan.fields):
            layout = []
            for g, grp in enumerate(fp.groups):
                if grp.dim > 0:
                    key = f"{f}_{g}"
                    self.blocks[key] = make_table(plan.block_spec(fp, g))
                    layout.append((key, grp.start, grp.stop, grp.dim))
            self._layout.append(layout)
            for d in sorted({d for d in fp.dims if 0 < d != self.width}) if self.linear else []:
                p = nn.Parameter(torch.empty(d, self.width))
                nn.init.normal_(p, std=(1.0 / d) ** 0.5)
                self.projections[f"{f}_{d}"] = p
        self._set_row_maps(plan)

    def _set_row_maps(self, plan: Plan) -> None:
        """The plan's learned id -> row maps into its pruned blocks (module docstring)."""
        if plan.row_maps is None:
            if plan.row_maps_ref:
                raise ConfigError(
                    "the plan names id->row maps that were not read with it; load it with "
                    "Plan.load(path), which reads them"
                )
            return
        for f, fp in enumerate(plan.fields):
            for g in range(len(fp.groups)):
                block = self.blocks[f"{f}_{g}"] if f"{f}_{g}" in self.blocks else None
                if isinstance(block, PrunedTable):
                    block.set_map(torch.from_numpy(plan.row_maps[map_name(fp.name, g)]))

    def table_weights(self) -> list[nn.Parameter]:
        return [w for b in self.blocks.values() for w in b.id_tables()]  # type: ignore[union-attr]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        out = []
        for f, layout in enumerate(self._layout):
            ids = x[:, f]
            v = x.new_zeros((batch, self.width), dtype=torch.float32)
            for key, start, stop, d in layout:
                block: BlockTable = self.blocks[key]  # type: ignore[assignment]
                if start == 0 and stop == self.plan.fields[f].rows:
                    e = block(ids)
                else:
                    inside = (ids >= start) & (ids < stop)
                    e = block(torch.where(inside, ids - start, 0)) * inside.unsqueeze(-1)
                v = v + self._to_width(f, e, d)
            out.append(v)
        return torch.stack(out, 1)

    def _to_width(self, f: int, e: torch.Tensor, d: int) -> torch.Tensor:
        if d == self.width:
            return e
        if not self.linear:
            return nn.functional.pad(e, (0, self.width - d))
        p = self.projections[f"{f}_{d}"].to(torch.float32)
        if not self.training:
            p = round_rows(p, self.proj_precision)
        return e @ p

    def block_tensors(self) -> dict[str, torch.Tensor]:
        """Every exported tensor (names in the module docstring), in its stored dtype."""
        out: dict[str, torch.Tensor] = {}
        dtype = getattr(torch, projection_dtype(self.plan.precision))
        for f, fp in enumerate(self.plan.fields):
            for g in range(len(fp.groups)):
                if f"{f}_{g}" in self.blocks:
                    out.update(self.blocks[f"{f}_{g}"].export(f"emb.{fp.name}.{g}"))  # type: ignore[operator]
            for d in sorted({d for d in fp.dims if 0 < d != self.width}) if self.linear else []:
                out[f"proj.{fp.name}.{d}"] = self.projections[f"{f}_{d}"].detach().to(dtype)
        return out

    def load_block_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`block_tensors`: blocks keep the exported dtypes."""
        for f, fp in enumerate(self.plan.fields):
            for g in range(len(fp.groups)):
                if f"{f}_{g}" in self.blocks:
                    self.blocks[f"{f}_{g}"].load(f"emb.{fp.name}.{g}", tensors)  # type: ignore[operator]
            for d in sorted({d for d in fp.dims if 0 < d != self.width}) if self.linear else []:
                w = tensors[f"proj.{fp.name}.{d}"]
                self.projections[f"{f}_{d}"] = nn.Parameter(
                    w.clone(), requires_grad=w.is_floating_point() and w.dtype == torch.float32
                )
