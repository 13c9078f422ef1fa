"""Table modules, one per block kind (``blocks.py`` gives each kind's paper and layout).

Each module maps a block's local ids ``[n]`` (``0..rows-1``) to fp32 vectors ``[n, dim]``,
trains like an embedding, and exports to plain tensors named ``<prefix>.<part>`` with the
parts :meth:`embsearch.blocks.BlockSpec.parts` lists (so their bytes are the spec's bytes);
:meth:`load` reads them back and lookups then give exactly the exported table's vectors.
"""

from __future__ import annotations

import torch
from torch import nn

from embsearch.blocks import FLOAT_DTYPE, HASH_PRIME, BlockSpec, map_dtype
from embsearch.embeddings.rows import Rows, round_rows
from embsearch.errors import ConfigError


def hash_rows(ids: torch.Tensor, a: int, b: int, m: int) -> torch.Tensor:
    """The ``hash`` kind's row of each local id: ``((a * id + b) mod (2**31 - 1)) mod m``
    (int64 throughout: ``a * id`` stays below 2**62 for ids below 2**31)."""
    return ((ids * a + b) % HASH_PRIME) % m


class BlockTable(nn.Module):
    """A block of any kind; subclasses set the tables and :meth:`forward`."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        self.spec = spec

    def id_tables(self) -> list[nn.Parameter]:
        """The row tables (the backbone's ``embedding_regularizer`` penalises these)."""
        return [m.weight for m in self.modules() if isinstance(m, Rows)]

    def export(self, prefix: str) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name, rows in self.named_children():
            if isinstance(rows, Rows):
                out.update({f"{prefix}.{k}": v for k, v in rows.export(name).items()})
        return out

    def load(self, prefix: str, tensors: dict[str, torch.Tensor]) -> None:
        """Store the exported tensors ``<prefix>.<part>``. A ``full`` block also takes one
        fp32 tensor named ``<prefix>`` (a dims-only export, or a supernet's sub-network) as
        its master weights, to train on."""
        if prefix in tensors and isinstance(self, FullTable):
            with torch.no_grad():
                self.weight.weight.copy_(tensors[prefix])
            return
        parts = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
        for name, rows in self.named_children():
            if isinstance(rows, Rows):
                rows.load_parts(parts, name)


class FullTable(BlockTable):
    """``full``: one row per id (stored as part ``weight``)."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__(spec)
        self.weight = Rows(spec.rows, spec.dim, spec.precision)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.weight(ids)


class HashTable(BlockTable):
    """``hash``: ``m`` rows shared through :func:`hash_rows`."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__(spec)
        self.weight = Rows(spec.m, spec.dim, spec.precision)
        if (
            spec.rows > 1
            and hash_rows(torch.arange(spec.rows), spec.a, spec.b, spec.m).unique().numel() == 1
        ):
            raise ConfigError(
                f"the hash (a={spec.a}, b={spec.b}) sends all {spec.rows} ids to one of "
                f"{spec.m} rows; use another seed or a larger m"
            )

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.weight(hash_rows(ids, self.spec.a, self.spec.b, self.spec.m))


class QRTable(BlockTable):
    """``qr`` (Shi et al. 2020): quotient row ``id // c`` and remainder row ``id % c``,
    concatenated, added or multiplied elementwise. ``mult`` starts both tables at std 0.1
    (their product at about the other kinds' 0.01)."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__(spec)
        dq, dr = spec.qr_dims
        std = 0.1 if spec.op == "mult" else 0.01
        self.q = Rows(-(-spec.rows // spec.c), dq, spec.precision, std)
        self.r = Rows(spec.c, dr, spec.precision, std)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        q = self.q(torch.div(ids, self.spec.c, rounding_mode="floor"))
        r = self.r(ids % self.spec.c)
        if self.spec.op == "concat":
            return torch.cat([q, r], -1)
        return q + r if self.spec.op == "add" else q * r


class MEmComTable(BlockTable):
    """``memcom`` (Pansare et al. 2022): shared row ``id mod m`` times a per-id scalar
    (part ``scalar``, starting at 1; fp16 in an integer block)."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__(spec)
        self.weight = Rows(spec.m, spec.dim, spec.precision)
        self.scalar = nn.Parameter(torch.ones(spec.rows))
        self.scalar_precision = "fp32" if spec.precision == "fp32" else "fp16"

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        s = self.scalar.index_select(0, ids).to(torch.float32)
        if not self.training:
            s = round_rows(s, self.scalar_precision)
        return self.weight(ids % self.spec.m) * s.unsqueeze(-1)

    def export(self, prefix: str) -> dict[str, torch.Tensor]:
        dtype = getattr(torch, FLOAT_DTYPE[self.scalar_precision])
        return {**super().export(prefix), f"{prefix}.scalar": self.scalar.detach().to(dtype)}

    def load(self, prefix: str, tensors: dict[str, torch.Tensor]) -> None:
        super().load(prefix, tensors)
        with torch.no_grad():
            self.scalar.copy_(tensors[f"{prefix}.scalar"].to(torch.float32))


class PrunedTable(BlockTable):
    """``pruned``: ``kept`` rows and an id -> row map (buffer ``map``, -1: the zero vector).
    It starts keeping ids ``0..kept-1`` (the most frequent: ids are frequency-ranked); a
    controller that learns which rows to keep sets the map (:meth:`set_kept`)."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__(spec)
        self.weight = Rows(spec.kept, spec.dim, spec.precision)
        ids = torch.arange(spec.rows)
        self.register_buffer("map", torch.where(ids < spec.kept, ids, -1).to(self._map_dtype))

    @property
    def _map_dtype(self) -> torch.dtype:
        return getattr(torch, map_dtype(self.spec.kept))

    def set_kept(self, keep: torch.Tensor) -> None:
        """Keep the ids where the boolean ``keep [rows]`` holds (exactly ``kept`` of them)."""
        if int(keep.sum()) != self.spec.kept:
            raise ValueError(f"keep marks {int(keep.sum())} ids, the block keeps {self.spec.kept}")
        rank = keep.long().cumsum(0) - 1
        self.map.copy_(torch.where(keep, rank, -1).to(self._map_dtype))

    def set_map(self, row_map: torch.Tensor) -> None:
        """Use ``row_map [rows]`` (the block's map dtype, rows ``-1..kept-1``; a plan's learned
        map, ``Plan.row_maps``) as the id -> row map."""
        if tuple(row_map.shape) != (self.spec.rows,) or row_map.dtype != self._map_dtype:
            raise ValueError(
                f"map {row_map.dtype}{list(row_map.shape)}, the block needs "
                f"{self._map_dtype}[{self.spec.rows}]"
            )
        self.map.copy_(row_map)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        row = self.map.index_select(0, ids).long()
        hit = row >= 0
        if self.spec.kept == 0:
            return torch.zeros(*ids.shape, self.spec.dim, device=ids.device)
        return self.weight(row.clamp(min=0)) * hit.unsqueeze(-1)

    def export(self, prefix: str) -> dict[str, torch.Tensor]:
        return {**super().export(prefix), f"{prefix}.map": self.map.clone()}

    def load(self, prefix: str, tensors: dict[str, torch.Tensor]) -> None:
        super().load(prefix, tensors)
        self.map.copy_(tensors[f"{prefix}.map"])


TABLES: dict[str, type[BlockTable]] = {
    "full": FullTable,
    "hash": HashTable,
    "qr": QRTable,
    "memcom": MEmComTable,
    "pruned": PrunedTable,
}


def make_table(spec: BlockSpec) -> BlockTable:
    """The module of ``spec``'s kind."""
    return TABLES[spec.kind](spec)
