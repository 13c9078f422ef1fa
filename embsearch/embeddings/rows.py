"""One table of rows at a precision (fp32, fp16, row-wise int8, column-wise int8c/int4c):
trains, looks up, exports.

Training keeps fp32 master weights. In eval mode a lookup returns what the exported table
gives: rows rounded to fp16, or quantised row-wise to int8 and dequantised (post-training
quantisation, applied to the gathered rows: row-wise quantisation of a row depends on that
row alone, so it equals quantising the table first), or quantised column-wise with the
*whole table's* column scales (computed once per weight update, :meth:`Rows.column_params`).
:meth:`Rows.export` writes the plan's dtypes (``blocks.row_parts``); :meth:`Rows.load_parts`
keeps them as they are (fp16 weights, or uint8 codes with their scales and offsets, int4c's
two codes a byte) and dequantises on lookup.

Row-wise int8 (FBGEMM's fused 8-bit row-wise layout): ``scale = (max - min) / 255`` and
``offset = min`` per row, code ``round((x - offset) / scale)`` in ``0..255``, value
``code * scale + offset``: within half a step (``scale / 2``) of the original. A row whose
weights are all equal has ``scale = 0`` and is stored exactly (code 0, offset its value).

Column-wise ``int8c`` / ``int4c`` (an extension, ``blocks.py``: one scale per column, not per
row): the same affine code per *column* of the table, ``scale = (max - min) / (2**bits - 1)``
over all its rows, so within half a step of the original too, and a constant column is
stored exactly. ``int4c`` packs column ``2j`` in the low nibble of byte ``j`` and ``2j + 1``
in the high one (:func:`pack_nibbles`).

Quantisation-aware training (an extension for the column-wise precisions, ``qat``: 16 levels
a column lose too much when a table trained in fp32 is rounded after training): in training
mode the gathered rows are fake-quantised with the current table's column scales and the
gradient passes straight through (the straight-through estimator), so the model learns the
weights the export stores. The column range while training is exact every
:data:`QAT_REFRESH` steps and widened by each batch's rows in between (so no gathered row is
clipped); eval mode always uses the exact range of the table it exports.
"""

from __future__ import annotations

import torch
from torch import nn

from embsearch.blocks import COLUMNWISE, check_precision

#: whether column-wise tables train quantisation-aware by default (module docstring)
COLUMNWISE_QAT = True
#: training steps between exact passes over a QAT table for its column range; in between the
#: range only widens to cover each batch's rows (one pass over a 1M x 16 table costs about
#: 0.7 of a fused Adam step on it, so a pass every step would slow training by half)
QAT_REFRESH = 32


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


