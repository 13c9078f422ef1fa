"""Block specs: hand-counted bytes of every kind x precision, and bytes() == exported bytes."""

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from embsearch.blocks import KINDS, PRECISIONS, QR_OPS, BlockSpec, hash_coefficients, map_dtype
from embsearch.embeddings.tables import hash_rows, make_table
from embsearch.errors import ConfigError

# 1000 ids at dim 8; int8 rows: 8 code bytes + an fp32 scale and offset (8 B) each
HAND = {
    ("full", "fp32"): (BlockSpec("full", 1000, 8, "fp32"), 1000 * 8 * 4),
    ("full", "fp16"): (BlockSpec("full", 1000, 8, "fp16"), 1000 * 8 * 2),
    ("full", "int8"): (BlockSpec("full", 1000, 8, "int8"), 1000 * (8 + 8)),
    ("hash", "fp32"): (BlockSpec("hash", 1000, 8, "fp32", m=100), 100 * 8 * 4),
    ("hash", "fp16"): (BlockSpec("hash", 1000, 8, "fp16", m=100), 100 * 8 * 2),
    ("hash", "int8"): (BlockSpec("hash", 1000, 8, "int8", m=100), 100 * 16),
    # concat: quotient 1001 // 10 -> 101 rows x 4, remainder 10 rows x 4
    ("qr", "fp32"): (BlockSpec("qr", 1001, 8, "fp32", c=10), (101 * 4 + 10 * 4) * 4),
    ("qr", "fp16"): (BlockSpec("qr", 1001, 8, "fp16", c=10, op="add"), (101 * 8 + 10 * 8) * 2),
    ("qr", "int8"): (BlockSpec("qr", 1001, 8, "int8", c=10, op="mult"), (101 + 10) * 16),
    # memcom: 100 shared rows + one scalar per id (fp32; fp16 in fp16 and int8 blocks)
    ("memcom", "fp32"): (BlockSpec("memcom", 1000, 8, "fp32", m=100), 100 * 8 * 4 + 1000 * 4),
    ("memcom", "fp16"): (BlockSpec("memcom", 1000, 8, "fp16", m=100), 100 * 8 * 2 + 1000 * 2),
    ("memcom", "int8"): (BlockSpec("memcom", 1000, 8, "int8", m=100), 100 * 16 + 1000 * 2),
    # pruned: kept rows + a map of 1000 ids (int8 up to 128 kept, int16 from 129)
    ("pruned", "fp32"): (BlockSpec("pruned", 1000, 8, "fp32", kept=128), 128 * 32 + 1000),
    ("pruned", "fp16"): (BlockSpec("pruned", 1000, 8, "fp16", kept=129), 129 * 16 + 2000),
    ("pruned", "int8"): (BlockSpec("pruned", 1000, 8, "int8", kept=200), 200 * 16 + 2000),
    # column-wise: codes (int8c 1 B a weight; int4c ceil(dim / 2) B a row) + an fp32 scale
    # and offset per column (8 B a column) of each table
    ("full", "int8c"): (BlockSpec("full", 1000, 8, "int8c"), 1000 * 8 + 8 * 8),
    ("full", "int4c"): (BlockSpec("full", 1000, 7, "int4c"), 1000 * 4 + 7 * 8),
    ("hash", "int8c"): (BlockSpec("hash", 1000, 8, "int8c", m=100), 100 * 8 + 64),
    ("hash", "int4c"): (BlockSpec("hash", 1000, 8, "int4c", m=100), 100 * 4 + 64),
    ("qr", "int8c"): (BlockSpec("qr", 1001, 8, "int8c", c=10), (101 * 4 + 32) + (10 * 4 + 32)),
    ("qr", "int4c"): (
        BlockSpec("qr", 1001, 7, "int4c", c=10, op="mult"),
        (101 * 4 + 7 * 8) + (10 * 4 + 7 * 8),
    ),
    ("memcom", "int8c"): (BlockSpec("memcom", 1000, 8, "int8c", m=100), 100 * 8 + 64 + 2000),
    ("memcom", "int4c"): (BlockSpec("memcom", 1000, 8, "int4c", m=100), 100 * 4 + 64 + 2000),
    ("pruned", "int8c"): (BlockSpec("pruned", 1000, 8, "int8c", kept=128), 128 * 8 + 64 + 1000),
    ("pruned", "int4c"): (BlockSpec("pruned", 1000, 7, "int4c", kept=200), 200 * 4 + 56 + 2000),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_hand_counted_bytes(kind, precision):
    spec, expected = HAND[(kind, precision)]
    spec.check()
    assert spec.bytes() == expected


def test_map_dtype_is_the_smallest_that_holds_the_rows_and_minus_one():
    assert [map_dtype(k) for k in (0, 128, 129, 32768, 32769, 2**31, 2**31 + 1)] == [
        "int8", "int8", "int16", "int16", "int32", "int32", "int64"
    ]  # fmt: skip


def test_dropped_block_stores_nothing():
    assert BlockSpec("qr", 50, 0, "int8", c=5).bytes() == 0


def test_hash_coefficients_differ_by_field_group_and_seed():
    coefs = {hash_coefficients(f, g, s) for f in ("user", "item") for g in (0, 1) for s in (0, 1)}
    assert len(coefs) == 8


@pytest.mark.parametrize(
    "spec, words",
    [
        (BlockSpec("hash", 100, 8, m=101), "larger than the field's 100 ids"),
        (BlockSpec("memcom", 100, 8, m=1), "sends every id to one row"),
        (BlockSpec("qr", 100, 8, c=1), "collision factor of 1"),
        (BlockSpec("qr", 100, 8, c=101), "collision factor of 101"),
        (BlockSpec("qr", 100, 8, c=4, op="max"), "QR op 'max'"),
        (BlockSpec("pruned", 100, 8, kept=101), "keeps 101 rows of 100"),
        (BlockSpec("full", 100, 8, "int4"), "unknown precision 'int4'"),
        (BlockSpec("bloom", 100, 8), "unknown kind 'bloom'"),
    ],
)
def test_bad_blocks_are_refused_in_one_line(spec, words):
    with pytest.raises(ConfigError, match=words) as err:
        spec.check()
    assert "\n" not in str(err.value)


@st.composite
def specs(draw):
    kind = draw(st.sampled_from(KINDS))
    rows = draw(st.integers(2, 400))
    dim = draw(st.integers(0, 9))
    precision = draw(st.sampled_from(PRECISIONS))
    op = draw(st.sampled_from(QR_OPS))
    if kind == "qr" and op == "concat" and dim == 1:
        dim = 2
    return BlockSpec(
        kind,
        rows,
        dim,
        precision,
        m=draw(st.integers(2, rows)),
        c=draw(st.integers(2, rows)),
        op=op,
        kept=draw(st.integers(0, rows)),
        a=draw(st.integers(1, 2**31 - 2)),
        b=draw(st.integers(0, 2**31 - 2)),
    )


@settings(max_examples=80, deadline=None)
@given(specs())
def test_bytes_equal_the_exported_tensors(spec):
    spec.check()
    if spec.kind == "hash":  # a draw whose hash sends every id to one row is refused (below)
        assume(hash_rows(torch.arange(spec.rows), spec.a, spec.b, spec.m).unique().numel() > 1)
    if spec.dim == 0:
        assert spec.bytes() == 0
        return
    table = make_table(spec)
    tensors = table.export("emb.f.0")
    assert sum(t.numel() * t.element_size() for t in tensors.values()) == spec.bytes()
    parts = {f"emb.f.0.{n}": (shape, dtype) for n, shape, dtype in spec.parts()}
    assert {
        k: (tuple(t.shape), str(t.dtype).removeprefix("torch.")) for k, t in tensors.items()
    } == parts
    out = table(torch.arange(spec.rows))
    assert out.shape == (spec.rows, spec.dim) and out.dtype == torch.float32


def test_a_hash_that_sends_every_id_to_one_row_is_refused_in_one_line():
    spec = BlockSpec("hash", 2, 4, "fp32", m=2, a=2, b=0)  # ids 0 and 1 both hash to row 0
    spec.check()  # the spec alone is well formed; building its table finds the collapse
    with pytest.raises(ConfigError, match="sends all 2 ids to one of 2 rows") as err:
        make_table(spec)
    assert "\n" not in str(err.value)
