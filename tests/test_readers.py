"""Readers and ``prepare`` on the real samples in ``../shared/data`` (skipped when absent)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import embsearch.data.codes as codes_mod
from embsearch.data.buckets import bucket_codes
from embsearch.data.dataset import SPLITS, Dataset
from embsearch.data.prepare import fixed8_keys, prepare

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
CRITEO = DATA / "criteo-kaggle-head10k" / "train_head10k.txt.gz"
AVAZU = DATA / "avazu-sample10k" / "avazu_sample.csv.gz"
FRAPPE_VAL = DATA / "frappe" / "frappe.validation.libfm.gz"
FRAPPE_TEST = DATA / "frappe" / "frappe.test.libfm.gz"
TALKING = DATA / "talkingdata-adtracking-sample" / "train_sample.csv.gz"


def need(*paths: Path) -> list[str]:
    for p in paths:
        if not p.is_file():
            pytest.skip(f"shared sample {p} is absent")
    return [str(p) for p in paths]


def check(ds: Dataset, out: Path, *, fields: int, rows: int, min_count: int = 1) -> None:
    """Shapes, dtypes, id range, the OOV/frequency convention, counts, and the saved copy."""
    assert ds.schema.num_fields == fields
    assert sum(len(ds.split(s)) for s in SPLITS) == rows
    train = ds.train
    for s in SPLITS:
        sp = ds.split(s)
        assert sp.x.dtype == np.int32 and sp.y.dtype == np.float32
        assert sp.x.shape == (len(sp), fields) and sp.y.shape == (len(sp),)
        assert set(np.unique(sp.y)) <= {0.0, 1.0}
        assert sp.x.min() >= 0
        assert (sp.x.max(axis=0) < np.asarray(ds.schema.cardinalities)).all()
    for j, f in enumerate(ds.schema.fields):
        c = f.counts
        assert c.sum() == len(train)
        assert (np.diff(c[1:]) <= 0).all(), f"{f.name}: counts of ids >= 1 must descend"
        assert (c[1:] >= min_count).all()
        np.testing.assert_array_equal(np.bincount(train.x[:, j], minlength=f.cardinality), c)
    back = Dataset.load(out)
    assert back.schema.names == ds.schema.names
    assert back.schema.fingerprint() == ds.schema.fingerprint()
    assert back.schema.meta == ds.schema.meta
    for s in SPLITS:
        np.testing.assert_array_equal(back.split(s).x, ds.split(s).x)
        np.testing.assert_array_equal(back.split(s).y, ds.split(s).y)


def label_rate(ds: Dataset) -> float:
    return float(np.concatenate([ds.split(s).y for s in SPLITS]).mean())


def test_criteo(tmp_path: Path) -> None:
    (path,) = need(CRITEO)
    msgs: list[str] = []
    ds = prepare("criteo", [path], str(tmp_path / "d"), warn=msgs.append)
    check(ds, tmp_path / "d", fields=39, rows=10_000)
    assert ds.schema.names == [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]
    assert [len(ds.split(s)) for s in SPLITS] == [8000, 1000, 1000]
    assert label_rate(ds) == pytest.approx(0.2182, abs=1e-4)
    assert ds.schema.source == "criteo" and ds.schema.meta["rows_read"] == 10_000
    assert msgs == []
    # unseen-in-train values exist in val/test and map to OOV
    assert (ds.val.x == 0).any() and (ds.test.x == 0).any()


def raw_criteo(path: str, n: int) -> list[list[str]]:
    with gzip.open(path, "rt") as fh:
        return [next(fh).rstrip("\n").split("\t") for _ in range(n)]


def test_criteo_empty_cells_and_buckets(tmp_path: Path) -> None:
    (path,) = need(CRITEO)
    n = 3000
    # the same file three times: train rows are the file's first n rows, in order
    ds = prepare("criteo", [path] * 3, str(tmp_path / "d"), rows=n)
    assert ds.schema.meta["given_split"] and len(ds.train) == n
    raw = raw_criteo(path, n)
    for name, col in (("C22", 35), ("C3", 16), ("I1", 1), ("I12", 12)):
        values = np.array([r[col] for r in raw])
        ids = ds.train.x[:, ds.schema.index(name)]
        empty = values == ""
        assert empty.any() and (~empty).any()
        assert len(np.unique(ids[empty])) == 1, f"{name}: empty cells must share one id"
        assert ids[empty][0] != 0, f"{name}: an empty cell is a value, not OOV"
        assert not np.isin(ids[~empty], ids[empty]).any()
    c22 = ds.schema.fields[ds.schema.index("C22")]
    assert c22.counts[1] == sum(r[35] == "" for r in raw)  # "" is C22's most frequent value
    # integer bucketing: same floor(log(x)^2) bucket <=> same id (for x > 2)
    i5 = np.array([int(r[5]) if r[5] else -99 for r in raw])
    ids5 = ds.train.x[:, ds.schema.index("I5")]
    big = i5 > 2
    buckets = np.floor(np.log(i5[big]) ** 2)
    for b in np.unique(buckets)[:10]:
        assert len(np.unique(ids5[big][buckets == b])) == 1
    assert len(np.unique(ids5[big])) == len(np.unique(buckets))
    # given split: val and test are the same rows
    np.testing.assert_array_equal(ds.val.x, ds.test.x)
    np.testing.assert_array_equal(ds.train.x, ds.val.x)


def test_bucket_codes() -> None:
    col = pa.chunked_array([[0, 1, 2, 3, 4, 7, 8, -1, -3, None]])
    k = bucket_codes(col).tolist()
    assert len(set(k[:3])) == 3 and k[3] == k[4] and k[5] != k[6] and k[3] not in k[:3]
    assert k[7] not in k[:7] and k[8] not in k[:8] and k[9] not in k[:9]
    f = bucket_codes(
        pa.chunked_array([[2.7, 2.0, float("nan"), None, float("inf"), 1e300, -0.5]])
    ).tolist()
    assert f[0] == f[1] and f[2] == f[3] and f[6] == k[7] and f[4] >= f[5] > f[0]


def test_min_count_folds_rare_values(tmp_path: Path) -> None:
    (path,) = need(CRITEO)
    full = prepare("criteo", [path], str(tmp_path / "a"), rows=4000)
    folded = prepare("criteo", [path], str(tmp_path / "b"), rows=4000, min_count=5)
    check(folded, tmp_path / "b", fields=39, rows=4000, min_count=5)
    for fa, fb in zip(full.schema.fields, folded.schema.fields):
        rare = fa.counts[1:][fa.counts[1:] < 5]
        assert fb.cardinality == fa.cardinality - len(rare)
        assert fb.counts[0] == fa.counts[0] + rare.sum()
        np.testing.assert_array_equal(fb.counts[1:], fa.counts[1:][fa.counts[1:] >= 5])
    assert sum(f.cardinality for f in folded.schema.fields) < sum(
        f.cardinality for f in full.schema.fields
    )
    # a huge min_count folds everything: every id is OOV and every field is reported constant
    msgs: list[str] = []
    none = prepare(
        "criteo", [path], str(tmp_path / "c"), rows=500, min_count=10**9, warn=msgs.append
    )
    assert none.schema.cardinalities == [1] * 39
    assert all((none.split(s).x == 0).all() for s in SPLITS)
    assert len(msgs) == 39 and "--drop-constant" in msgs[0]


def test_gzip_and_plain_agree(tmp_path: Path) -> None:
    (path,) = need(CRITEO)
    plain = tmp_path / "criteo.txt"
    with gzip.open(path, "rb") as src, open(plain, "wb") as dst:
        shutil.copyfileobj(src, dst)
    a = prepare("criteo", [path], str(tmp_path / "a"), rows=2000, seed=3)
    b = prepare("criteo", [str(plain)], str(tmp_path / "b"), rows=2000, seed=3)
    assert a.schema.fingerprint() == b.schema.fingerprint()
    np.testing.assert_array_equal(a.train.x, b.train.x)
    c = prepare("criteo", [path], str(tmp_path / "c"), rows=2000, seed=4)
    assert not np.array_equal(a.train.y, c.train.y)  # the seed changes the split


def test_avazu(tmp_path: Path) -> None:
    (path,) = need(AVAZU)
    msgs: list[str] = []
    ds = prepare("avazu", [path], str(tmp_path / "d"), warn=msgs.append)
    check(ds, tmp_path / "d", fields=22, rows=9_999)
    assert "id" not in ds.schema.names and "click" not in ds.schema.names
    assert ds.schema.names[:3] == ["hour", "C1", "banner_pos"] and ds.schema.label == "click"
    assert label_rate(ds) == pytest.approx(0.1706, abs=1e-3)
    assert len(msgs) == 1 and "'hour'" in msgs[0] and "--drop-constant" in msgs[0]
    dropped = prepare("avazu", [path], str(tmp_path / "e"), drop_constant=True, warn=msgs.append)
    check(dropped, tmp_path / "e", fields=21, rows=9_999)
    assert "hour" not in dropped.schema.names and dropped.schema.meta["dropped_constant"] == [
        "hour"
    ]
    np.testing.assert_array_equal(dropped.train.x, ds.train.x[:, 1:])


def test_frappe_random_split(tmp_path: Path) -> None:
    (path,) = need(FRAPPE_VAL)
    ds = prepare("libfm", [path], str(tmp_path / "d"))
    check(ds, tmp_path / "d", fields=10, rows=57_722)
    assert ds.schema.names == [f"f{j}" for j in range(10)]
    assert label_rate(ds) == pytest.approx(1 / 3, abs=0.01)  # 2 negatives per positive
    assert ds.schema.cardinalities[1] > 3000  # items


def frappe_tokens(path: str) -> np.ndarray:
    with gzip.open(path, "rt") as fh:
        return np.array([line.split()[1:] for line in fh])


def test_frappe_given_split(tmp_path: Path) -> None:
    val, test = need(FRAPPE_VAL, FRAPPE_TEST)
    ds = prepare("libfm", [val, test, test], str(tmp_path / "d"), split=(1.0, 0.0, 0.0))
    check(ds, tmp_path / "d", fields=10, rows=57_722 + 2 * 28_860)
    assert [len(ds.split(s)) for s in SPLITS] == [57_722, 28_860, 28_860]
    np.testing.assert_array_equal(ds.val.x, ds.test.x)
    tr, te = frappe_tokens(val), frappe_tokens(test)
    for j in range(10):
        unseen = ~np.isin(te[:, j], tr[:, j])
        assert (ds.test.x[unseen, j] == 0).all(), f"f{j}: values unseen in train must be OOV"
        assert (ds.test.x[~unseen, j] > 0).all()
    assert (ds.test.x == 0).any()
    # the same token gets the same id in train and test
    tok = tr[0, 1]
    assert ds.train.x[0, 1] == ds.test.x[te[:, 1] == tok, 1][0]


def test_talkingdata_csv_and_parquet(tmp_path: Path) -> None:
    (path,) = need(TALKING)
    drop = ["attributed_time", "click_time"]  # attributed_time leaks the label
    ds = prepare("csv", [path], str(tmp_path / "d"), label="is_attributed", drop=drop)
    check(ds, tmp_path / "d", fields=5, rows=100_000)
    assert ds.schema.names == ["ip", "app", "device", "os", "channel"]
    assert sorted(ds.schema.meta["dropped_columns"]) == sorted(drop)
    assert 0.0005 < label_rate(ds) < 0.01
    pq.write_table(pacsv.read_csv(path), tmp_path / "td.parquet")
    pds = prepare(
        "parquet",
        [str(tmp_path / "td.parquet")],
        str(tmp_path / "p"),
        label="is_attributed",
        drop=drop,
    )
    assert pds.schema.fingerprint() == ds.schema.fingerprint()
    for s in SPLITS:
        np.testing.assert_array_equal(pds.split(s).x, ds.split(s).x)
        np.testing.assert_array_equal(pds.split(s).y, ds.split(s).y)
    # dictionary-typed columns with a different dictionary per row group, rows limit
    table = pacsv.read_csv(path)
    for i, name in ((1, "app"), (7, "is_attributed")):
        col = table.column(name).combine_chunks().cast(pa.string())
        parts = [col.slice(s, 7_000).dictionary_encode() for s in range(0, len(col), 7_000)]
        assert name != "app" or parts[0].dictionary != parts[1].dictionary
        table = table.set_column(i, name, pa.chunked_array(parts))
    pq.write_table(table, tmp_path / "dict.parquet", row_group_size=7_000)
    back = pq.read_table(tmp_path / "dict.parquet").column("app")
    assert (
        pa.types.is_dictionary(back.type) and back.chunks[0].dictionary != back.chunks[1].dictionary
    )
    dds = prepare(
        "parquet", [str(tmp_path / "dict.parquet")], str(tmp_path / "q"),
        label="is_attributed", drop=drop, rows=50_000,
    )  # fmt: skip
    cds = prepare("csv", [path], str(tmp_path / "r"), label="is_attributed", drop=drop, rows=50_000)
    assert dds.schema.fingerprint() == cds.schema.fingerprint()
    np.testing.assert_array_equal(dds.test.x, cds.test.x)
    np.testing.assert_array_equal(dds.train.y, cds.train.y)
    # click_time as a categorical column, ip as numeric, rows limit
    both = prepare(
        "csv", [path], str(tmp_path / "n"), label="is_attributed", drop=["attributed_time"],
        numeric=["ip"], rows=20_000,
    )  # fmt: skip
    check(both, tmp_path / "n", fields=6, rows=20_000)
    assert both.schema.meta["numeric"] == ["ip"]
    assert both.schema.cardinalities[0] < 200  # log buckets of ip, far fewer than distinct ips


def test_synthetic(tmp_path: Path) -> None:
    ds = prepare("synthetic", [], str(tmp_path / "d"), rows=5000, seed=1)
    check(ds, tmp_path / "d", fields=12, rows=5000)
    assert ds.schema.source == "synthetic"


def test_fixed8_keys() -> None:
    arr = pa.array(["abcdefgh", "", "abcdefgh", "12345678", "", "zzzzzzzz"])
    k = fixed8_keys(arr)
    assert k is not None and k[0] == k[2] and k[1] == k[4] == -1 and len(set(k.tolist())) == 4
    np.testing.assert_array_equal(fixed8_keys(arr.slice(2, 3)), k[2:5])
    np.testing.assert_array_equal(fixed8_keys(pa.chunked_array([arr[:3], arr[3:]])), k)
    assert fixed8_keys(pa.array(["abcdefgh", "abc"])) is None
    assert fixed8_keys(pa.array(["abcdefgh", None])) is None
    assert fixed8_keys(pa.array([1, 2])) is None
    np.testing.assert_array_equal(fixed8_keys(pa.array(["", ""])), [-1, -1])


def test_fixed8_fast_path_matches_string_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (path,) = need(CRITEO)
    with gzip.open(path, "rt") as fh:
        lines = fh.readlines()
    files = []
    for name, (a, b) in {"tr": (0, 6000), "va": (6000, 8000), "te": (8000, 10_000)}.items():
        (tmp_path / name).write_text("".join(lines[a:b]))
        files.append(str(tmp_path / name))
    fast = prepare("criteo", files, str(tmp_path / "fast"))
    monkeypatch.setattr(codes_mod, "fixed8_keys", lambda col: None)  # where prepare uses it
    slow = prepare("criteo", files, str(tmp_path / "slow"))
    assert fast.schema.fingerprint() == slow.schema.fingerprint()
    for s in SPLITS:
        np.testing.assert_array_equal(fast.split(s).x, slow.split(s).x)
    assert (fast.test.x == 0).any()  # values unseen in the train file are OOV
