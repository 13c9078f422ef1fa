"""Bad input and bad options: one-line ``DataError``/``ConfigError``, and no output left behind."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import pytest

from embsearch.data.prepare import prepare
from embsearch.data.schema import Schema
from embsearch.errors import ConfigError, DataError

CRITEO_ROW = (
    "1\t" + "\t".join(str(i) for i in range(13)) + "\t" + "\t".join(f"{i:08x}" for i in range(26))
)
GOOD_CSV = "a,b,y\n" + "".join(
    f"{i % 3},{i % 5},{i % 2}\n" for i in range(60)
)  # both classes in each split
GOOD_LIBFM = "".join(f"{1 if i % 3 == 0 else -1} {i % 7}:1 {10 + i % 4}:1\n" for i in range(50))


def write(tmp: Path, name: str, text: str | bytes) -> str:
    p = tmp / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(p)


Case = tuple[str, Callable[[Path], dict], type, list[str]]

CASES: list[Case] = [
    ("unknown format", lambda t: dict(fmt="tsv", inputs=[write(t, "a.csv", GOOD_CSV)], label="y"), ConfigError, ["tsv", "criteo"]),
    ("two inputs", lambda t: dict(fmt="csv", inputs=[write(t, "a.csv", GOOD_CSV)] * 2, label="y"), ConfigError, ["three"]),
    ("missing file", lambda t: dict(fmt="csv", inputs=[str(t / "nope.csv")], label="y"), DataError, ["nope.csv"]),
    ("min_count 0", lambda t: dict(fmt="csv", inputs=[write(t, "a.csv", GOOD_CSV)], label="y", min_count=0), ConfigError, ["--min-count"]),
    ("split sum", lambda t: dict(fmt="csv", inputs=[write(t, "a.csv", GOOD_CSV)], label="y", split=(0.8, 0.1, 0.2)), ConfigError, ["sum to 1"]),
    ("split negative", lambda t: dict(fmt="csv", inputs=[write(t, "a.csv", GOOD_CSV)], label="y", split=(1.2, -0.1, -0.1)), ConfigError, ["non-negative"]),
    ("split two", lambda t: dict(fmt="csv", inputs=[write(t, "a.csv", GOOD_CSV)], label="y", split=(0.9, 0.1)), ConfigError, ["three"]),
    ("rows 0", lambda t: dict(fmt="csv", inputs=[write(t, "a.csv", GOOD_CSV)], label="y", rows=0), ConfigError, ["--rows"]),
    ("empty val split", lambda t: dict(fmt="csv", inputs=[write(t, "a.csv", "a,y\n1,0\n2,1\n3,0\n4,1\n")], label="y"), DataError, ["val split is empty", "--split"]),
    ("empty test split", lambda t: dict(fmt="csv", inputs=[write(t, "a.csv", GOOD_CSV)], label="y", split=(0.9, 0.1, 0.0)), DataError, ["test split is empty"]),
    ("csv without label", lambda t: dict(fmt="csv", inputs=[write(t, "a.csv", GOOD_CSV)]), ConfigError, ["--label"]),
    ("missing label column", lambda t: dict(fmt="csv", inputs=[write(t, "a.csv", GOOD_CSV)], label="click"), DataError, ["'click'", "a, b, y"]),
    ("missing categorical column", lambda t: dict(fmt="csv", inputs=[write(t, "a.csv", GOOD_CSV)], label="y", categorical=["a", "zz"]), DataError, ["'zz'", "a, b, y"]),
    ("missing drop column", lambda t: dict(fmt="csv", inputs=[write(t, "a.csv", GOOD_CSV)], label="y", drop=["attributed_time"]), DataError, ["'attributed_time'", "a, b, y"]),
    ("label 2", lambda t: dict(fmt="csv", inputs=[write(t, "a.csv", GOOD_CSV.replace("\n0,0,1\n", "\n0,0,2\n"))], label="y"), DataError, ["'y'", "'2'"]),
    ("label -1 in csv", lambda t: dict(fmt="csv", inputs=[write(t, "a.csv", GOOD_CSV.replace(",1\n", ",-1\n"))], label="y"), DataError, ["'y'", "'-1'"]),
    ("label text", lambda t: dict(fmt="csv", inputs=[write(t, "a.csv", GOOD_CSV)], label="b"), DataError, ["'b'"]),
    ("label empty", lambda t: dict(fmt="csv", inputs=[write(t, "a.csv", GOOD_CSV.replace("\n0,0,1\n", "\n0,0,\n"))], label="y"), DataError, ["'y'", "empty"]),
    ("label named twice", lambda t: dict(fmt="csv", inputs=[write(t, "a.csv", GOOD_CSV)], label="y", categorical=["a", "y"]), ConfigError, ["'y'"]),
    ("numeric not numbers", lambda t: dict(fmt="csv", inputs=[write(t, "a.csv", GOOD_CSV.replace("\n0,0,1\n", "\nx,0,1\n"))], label="y", numeric=["a"]), DataError, ["'a'", "--categorical", "'x'"]),
    ("empty file", lambda t: dict(fmt="csv", inputs=[write(t, "a.csv", "")], label="y"), DataError, ["a.csv"]),
    ("header only", lambda t: dict(fmt="csv", inputs=[write(t, "a.csv", "a,b,y\n")], label="y"), DataError, ["no data rows"]),
    ("corrupt gzip", lambda t: dict(fmt="csv", inputs=[write(t, "a.csv.gz", b"\x1f\x8b" + b"junk" * 40)], label="y"), DataError, ["a.csv.gz"]),
    ("criteo wrong columns", lambda t: dict(fmt="criteo", inputs=[write(t, "c.txt", GOOD_CSV)]), DataError, ["40", "criteo"]),
    ("criteo text in int", lambda t: dict(fmt="criteo", inputs=[write(t, "c.txt", (CRITEO_ROW + "\n") * 5 + CRITEO_ROW.replace("\t5\t", "\tfive\t", 1) + "\n")]), DataError, ["c.txt", "five"]),
    ("criteo label 3", lambda t: dict(fmt="criteo", inputs=[write(t, "c.txt", ("3" + CRITEO_ROW[1:] + "\n") * 20)]), DataError, ["'label'", "'3'"]),
    ("criteo --categorical", lambda t: dict(fmt="criteo", inputs=[write(t, "c.txt", (CRITEO_ROW + "\n") * 20)], categorical=["C1"]), ConfigError, ["--categorical"]),
    ("criteo drop unknown", lambda t: dict(fmt="criteo", inputs=[write(t, "c.txt", (CRITEO_ROW + "\n") * 20)], drop=["C27"]), DataError, ["C27"]),
    ("libfm ragged", lambda t: dict(fmt="libfm", inputs=[write(t, "f.libfm", GOOD_LIBFM + "1 3:1 11:1 20:1\n")]), DataError, ["same number of tokens"]),
    ("libfm no colon", lambda t: dict(fmt="libfm", inputs=[write(t, "f.libfm", GOOD_LIBFM.replace("3:1 ", "3 "))]), DataError, ["':'"]),
    ("libfm label 2", lambda t: dict(fmt="libfm", inputs=[write(t, "f.libfm", GOOD_LIBFM.replace("-1 5:1", "2 5:1"))]), DataError, ["'label'", "'2'"]),
    ("libfm given csv", lambda t: dict(fmt="libfm", inputs=[write(t, "f.libfm", GOOD_CSV)]), DataError, ["idx:val"]),
    ("three files differ", lambda t: dict(fmt="csv", inputs=[write(t, "a.csv", GOOD_CSV), write(t, "b.csv", GOOD_CSV.replace("a,b,y", "a,c,y")), write(t, "a.csv", GOOD_CSV)], label="y"), DataError, ["same columns"]),
    ("three files, bad label in test", lambda t: dict(fmt="csv", inputs=[write(t, "a.csv", GOOD_CSV)] * 2 + [write(t, "b.csv", GOOD_CSV.replace(",1\n", ",7\n"))], label="y"), DataError, ["b.csv", "'7'"]),
    ("parquet not parquet", lambda t: dict(fmt="parquet", inputs=[write(t, "a.parquet", GOOD_CSV)], label="y"), DataError, ["a.parquet"]),
    ("synthetic with inputs", lambda t: dict(fmt="synthetic", inputs=[write(t, "a.csv", GOOD_CSV)]), ConfigError, ["no input files"]),
]  # fmt: skip


def leftovers(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith((".out", "out")))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_one_line_error(tmp_path: Path, case: Case) -> None:
    _, make, exc_type, words = case
    kwargs = make(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(exc_type) as info:
        prepare(kwargs.pop("fmt"), kwargs.pop("inputs"), str(out), **kwargs)
    msg = str(info.value)
    assert "\n" not in msg and msg.strip() == msg and msg
    for w in words:
        assert w in msg, f"{w!r} missing from: {msg}"
    assert leftovers(tmp_path) == []


def test_good_inputs_of_the_error_tests_work(tmp_path: Path) -> None:
    """The fixtures above fail only because of what each case changes."""
    ds = prepare("csv", [write(tmp_path, "a.csv", GOOD_CSV)], str(tmp_path / "o1"), label="y")
    assert ds.schema.names == ["a", "b"]
    gz = tmp_path / "f.libfm.gz"
    gz.write_bytes(gzip.compress(GOOD_LIBFM.encode()))
    ds = prepare("libfm", [str(gz)], str(tmp_path / "o2"))
    assert ds.schema.names == ["f0", "f1"] and set(ds.train.y.tolist()) == {0.0, 1.0}
    rows = "".join(f"{i % 2}{CRITEO_ROW[1:]}\n" for i in range(60))  # both classes in each split
    ds = prepare(
        "criteo", [write(tmp_path, "c.txt", rows)], str(tmp_path / "o3"), warn=lambda m: None
    )
    assert ds.schema.num_fields == 39


def test_existing_out_is_left_alone(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="already exists"):
        prepare("csv", [write(tmp_path, "a.csv", GOOD_CSV)], str(out), label="y")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert leftovers(tmp_path) == ["out"]


def test_failure_while_saving_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(self: Schema, directory: object) -> None:
        (Path(str(directory)) / "partial").write_text("x")
        raise OSError("disk full")

    monkeypatch.setattr(Schema, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        prepare("csv", [write(tmp_path, "a.csv", GOOD_CSV)], str(tmp_path / "out"), label="y")
    assert leftovers(tmp_path) == []


def test_constant_field_warns_or_drops(tmp_path: Path) -> None:
    text = "k,a,y\n" + "".join(f"same,{i % 4},{(i // 4) % 2}\n" for i in range(80))
    path = write(tmp_path, "a.csv", text)
    msgs: list[str] = []
    ds = prepare("csv", [path], str(tmp_path / "o1"), label="y", warn=msgs.append)
    assert ds.schema.names == ["k", "a"] and len(msgs) == 1
    assert "'k'" in msgs[0] and "--drop-constant" in msgs[0]
    ds = prepare(
        "csv", [path], str(tmp_path / "o2"), label="y", drop_constant=True, warn=msgs.append
    )
    assert ds.schema.names == ["a"] and len(msgs) == 1
    with pytest.warns(UserWarning, match="'k'"):
        prepare("csv", [path], str(tmp_path / "o3"), label="y")
    only = write(tmp_path, "b.csv", "k,y\n" + "same,0\n" * 40 + "same,1\n" * 40)
    with pytest.raises(DataError, match="every field is constant"):
        prepare("csv", [only], str(tmp_path / "o4"), label="y", drop_constant=True)
    assert not (tmp_path / "o4").exists()


def test_parquet_nested_column_is_named(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 60
    table = pa.table(
        {
            "a": [i % 3 for i in range(n)],
            "tags": [[k] for k in range(n)],
            "y": [i % 2 for i in range(n)],
        }
    )
    pq.write_table(table, tmp_path / "a.parquet")
    with pytest.raises(DataError, match="'tags'.*--drop tags"):
        prepare("parquet", [str(tmp_path / "a.parquet")], str(tmp_path / "out"), label="y")
    assert leftovers(tmp_path) == []
    ds = prepare(
        "parquet", [str(tmp_path / "a.parquet")], str(tmp_path / "ok"), label="y", drop=["tags"]
    )
    assert ds.schema.names == ["a"]
