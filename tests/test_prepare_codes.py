"""The pieces that make ``data prepare``'s record-batch passes fast (issue 22 item 6): the
numpy hash table of fixed8 vocabularies, the table lookup of integer buckets, the codes and
counts grown batch by batch, and the narrowed scratch codes. Each must give exactly what
the plain computation gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from embsearch.data import buckets, codes
from embsearch.data.codes import ColumnCodes
from embsearch.data.dataset import SPLITS, Dataset
from embsearch.data.encode import frequency_ranking
from embsearch.data.keytable import KeyTable
from embsearch.data.prepare import prepare, split_rows
from embsearch.data.streaming import _narrowed


def test_key_table_matches_a_dict_across_growth() -> None:
    """Batches of keys (random 64-bit, small integers that share low bits, the extremes)
    added and found over several doublings: the codes a dict would give, in insertion
    order; absent keys are -1."""
    rng = np.random.default_rng(0)
    table, ref = KeyTable(), {}
    extremes = np.array([0, -1, 1, np.iinfo(np.int64).min, np.iinfo(np.int64).max])
    for b in range(12):
        kind = b % 3
        keys = (
            rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, 3000, dtype=np.int64)
            if kind == 0
            else (rng.integers(0, 6000, 3000) << (16 * kind)).astype(np.int64)
        )
        keys = np.concatenate([keys, extremes])
        local = pc.unique(pa.array(keys)).to_numpy()  # distinct, in first-appearance order
        found = table.find(local)
        np.testing.assert_array_equal(found, [ref.get(int(k), -1) for k in local])
        new = local[found < 0]
        added = table.add(new)
        np.testing.assert_array_equal(added, np.arange(len(ref), len(ref) + len(new)))
        ref.update(zip(new.tolist(), added.tolist()))
        np.testing.assert_array_equal(table.find(local), [ref[int(k)] for k in local])
    assert table.n == len(ref) > 20_000 and len(table._codes) >= 2 * table.n
    np.testing.assert_array_equal(table.keys(), list(ref))
    absent = np.array([k for k in (12345678901, 7, 2**62 + 1) if k not in ref], dtype=np.int64)
    assert len(absent) and (table.find(absent) == -1).all()


def test_integer_buckets_are_the_float_buckets() -> None:
    """The integer table lookup gives the float formula's codes: around the table's edges,
    the small values, long tails, nulls, chunks, narrow types."""
    rng = np.random.default_rng(1)
    edge = buckets._SMALL
    v = np.concatenate(
        [
            np.arange(-5, 6),
            [edge - 1, edge, edge + 1, -edge - 1, -edge, -edge + 1, 2**40, -(2**40), 2**53],
            rng.integers(-50_000, 50_000, 20_000),
            np.floor(rng.lognormal(1.0, 3.0, 20_000)).astype(np.int64),
        ]
    ).astype(np.int64)
    mask = rng.random(len(v)) < 0.1
    cols = [
        pa.array(v),
        pa.array(v, mask=mask),
        pa.chunked_array([pa.array(v[:777], mask=mask[:777]), pa.array(v[777:])]),
        pa.array(v % 2**31).cast(pa.int32()),
        pa.array(np.abs(v) % 250).cast(pa.uint8()),
        pa.array([None, None], pa.int64()),
    ]
    for col in cols:
        got, want = buckets.bucket_codes(col), buckets._float_codes(col)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def _batches(col: pa.Array, size: int) -> list[pa.Array]:
    return [col.slice(a, size) for a in range(0, len(col), size)]


@pytest.mark.parametrize("kind", ["fixed8", "strings", "switch", "numeric"])
def test_codes_grown_in_batches_are_whole_column_codes(kind: str) -> None:
    """Codes and train counts grown over batches of 37 rows equal one ``dictionary_encode``
    of the whole column (first-appearance order) and its ``bincount``; a later file's
    unseen values are -1. ``switch``: 8-byte ids, then a batch with another length (the
    int64 keys turn into strings)."""
    rng = np.random.default_rng(2)
    n = 1000
    hexes = np.array([f"{x:08x}" for x in rng.integers(0, 2**32, 300)], dtype=object)
    values = hexes[np.minimum((300 * rng.random(n) ** 3).astype(int), 299)]
    values[rng.random(n) < 0.05] = ""
    if kind == "strings":
        values = np.where(rng.random(n) < 0.5, values, "v" + (values + "x")).astype(object)
        values[rng.random(n) < 0.05] = None
    if kind == "switch":
        values[700:] = np.where(rng.random(n - 700) < 0.3, "short", values[700:])
    col = pa.array(values.tolist(), pa.string())
    later = pa.array(["zzzzzzzz", values[3], "unseen-value"] if kind != "numeric" else [1, 2])
    if kind == "numeric":
        col = pa.array(np.floor(rng.lognormal(1, 2, n)).astype(np.int64), mask=rng.random(n) < 0.1)
        later = pa.array([0, 10**12], pa.int64())
        whole = buckets.bucket_codes(col)
    else:
        whole = pc.dictionary_encode(col, null_encoding="encode").indices.to_numpy()
    coder = ColumnCodes(kind == "numeric")
    got = np.concatenate([coder.encode(b) for b in _batches(col, 37)])
    np.testing.assert_array_equal(got, whole)
    np.testing.assert_array_equal(coder.freq, np.bincount(whole, minlength=coder.n))
    assert kind == "numeric" or coder.fixed8 == (kind == "fixed8")
    out = coder.encode(later, grow=False)
    if kind == "numeric":
        assert out[0] >= 0 and out[1] == -1  # bucket 0..2 seen, a bucket beyond n unseen
    else:
        assert out[0] == -1 and out[1] == whole[3] and out[2] == -1
    back = coder.values_of(np.arange(coder.n)) if kind != "numeric" else None
    if back is not None:  # values in code order: the whole column's dictionary
        assert back.to_pylist() == pc.unique(col).to_pylist()


def test_narrowed_codes_take_the_narrowest_type() -> None:
    codes = np.array([-1, 0, 5], dtype=np.int32)
    for n, dtype in [(1, np.uint8), (255, np.uint8), (256, np.uint16), (65535, np.uint16),
                     (65536, np.uint32), (2**31 - 1, np.uint32)]:  # fmt: skip
        out = _narrowed(codes, n)
        assert out.dtype == dtype
        np.testing.assert_array_equal(out.astype(np.int64), [0, 1, 6])
    big = np.array([-1, 65535, 70000], dtype=np.int32)
    np.testing.assert_array_equal(_narrowed(big, 70001), [0, 65536, 70001])


def test_fixed8_keys_and_string_path_write_the_same_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prepared with fixed8 keys (the hash table) in batches of 200 rows, whose scratch
    codes widen from 1 to 2 bytes part-way, in one batch, and with fixed8 keys turned off
    (Arrow's string hash): the same bytes."""
    rng = np.random.default_rng(3)
    n = 3000
    hexes = np.array([f"{x:08x}" for x in rng.integers(0, 2**32, 2000)])
    ids = hexes[np.minimum((2000 * rng.random(n) ** 2).astype(int), 1999)]
    small = hexes[rng.integers(0, 40, n)]
    y = (rng.random(n) < 0.3).astype(int)
    src = tmp_path / "in.csv"
    src.write_text("y,ids,small\n" + "".join(f"{a},{b},{c}\n" for a, b, c in zip(y, ids, small)))
    assert len(set(ids[:200])) < 256 < len(set(ids))
    runs = {"batches": 200, "whole": 10**9}
    for name, rows in runs.items():
        prepare("csv", [str(src)], str(tmp_path / name), label="y", batch_rows=rows)
    monkeypatch.setattr(codes, "fixed8_keys", lambda col: None)
    prepare("csv", [str(src)], str(tmp_path / "strings"), label="y", batch_rows=200)

    def files(name: str) -> dict[str, bytes]:
        d = tmp_path / name
        return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}

    assert files("batches") == files("whole") == files("strings")
    # and the ids are the whole-file computation's: codes by first appearance, ranked by
    # their count in the train rows of the seeded split
    ds = Dataset.load(tmp_path / "batches")
    which = split_rows(n, (0.8, 0.1, 0.1), 0)
    for j, col in enumerate((ids, small)):
        whole = pc.dictionary_encode(pa.array(col)).indices.to_numpy()
        remap, _ = frequency_ranking(whole[which == 0], int(whole.max()) + 1)
        for s, split in enumerate(SPLITS):
            np.testing.assert_array_equal(ds.split(split).x[:, j], remap[whole[which == s]])
