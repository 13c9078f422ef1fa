"""Vocabularies: written by ``prepare`` (staged with the dataset), read back, used to encode
raw values exactly as ``prepare`` did (unseen and folded values -> OOV), copied by export."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import embsearch.data.prepare as prepare_mod
from embsearch.data.dataset import SPLITS
from embsearch.data.prepare import prepare
from embsearch.data.vocab import Vocabulary, find_vocab, load_vocab, save_vocab
from embsearch.errors import DataError

AVAZU = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / "avazu-sample10k"
    / "avazu_sample.csv.gz"
)


def write_csv(path: Path, rows: list[dict[str, str]]) -> str:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return str(path)


def repeat(counts: dict[str, int]) -> list[str]:
    return [v for v, n in counts.items() for _ in range(n)]


def check_encodes(ds, vocab: Vocabulary, raw: dict[str, dict[str, list]]) -> None:
    """Encoding each split's raw values gives exactly the ids prepare stored."""
    for s in SPLITS:
        for j, name in enumerate(ds.schema.names):
            np.testing.assert_array_equal(
                vocab.encode(name, raw[s][name]), ds.split(s).x[:, j], err_msg=f"{s}/{name}"
            )
        np.testing.assert_array_equal(vocab.encode_columns(raw[s]), ds.split(s).x)


def test_csv_given_split(tmp_path: Path) -> None:
    cat = repeat({"a,b": 5, 'he said "hi"': 4, "semi;colon": 3, "rare": 1})
    id8 = repeat({"abcdefgh": 6, "12345678": 5, "": 2})  # 8-byte ids: the int64 fast path
    num = ["0", "1", "1", "2", "2", "2", "5", "5", "5", "5", "", "", "-7"]
    raw = {
        "train": {"cat": cat, "id8": id8, "num": num},
        "val": {
            "cat": ["a,b", "unseen", "rare", "semi;colon"],
            "id8": ["zzzzzzzz", "12345678", "", "abcdefgh"],
            "num": ["5", "", "1e9", "2.5"],
        },
        "test": {
            "cat": ['he said "hi"', "a, b"],
            "id8": ["abcdefgh", "abcdefgX"],
            "num": ["-7", "0"],
        },
    }
    files = []
    for s in SPLITS:
        rows = [
            {"y": str(i % 2), **{k: v[i] for k, v in raw[s].items()}}
            for i in range(len(raw[s]["cat"]))
        ]
        files.append(write_csv(tmp_path / f"{s}.csv", rows))
    out = tmp_path / "ds"
    ds = prepare("csv", files, str(out), label="y", numeric=["num"], min_count=2)

    vocab = load_vocab(out)
    assert list(vocab) == ["cat", "id8", "num"]
    assert vocab["cat"] == ["a,b", 'he said "hi"', "semi;colon"]  # "rare" folded into OOV
    assert vocab["id8"] == ["abcdefgh", "12345678", ""]
    # 5 -> code 6 + 2*floor(log(5)^2) = 10 (x4), 2 -> 5 (x3), missing -> 0 (x2), 1 -> 4 (x2):
    # ties break by code; 0 and -7 (once each) fall below min_count
    assert vocab["num"] == ["b:10", "b:5", "missing", "b:4"]
    assert [len(v) + 1 for v in vocab.values()] == ds.schema.cardinalities

    v = Vocabulary.load(out)
    check_encodes(ds, v, raw)
    assert v.encode("cat", ["a,b", "unseen", "rare"]).tolist() == [1, 0, 0]
    assert v.encode("num", [5.9, np.nan, None, 1, 2, 0]).tolist() == [1, 3, 3, 4, 2, 0]
    assert v.decode("cat", [0, 3]) == [None, "semi;colon"]

    index = json.loads((out / "vocab" / "index.json").read_text())
    assert index["fields"]["num"]["kind"] == "numeric"
    assert [e["file"] for e in index["fields"].values()] == [
        "000_cat.txt",
        "001_id8.txt",
        "002_num.txt",
    ]
    assert (
        out / "vocab" / "000_cat.txt"
    ).read_text() == '"a,b"\n"he said \\"hi\\""\n"semi;colon"\n'


