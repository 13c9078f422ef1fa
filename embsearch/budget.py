"""Byte budgets and the exact byte accounting of an embedding table.

A budget is a byte count (``250000``, ``4MiB``, ``1.5MB``) or a fraction of the full-size
table at the base dimension in fp32 (``10%``, whatever precision the plan stores). Bytes are counted exactly over every tensor the
exported table holds: the embedding rows of every (field, frequency group) block, and one
``dim x width`` projection per (field, distinct dim) when that dim differs from the width.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from embsearch.blocks import BlockSpec, projection_bytes
from embsearch.errors import BudgetError

#: bytes of one weight (int8 rows also store an fp32 scale and offset, int8c/int4c tables one
#: per column, and int4c packs two weights a byte: see ``blocks.py``)
BYTES_PER_WEIGHT = {"fp32": 4, "fp16": 2, "int8": 1, "int8c": 1, "int4c": 0.5}
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*([a-zA-Z]*)\s*$")  # 1e9, 1.5e6B
_PCT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


@dataclass(frozen=True)
class BudgetSpec:
    """A parsed budget: absolute ``nbytes`` or a ``fraction`` of the full-size table."""

    text: str
    nbytes: int | None = None
    fraction: float | None = None

    def resolve(self, full_table_bytes: int) -> int:
        """Bytes this budget allows, given the full-size table's bytes."""
        if self.nbytes is not None:
            return self.nbytes
        assert self.fraction is not None
        return int(full_table_bytes * self.fraction)

    @property
    def label(self) -> str:
        """A file-name-safe label (``10pct``, ``4MiB``)."""
        return re.sub(r"[^A-Za-z0-9.]+", "", self.text.replace("%", "pct"))


def parse_budget(text: str) -> BudgetSpec:
    """Parse ``'4MiB'``, ``'250000'``, ``'1e9'``, ``'1.5 MB'`` or ``'10%'``."""
    m = _PCT.match(str(text))
    if m:
        frac = float(m.group(1)) / 100.0
        if not 0.0 < frac <= 1.0:
            raise BudgetError(f"budget {text!r}: a percentage must lie in (0%, 100%]")
        return BudgetSpec(str(text), fraction=frac)
    m = _SIZE.match(str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise BudgetError(
            f"cannot read budget {text!r}; write bytes (250000), a size (4MiB, 1.5MB, 500KiB) or a percentage (10%)"
        )
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not math.isfinite(value):
        raise BudgetError(f"budget {text!r} is too large to be a number of bytes")
    nbytes = int(value)
    if nbytes <= 0:
        raise BudgetError(f"budget {text!r} must be positive")
    return BudgetSpec(str(text), nbytes=nbytes)


def format_bytes(n: int) -> str:
    """Human-readable size with the exact count: ``'1.23 MiB (1290240 B)'``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{value:.2f} {unit} ({n} B)"
        value /= 1024
    return f"{n} B"


def bytes_per_weight(precision: str) -> float:
    try:
        return BYTES_PER_WEIGHT[precision]
    except KeyError:
        raise BudgetError(
            f"unknown precision {precision!r}; use one of {', '.join(BYTES_PER_WEIGHT)}"
        ) from None


def field_bytes(
    group_rows: Sequence[int],
    group_dims: Sequence[int],
    width: int,
    projection: str = "linear",
    precision: str = "fp32",
) -> int:
    """Exact bytes of one field's ``full`` blocks at ``precision``
    (:meth:`~embsearch.blocks.BlockSpec.bytes`: rows x dim weights, plus an fp32 scale and
    offset per row for int8), plus one ``dim x width`` projection per distinct dim
    ``0 < dim != width`` when ``projection == 'linear'``
    (:func:`~embsearch.blocks.projection_bytes`)."""
    bytes_per_weight(precision)  # an unknown precision: one line
    return specs_bytes(
        [BlockSpec("full", int(r), int(d), precision) for r, d in zip(group_rows, group_dims)],
        width,
        projection,
        precision,
    )


def specs_bytes(
    specs: Sequence[BlockSpec], width: int, projection: str = "linear", precision: str = "fp32"
) -> int:
    """Exact bytes of one field's blocks of any kind: each block's own bytes, plus its
    projections (one per distinct dim below the width, in a ``linear`` plan of ``precision``)."""
    n = sum(s.bytes() for s in specs)
    if projection == "linear":
        n += projection_bytes({s.dim for s in specs}, width, precision)
    return n
