"""One table of rows at a precision (fp32, fp16, row-wise int8): trains, looks up, exports.

Training keeps fp32 master weights. In eval mode a lookup returns what the exported table
gives: rows rounded to fp16, or quantised row-wise to int8 and dequantised (post-training
quantisation, applied to the gathered rows: row-wise quantisation of a row depends on that
row alone, so it equals quantising the table first). :meth:`Rows.export` writes the plan's
dtypes (``blocks.row_parts``); :meth:`Rows.load_parts` keeps them as they are (fp16 weights,
or uint8 codes with their scale and offset) and dequantises on lookup.

Row-wise int8 (FBGEMM's fused 8-bit row-wise layout): ``scale = (max - min) / 255`` and
``offset = min`` per row, code ``round((x - offset) / scale)`` in ``0..255``, value
``code * scale + offset``: within half a step (``scale / 2``) of the original. A row whose
weights are all equal has ``scale = 0`` and is stored exactly (code 0, offset its value).
"""

from __future__ import annotations

import torch
from torch import nn

from embsearch.blocks import check_precision


def quantise_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Row-wise int8 of ``x [..., d]``: uint8 codes, fp32 scale and offset ``[...]``."""
    lo = x.amin(-1)
    scale = (x.amax(-1) - lo) / 255.0
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))  # zero range: code 0
    codes = ((x - lo.unsqueeze(-1)) / safe.unsqueeze(-1)).round().clamp(0, 255)
    return codes.to(torch.uint8), scale, lo


def dequantise_rows(codes: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """fp32 values of row-wise int8 ``codes`` (inverse of :func:`quantise_rows`)."""
    return codes.to(torch.float32) * scale.unsqueeze(-1) + offset.unsqueeze(-1)


def round_rows(x: torch.Tensor, precision: str) -> torch.Tensor:
    """``x`` as the exported table stores it, back in fp32."""
    if precision == "fp16":
        return x.to(torch.float16).to(torch.float32)
    if precision == "int8":
        return dequantise_rows(*quantise_rows(x))
    return x


class Rows(nn.Module):
    """A ``rows x dim`` table at ``precision``; ``forward(idx)`` gives ``[*idx.shape, dim]``
    fp32 vectors."""

    def __init__(self, rows: int, dim: int, precision: str = "fp32", std: float = 0.01) -> None:
        super().__init__()
        self.precision = check_precision(precision)
        self.dim = dim
        self.weight = nn.Parameter(torch.empty(rows, dim))
        self.std = std
        self.packed = False  # True once load_parts stored the exported dtypes
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, std=self.std)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        flat = idx.reshape(-1)
        if self.packed and self.precision == "int8":
            e = dequantise_rows(
                self.codes.index_select(0, flat),
                self.scale.index_select(0, flat),
                self.offset.index_select(0, flat),
            )
        else:
            e = self.weight.index_select(0, flat)
            if self.packed:
                e = e.to(torch.float32)
            elif not self.training:
                e = round_rows(e, self.precision)
        return e.view(*idx.shape, self.dim)

    def export(self, name: str = "weight") -> dict[str, torch.Tensor]:
        """The table in its exported dtypes (names as ``blocks.row_parts``)."""
        if self.packed:
            w = self.codes if self.precision == "int8" else self.weight
        else:
            w = self.weight.detach()
        if self.precision == "fp16":
            return {name: w.to(torch.float16)}
        if self.precision == "fp32":
            return {name: w.to(torch.float32)}
        pre = "" if name == "weight" else f"{name}_"
        if self.packed:
            return {name: w, f"{pre}scale": self.scale, f"{pre}offset": self.offset}
        codes, scale, offset = quantise_rows(w)
        return {name: codes, f"{pre}scale": scale, f"{pre}offset": offset}

    def load_parts(self, parts: dict[str, torch.Tensor], name: str = "weight") -> None:
        """Store the exported tensors as they are (inverse of :meth:`export`); lookups then
        dequantise them."""
        w = parts[name]
        if tuple(w.shape) != tuple(self.weight.shape):
            raise ValueError(f"{name}: shape {tuple(w.shape)}, expected {tuple(self.weight.shape)}")
        if self.precision == "int8":
            pre = "" if name == "weight" else f"{name}_"
            self.register_buffer("codes", w.to(torch.uint8).clone())
            self.register_buffer("scale", parts[f"{pre}scale"].to(torch.float32).clone())
            self.register_buffer("offset", parts[f"{pre}offset"].to(torch.float32).clone())
            self.weight = nn.Parameter(torch.empty(0, self.dim), requires_grad=False)
        else:
            dtype = torch.float16 if self.precision == "fp16" else torch.float32
            self.weight = nn.Parameter(w.to(dtype).clone(), requires_grad=self.precision == "fp32")
        self.packed = True