def test_parquet_awkward_values_round_trip(tmp_path: Path) -> None:
    counts = {
        "line\nbreak": 9,
        "tab\there": 8,
        "sep\u2028arator": 7,
        "back\\slash": 6,
        'q"uote, comma': 5,
        "": 4,
        None: 3,
        "émoji 🎉": 2,
        "\x85nel\r": 1,
    }
    text = repeat(counts)
    n = len(text)
    ints = [7] * 20 + [3] * (n - 20)
    blob = [b"\xff\x00"] * 30 + [b"ok"] * (n - 30)  # bytes that are not UTF-8 -> hex
    raw = {
        "train": {"s": text, "i": ints, "b": blob},
        "val": {"s": ["tab\there", None, "new", ""], "i": [3, 7, 99, 3], "b": [b"ok"] * 4},
        "test": {"s": ["line\nbreak", "new"], "i": [5, 7], "b": [b"\xff\x00", b"ok"]},
    }
    files = []
    for s in SPLITS:
        t = pa.table({"y": [i % 2 for i in range(len(raw[s]["s"]))], **raw[s]})
        pq.write_table(t, tmp_path / f"{s}.parquet")
        files.append(str(tmp_path / f"{s}.parquet"))
    out = tmp_path / "ds"
    ds = prepare("parquet", files, str(out), label="y")

    vocab = load_vocab(out)
    assert vocab["s"] == list(counts)
    assert vocab["i"] == ["3", "7"]
    assert vocab["b"] == ["ff00", "6f6b"]
    v = Vocabulary.load(out)
    check_encodes(ds, v, raw)
    assert v.encode("i", ["7", "3", "8"]).tolist() == [2, 1, 0]  # text of an int column
    assert v.encode("s", pa.chunked_array([["new"], ["", None]])).tolist() == [0, 6, 7]

    index = json.loads((out / "vocab" / "index.json").read_text())
    assert index["fields"]["i"]["type"] == "int64"
    assert index["fields"]["b"]["value_encoding"] == "hex"
    path = out / "vocab" / index["fields"]["s"]["file"]
    with open(path, encoding="utf-8") as fh:  # a plain line reader, no embsearch
        assert [json.loads(line) for line in fh] == list(counts)
    assert [json.loads(line) for line in path.read_text("utf-8").splitlines()] == list(counts)
    assert path.read_bytes().count(b"\n") == len(counts)


def test_save_load_and_errors(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    d = save_vocab(tmp_path, ["a/b c", "x"], {"a/b c": ["p", "q"], "x": []})
    assert d == tmp_path / "vocab"
    assert sorted(p.name for p in d.iterdir()) == ["000_a_b_c.txt", "001_x.txt", "index.json"]
    assert load_vocab(d) == load_vocab(tmp_path) == {"a/b c": ["p", "q"], "x": []}
    v = Vocabulary.load(tmp_path)
    assert v.names == ["a/b c", "x"] and len(v) == 2 and "x" in v
    assert v.encode("a/b c", pd.Series(["q", "z", "p"])).tolist() == [2, 0, 1]
    assert v.encode("a/b c", np.array(["q", "q"])).dtype == np.int32
    assert v.encode("x", ["anything"]).tolist() == [0]
    with pytest.raises(DataError, match="no vocabulary for field 'nope'"):
        v.encode("nope", ["p"])
    with pytest.raises(DataError, match="holds no vocab"):
        load_vocab(tmp_path / "x")
    (d / "000_a_b_c.txt").write_text('"p"\n')
    with pytest.raises(DataError, match="should hold 2 JSON strings"):
        load_vocab(tmp_path)


def test_prepare_stages_vocab_atomically(tmp_path: Path, monkeypatch) -> None:
    src = write_csv(tmp_path / "in.csv", [{"y": str(i % 2), "c": str(i % 3)} for i in range(30)])

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(prepare_mod, "save_vocab", boom)
    with pytest.raises(OSError, match="disk full"):
        prepare("csv", [src], str(tmp_path / "ds"), label="y")
    assert not (tmp_path / "ds").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["in.csv"]  # no staged leftovers


def test_avazu_sample_random_split(tmp_path: Path) -> None:
    if not AVAZU.is_file():
        pytest.skip(f"shared sample {AVAZU} is absent")
    rows = 3000
    out = tmp_path / "avazu"
    ds = prepare("avazu", [str(AVAZU)], str(out), rows=rows, seed=3, warn=lambda m: None)
    names = ds.schema.names
    table = pacsv.read_csv(
        AVAZU,
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()), include_columns=names
        ),
    ).slice(0, rows)
    which = prepare_mod.split_rows(rows, (0.8, 0.1, 0.1), 3)
    parts = [np.flatnonzero(which == s) for s in range(3)]
    v = Vocabulary.load(out)
    for j, name in enumerate(names):
        ids = v.encode(name, table.column(name))
        for s, ix in zip(SPLITS, parts):
            np.testing.assert_array_equal(ids[ix], ds.split(s).x[:, j], err_msg=f"{s}/{name}")


def test_export_copies_vocab(tmp_path: Path) -> None:
    from embsearch.export import export_run
    from embsearch.run_config import RunConfig
    from embsearch.search import run_search

    rng = np.random.default_rng(0)
    rows = [
        {"y": str(int(rng.random() < 0.3)), "u": f"u{rng.integers(40)}", "g": f"g{rng.integers(5)}"}
        for _ in range(600)
    ]
    data = tmp_path / "ds"
    prepare("csv", [write_csv(tmp_path / "in.csv", rows)], str(data), label="y")
    cfg = RunConfig(data=str(data), budgets=["50%"], controller="uniform", epochs=1, batch_size=256)
    run_search(cfg, tmp_path / "run", progress=False)
    exp = export_run(tmp_path / "run", tmp_path / "exp")
    assert find_vocab(exp) == exp / "vocab"
    assert load_vocab(exp) == load_vocab(data)

    index = data / "vocab" / "index.json"  # a dataset prepared again since: warn, copy nothing
    raw = json.loads(index.read_text())
    raw["fields"]["u"]["size"] += 1
    index.write_text(json.dumps(raw))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exp2 = export_run(tmp_path / "run", tmp_path / "exp2")
    assert any("do not match" in str(w.message) for w in caught)
    assert (exp2 / "weights.safetensors").is_file() and find_vocab(exp2) is None
