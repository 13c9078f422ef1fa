"""Data larger than memory (issue 22 item 6): ``data prepare`` in record batches writes the
same files whatever the batch size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embsearch.data import tables
from embsearch.data.prepare import prepare
from embsearch.data.readers import iter_columns

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _same_in_batches(tmp_path: Path, fmt: str, inputs: list[str], **kw: object) -> None:
    """Prepared with 1 batch and with batches of ~300 rows: byte-identical files."""
    whole, batched = tmp_path / "whole", tmp_path / "batched"
    prepare(fmt, inputs, str(whole), warn=lambda m: None, batch_rows=10**9, **kw)
    prepare(fmt, inputs, str(batched), warn=lambda m: None, batch_rows=300, **kw)
    a, b = _files(whole), _files(batched)
    assert list(a) == list(b)
    for name in a:
        assert a[name] == b[name], name
    assert not [p for p in batched.iterdir() if p.name.startswith(".")]  # no scratch left


def test_batches_leave_generated_csv_unchanged(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """Batches of about 300 rows (small CSV blocks) and one batch: the same files. Values first seen in late batches, a column that is 8-byte hex ids in the first
    batches and not later (the int64 keys turn into strings), empty and missing cells,
    a bucketised numeric column, values only in validation/test rows, ``--min-count``."""
    rng = np.random.default_rng(0)
    n = 4000
    hexes = np.array([f"{v:08x}" for v in rng.integers(0, 2**32, 400)])
    c8 = hexes[np.minimum((400 * rng.random(n) ** 3).astype(int), 399)].astype(object)
    c8[2500:] = np.where(rng.random(n - 2500) < 0.3, "short", c8[2500:])
    c8[rng.random(n) < 0.05] = ""
    late = np.where(np.arange(n) > 3000, rng.integers(0, 900, n), rng.integers(0, 30, n))
    num = np.where(rng.random(n) < 0.1, "", np.round(rng.lognormal(2, 2, n), 2).astype(str))
    y = (rng.random(n) < 0.3).astype(int)
    lines = ["y,c8,late,num"] + [
        f"{y[i]},{c8[i]},v{late[i]},{num[i]}" for i in range(n)
    ]  # fmt: skip
    src = tmp_path / "in.csv"
    src.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(tables, "STREAM_MIN_BLOCK_BYTES", 1 << 10)
    monkeypatch.setattr(tables, "STREAM_ROW_BYTES", 20)
    assert len(list(iter_columns("csv", str(src), label="y", batch_rows=300))) >= 10
    for k, kw in enumerate(({}, {"min_count": 3, "seed": 5})):
        _same_in_batches(tmp_path / str(k), "csv", [str(src)], label="y", numeric=["num"], **kw)


@pytest.mark.parametrize(
    ("fmt", "files", "kw"),
    [
        ("criteo", ["criteo-kaggle-head10k/train_head10k.txt.gz"], {"min_count": 2}),
        ("avazu", ["avazu-sample10k/avazu_sample.csv.gz"], {}),
        (
            "csv",
            [f"frappe-split/frappe_{s}.csv.gz" for s in ("train", "valid", "test")],
            {"label": "label"},
        ),
    ],
)
def test_batches_leave_shared_samples_unchanged(
    tmp_path: Path, fmt: str, files: list[str], kw: dict
) -> None:
    paths = [SHARED / f for f in files]
    if not all(p.is_file() for p in paths):
        pytest.skip("shared samples are absent")
    _same_in_batches(tmp_path, fmt, [str(p) for p in paths], **kw)