def column_params(table: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 scale and offset ``[d]`` of each column of ``table [n, d]`` at ``bits``."""
    t = table.detach().to(torch.float32)
    if t.shape[0] == 0:
        zero = torch.zeros(t.shape[1], device=t.device)
        return zero, zero.clone()
    lo, hi = torch.aminmax(t, dim=0)  # one pass over the table
    return (hi - lo) / float(2**bits - 1), lo


def quantise_columns(
    x: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor, bits: int
) -> torch.Tensor:
    """Codes ``0 .. 2**bits - 1`` (uint8, one a weight) of rows ``x [..., d]`` under the
    column ``scale`` and ``offset [d]`` (a zero-range column: code 0)."""
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    return ((x.to(torch.float32) - offset) / safe).round().clamp(0, 2**bits - 1).to(torch.uint8)


def dequantise_columns(
    codes: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor
) -> torch.Tensor:
    """fp32 values of column-wise ``codes [..., d]`` (inverse of :func:`quantise_columns`)."""
    return codes.to(torch.float32) * scale + offset


def pack_nibbles(codes: torch.Tensor) -> torch.Tensor:
    """4-bit ``codes [n, d]`` as ``[n, ceil(d / 2)]`` uint8: column ``2j`` in byte ``j``'s low
    nibble, ``2j + 1`` in its high nibble (0 past an odd ``d``)."""
    if codes.shape[1] % 2:
        codes = nn.functional.pad(codes, (0, 1))
    return codes[:, 0::2] | (codes[:, 1::2] << 4)


def unpack_nibbles(packed: torch.Tensor, dim: int) -> torch.Tensor:
    """Inverse of :func:`pack_nibbles`: codes ``[n, dim]`` (uint8)."""
    return torch.stack([packed & 15, packed >> 4], -1).reshape(packed.shape[0], -1)[:, :dim]


def round_rows(x: torch.Tensor, precision: str) -> torch.Tensor:
    """``x`` as the exported table stores it, back in fp32 (column-wise precisions: ``x``
    is the whole table, ``[n, d]``, its columns quantised over its rows)."""
    if precision == "fp16":
        return x.to(torch.float16).to(torch.float32)
    if precision == "int8":
        return dequantise_rows(*quantise_rows(x))
    if precision in COLUMNWISE:
        bits = COLUMNWISE[precision]
        scale, offset = column_params(x, bits)
        return dequantise_columns(quantise_columns(x, scale, offset, bits), scale, offset)
    return x


def _fake_quantise(
    e: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor, bits: int, grad: bool
) -> torch.Tensor:
    """``e`` rounded to the column codes; with ``grad`` the gradient passes straight through
    (``e + (q - e).detach()``, which may differ from ``q`` in the last bit: eval gives ``q``)."""
    q = dequantise_columns(quantise_columns(e.detach(), scale, offset, bits), scale, offset)
    return e + (q - e).detach() if grad else q


def set_column_qat(module: nn.Module, on: bool) -> None:
    """Turn quantisation-aware training of every column-wise table in ``module`` on or off."""
    for m in module.modules():
        if isinstance(m, Rows):
            m.qat = bool(on) and m.bits > 0


class Rows(nn.Module):
    """A ``rows x dim`` table at ``precision``; ``forward(idx)`` gives ``[*idx.shape, dim]``
    fp32 vectors. ``qat``: column-wise precisions train quantisation-aware (module
    docstring; default :data:`COLUMNWISE_QAT`)."""

    def __init__(
        self,
        rows: int,
        dim: int,
        precision: str = "fp32",
        std: float = 0.01,
        qat: bool | None = None,
    ) -> None:
        super().__init__()
        self.precision = check_precision(precision)
        self.bits = COLUMNWISE.get(precision, 0)  # 0: not column-wise
        self.qat = bool(COLUMNWISE_QAT if qat is None else qat) and self.bits > 0
        self.dim = dim
        self.weight = nn.Parameter(torch.empty(rows, dim))
        self.std = std
        self.packed = False  # True once load_parts stored the exported dtypes
        self._params_at: tuple[int, int] | None = None  # the weight version column_params saw
        self._range: tuple[torch.Tensor, torch.Tensor] | None = None  # QAT's running range
        self._steps = 0
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, std=self.std)

    def column_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The table's exact column scale and offset now (column-wise precisions). In
        training mode they are computed at every call (fused Adam changes the weights without
        bumping their version counter); in eval mode once, until the weights are replaced or
        written in place (a load) or the mode changes (:meth:`train`)."""
        if self.packed:
            return self.scale, self.offset
        at = (self.weight._version, self.weight.data_ptr())
        if self.training or at != self._params_at:
            self._params = column_params(self.weight, self.bits)
            self._params_at = None if self.training else at
        return self._params

    def train(self, mode: bool = True) -> Rows:
        self._params_at = self._range = None  # the weights may change between modes
        return super().train(mode)

    def _training_params(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """QAT's column scale and offset for the gathered rows ``e`` (module docstring)."""
        self._steps += 1
        if self._range is None or self._steps % QAT_REFRESH == 0:
            self._range = torch.aminmax(self.weight.detach(), dim=0)
        elif e.shape[0]:
            lo, hi = torch.aminmax(e.detach(), dim=0)
            self._range = torch.minimum(self._range[0], lo), torch.maximum(self._range[1], hi)
        lo, hi = self._range
        return (hi - lo) / float(2**self.bits - 1), lo

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        flat = idx.reshape(-1)
        if self.packed and self.precision == "int8":
            e = dequantise_rows(
                self.codes.index_select(0, flat),
                self.scale.index_select(0, flat),
                self.offset.index_select(0, flat),
            )
        elif self.packed and self.bits:
            codes = self.codes.index_select(0, flat)
            if self.bits == 4:
                codes = unpack_nibbles(codes, self.dim)
            e = dequantise_columns(codes, self.scale, self.offset)
        else:
            e = self.weight.index_select(0, flat)
            if self.packed:
                e = e.to(torch.float32)
            elif self.bits and self.qat and self.training:
                e = _fake_quantise(e, *self._training_params(e), self.bits, True)
            elif self.bits and not self.training:
                e = _fake_quantise(e, *self.column_params(), self.bits, False)
            elif not self.training:
                e = round_rows(e, self.precision)
        return e.view(*idx.shape, self.dim)

    def export(self, name: str = "weight") -> dict[str, torch.Tensor]:
        """The table in its exported dtypes (names as ``blocks.row_parts``)."""
        if self.packed:
            w = self.codes if self.precision in ("int8", *COLUMNWISE) else self.weight
        else:
            w = self.weight.detach()
        if self.precision == "fp16":
            return {name: w.to(torch.float16)}
        if self.precision == "fp32":
            return {name: w.to(torch.float32)}
        pre = "" if name == "weight" else f"{name}_"
        if self.packed:
            return {name: w, f"{pre}scale": self.scale, f"{pre}offset": self.offset}
        if self.bits:
            scale, offset = column_params(w, self.bits)
            codes = quantise_columns(w, scale, offset, self.bits)
            if self.bits == 4:
                codes = pack_nibbles(codes)
            return {name: codes, f"{pre}scale": scale, f"{pre}offset": offset}
        codes, scale, offset = quantise_rows(w)
        return {name: codes, f"{pre}scale": scale, f"{pre}offset": offset}

    def load_parts(self, parts: dict[str, torch.Tensor], name: str = "weight") -> None:
        """Store the exported tensors as they are (inverse of :meth:`export`); lookups then
        dequantise them."""
        w = parts[name]
        rows = self.weight.shape[0]
        want = (rows, (self.dim + 1) // 2 if self.bits == 4 else self.dim)
        if tuple(w.shape) != want:
            raise ValueError(f"{name}: shape {tuple(w.shape)}, expected {want}")
        if self.precision in ("int8", *COLUMNWISE):
            pre = "" if name == "weight" else f"{name}_"
            self.register_buffer("codes", w.to(torch.uint8).clone())
            self.register_buffer("scale", parts[f"{pre}scale"].to(torch.float32).clone())
            self.register_buffer("offset", parts[f"{pre}offset"].to(torch.float32).clone())
            self.weight = nn.Parameter(torch.empty(0, self.dim), requires_grad=False)
        else:
            dtype = torch.float16 if self.precision == "fp16" else torch.float32
            self.weight = nn.Parameter(w.to(dtype).clone(), requires_grad=self.precision == "fp32")
        self.packed = True
