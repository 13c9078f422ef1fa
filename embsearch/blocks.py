"""Block specs: what one (field, frequency group) block of the table stores, and its exact bytes.

A block serves the ids ``start..stop-1`` of one field (``rows`` of them, seen by the block as
local ids ``0..rows-1``) with vectors of ``dim`` weights. Its *kind* says how:

- ``full``: one row per id (``rows x dim``).
- ``hash``: ``m`` shared rows; id ``i`` takes row ``((a * i + b) mod 2**31-1) mod m``, a
  Carter-Wegman universal hash whose ``a, b`` come from the field, group and seed
  (:func:`hash_coefficients`), so fields and seeds do not collide the same way.
- ``qr``: Shi et al. 2020, "Compositional Embeddings Using Complementary Partitions for
  Memory-Efficient Recommendation Systems": a quotient table (``ceil(rows / c)`` rows, id
  ``i // c``) and a remainder table (``c`` rows, id ``i % c``), combined by ``concat`` (the
  quotient gives the first ``ceil(dim / 2)`` weights, the remainder the rest), ``add`` or
  ``mult`` (both tables ``dim`` wide). ``c`` is the collision factor: every id gets its own
  (quotient, remainder) pair, so its own vector.
- ``memcom``: Pansare et al. 2022, "Learning Compressed Embeddings for On-Device Inference"
  (MEmCom): a shared ``m x dim`` table indexed by ``i mod m`` (the paper's hashing; ids are
  frequency-ranked, so the ``m`` most frequent ids get rows of their own) times one trainable
  scalar per id.
- ``pruned``: ``kept`` rows, plus an id -> row map in the smallest signed integer type that
  holds ``kept - 1`` and ``-1``; an id mapped to ``-1`` looks up the zero vector.

A frequency hybrid (Zhang et al. 2020, "Model Size Reduction Using Frequency Based Double
Hashing for Recommender Systems") is a two-group field: ``full`` for the top-k ids, ``hash``
or ``qr`` for the rest.

Precision per block: ``fp32``, ``fp16``, or ``int8`` (row-wise: each row stores uint8 codes
plus an fp32 scale and offset, FBGEMM's fused 8-bit row-wise layout; 8 B a row). MEmCom's
per-id scalars are fp16 in an integer block (a one-weight row would pay 8 B of scale and offset).

Column-wise ("block-scaled") ``int8c`` and ``int4c``, an extension of issue 21's precision
axis (row-wise int8's 8 B a row is dearer than the row itself below dim 9, so it never fits a
tight budget; one scale per column costs ``8 x dim`` B per table, whatever its rows): each
table stores one fp32 scale and offset per *column*, shared by all its rows, and unsigned
codes: ``int8c`` one uint8 a weight (``rows x dim``), ``int4c`` two 4-bit codes a uint8 byte
(``rows x ceil(dim / 2)``; column ``2j`` in the low nibble of byte ``j``, column ``2j + 1``
in its high nibble, the last high nibble 0 for an odd dim). ``embeddings/rows.py`` has the
quantiser.

:meth:`BlockSpec.parts` lists every tensor the exported block holds (name suffix, shape,
dtype) and :meth:`BlockSpec.bytes` is their sum: the one byte count of a block.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any

from embsearch.errors import ConfigError

KINDS = ("full", "hash", "qr", "memcom", "pruned")
PRECISIONS = ("fp32", "fp16", "int8", "int8c", "int4c")
#: bits of one code of each column-wise ("block-scaled") precision (module docstring)
COLUMNWISE = {"int8c": 8, "int4c": 4}
#: bits a weight of each precision (scales and offsets aside): the distance between precisions
BITS = {"fp32": 32, "fp16": 16, "int8": 8, "int8c": 8, "int4c": 4}
QR_OPS = ("concat", "add", "mult")
#: bytes of one weight of each dtype name used in :meth:`BlockSpec.parts`
ITEMSIZE = {"float32": 4, "float16": 2, "uint8": 1, "int8": 1, "int16": 2, "int32": 4, "int64": 8}
#: the universal hash's prime (2**31 - 1): ``a * i`` stays below 2**62 for ids below 2**31
HASH_PRIME = 2**31 - 1
#: the float dtype of a precision's float tensors: its weights at fp32/fp16; projections and
#: MEmCom's scalars beside the integer precisions' uint8 codes (see :func:`row_parts`)
FLOAT_DTYPE = {
    "fp32": "float32",
    "fp16": "float16",
    "int8": "float16",
    "int8c": "float16",
    "int4c": "float16",
}

Part = tuple[str, tuple[int, ...], str]  # (name suffix, shape, dtype name)


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    return precision


def row_parts(name: str, rows: int, dim: int, precision: str) -> list[Part]:
    """The tensors of a ``rows x dim`` table at ``precision``: fp32/fp16 rows; int8's uint8
    codes plus an fp32 scale and offset per row; or a column-wise precision's codes (``int8c``:
    ``rows x dim`` uint8; ``int4c``: ``rows x ceil(dim / 2)`` uint8, two codes a byte) plus
    an fp32 scale and offset per column. Scale and offset are named ``<name>_scale`` and
    ``<name>_offset``, or ``scale`` and ``offset`` for the table named ``weight``."""
    if precision not in ("int8", *COLUMNWISE):
        return [(name, (rows, dim), FLOAT_DTYPE[precision])]
    pre = "" if name == "weight" else f"{name}_"
    if precision == "int8":
        codes, per = (rows, dim), rows
    else:
        codes, per = (rows, dim if COLUMNWISE[precision] == 8 else (dim + 1) // 2), dim
    return [
        (name, codes, "uint8"),
        (f"{pre}scale", (per,), "float32"),
        (f"{pre}offset", (per,), "float32"),
    ]


def map_dtype(kept: int) -> str:
    """The smallest signed integer dtype holding rows ``0..kept-1`` and the sentinel -1."""
    for name, bits in (("int8", 8), ("int16", 16), ("int32", 32)):
        if kept - 1 < 2 ** (bits - 1):
            return name
    return "int64"


def hash_coefficients(field_name: str, group: int, seed: int) -> tuple[int, int]:
    """The ``hash`` kind's ``(a, b)`` for one block: CRC-32 of ``'<field>/<group>/<seed>'``
    (``a`` in ``1..p-1``, ``b`` in ``0..p-1``, ``p`` = :data:`HASH_PRIME`)."""
    key = f"{field_name}/{group}/{seed}".encode()
    a = 1 + zlib.crc32(key + b"/a") % (HASH_PRIME - 1)
    b = zlib.crc32(key + b"/b") % HASH_PRIME
    return a, b


@dataclass(frozen=True)
class BlockSpec:
    """One block: its kind, ids, output dim, precision and the kind's sizes
    (``m`` for hash and memcom, ``c`` and ``op`` for qr, ``kept`` for pruned, ``a, b`` the
    hash's coefficients)."""

    kind: str
    rows: int
    dim: int
    precision: str = "fp32"
    m: int = 0
    c: int = 0
    op: str = "concat"
    kept: int = 0
    a: int = 1
    b: int = 0

    def check(self, where: str = "block") -> None:
        """Raise :class:`ConfigError` (one line naming ``where``) for a block no table can
        be built from."""
        check_precision(self.precision)
        if self.kind not in KINDS:
            raise ConfigError(f"{where}: unknown kind {self.kind!r}; use one of {', '.join(KINDS)}")
        if self.rows < 1 or self.dim < 0:
            raise ConfigError(f"{where}: rows must be >= 1 and dim >= 0")
        if self.kind in ("hash", "memcom"):
            if self.m > self.rows:
                raise ConfigError(
                    f"{where}: a {self.kind} table of {self.m} rows is larger than the field's "
                    f"{self.rows} ids; use kind full, or m <= {self.rows}"
                )
            if self.m < 2 <= self.rows:
                raise ConfigError(
                    f"{where}: a {self.kind} table of {self.m} row(s) sends every id to one row; "
                    "give m >= 2"
                )
        if self.kind == "hash" and not (1 <= self.a < HASH_PRIME and 0 <= self.b < HASH_PRIME):
            raise ConfigError(f"{where}: hash coefficients must lie in a 1..p-1, b 0..p-1")
        if self.kind == "qr":
            if not 2 <= self.c <= self.rows:
                raise ConfigError(
                    f"{where}: a QR collision factor of {self.c} must lie in [2, {self.rows}] "
                    "(1 is the full table; above the field's ids the quotient table is one row)"
                )
            if self.op not in QR_OPS:
                raise ConfigError(f"{where}: QR op {self.op!r} is not one of {', '.join(QR_OPS)}")
            if self.op == "concat" and self.dim == 1:
                raise ConfigError(f"{where}: QR concat needs dim >= 2 (half from each table)")
        if self.kind == "pruned" and not 0 <= self.kept <= self.rows:
            raise ConfigError(f"{where}: pruned keeps {self.kept} rows of {self.rows}")

    @property
    def qr_dims(self) -> tuple[int, int]:
        """Widths of the quotient and remainder tables."""
        if self.op == "concat":
            return (self.dim + 1) // 2, self.dim // 2
        return self.dim, self.dim

    def parts(self) -> list[Part]:
        """Every exported tensor of the block: (name suffix, shape, dtype)."""
        if self.dim == 0:
            return []
        p, d = self.precision, self.dim
        if self.kind == "full":
            return row_parts("weight", self.rows, d, p)
        if self.kind == "hash":
            return row_parts("weight", self.m, d, p)
        if self.kind == "qr":
            dq, dr = self.qr_dims
            return row_parts("q", math.ceil(self.rows / self.c), dq, p) + row_parts(
                "r", self.c, dr, p
            )
        if self.kind == "memcom":
            return row_parts("weight", self.m, d, p) + [("scalar", (self.rows,), FLOAT_DTYPE[p])]
        return row_parts("weight", self.kept, d, p) + [("map", (self.rows,), map_dtype(self.kept))]

    def bytes(self) -> int:
        """Exact bytes of the exported block: the sum of its parts' sizes."""
        return sum(math.prod(shape) * ITEMSIZE[dtype] for _, shape, dtype in self.parts())

    def to_json(self) -> dict[str, Any]:
        """The kind's sizes and the precision, as ``plan.json`` (format 2) stores them."""
        out: dict[str, Any] = {"kind": self.kind, "precision": self.precision}
        if self.kind in ("hash", "memcom"):
            out["m"] = self.m
        if self.kind == "hash":
            out["hash"] = [self.a, self.b]
        if self.kind == "qr":
            out["c"], out["op"] = self.c, self.op
        if self.kind == "pruned":
            out["kept"] = self.kept
        return out


def spec_from_json(raw: dict[str, Any], rows: int, dim: int, precision: str) -> BlockSpec:
    """A :class:`BlockSpec` from a ``plan.json`` group (format 1 groups: a full block at the
    plan's ``precision``)."""
    a, b = raw.get("hash", (1, 0))
    return BlockSpec(
        kind=str(raw.get("kind", "full")),
        rows=rows,
        dim=dim,
        precision=str(raw.get("precision", precision)),
        m=int(raw.get("m", 0)),
        c=int(raw.get("c", 0)),
        op=str(raw.get("op", "concat")),
        kept=int(raw.get("kept", 0)),
        a=int(a),
        b=int(b),
    )


def projection_dtype(precision: str) -> str:
    """The dtype of a field's ``dim x width`` projections in a plan of ``precision``: the
    plan's float type, fp16 for integer plans (their codes apply to id-indexed rows only)."""
    return FLOAT_DTYPE[check_precision(precision)]


def projection_bytes(dims: list[int] | set[int], width: int, precision: str) -> int:
    """Bytes of one ``dim x width`` projection per distinct dim ``0 < dim != width``."""
    size = ITEMSIZE[projection_dtype(precision)]
    return sum(int(d) * int(width) * size for d in {int(d) for d in dims} if 0 < d != width)
