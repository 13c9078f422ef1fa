"""Data larger than memory (issue 22 item 6): ``data prepare`` in record batches writes the
same files whatever the batch size; training from memory-mapped chunks gives the in-memory
model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from embsearch.backbones import CTRModel, make_backbone
from embsearch.data import tables
from embsearch.data.batches import DeviceSplit
from embsearch.data.chunks import ChunkedSplit
from embsearch.data.dataset import Dataset, Split
from embsearch.data.prepare import prepare
from embsearch.data.readers import iter_columns
from embsearch.data.synthetic import make_synthetic
from embsearch.embeddings import MixedDimEmbedding
from embsearch.errors import ConfigError
from embsearch.search_spaces import FieldDimsSpace
from embsearch.train import TrainConfig
from embsearch.train.device import RESIDENT_ENV, seed_everything
from embsearch.train.trainer import DeviceData, TrainResult, evaluate, train_model

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


def _train(data: DeviceData, seed: int) -> tuple[dict, TrainResult]:
    torch.set_num_threads(1)
    g = seed_everything(seed)
    space = FieldDimsSpace(data.dataset.schema, 4)
    plan = space.to_plan(space.uniform(4), "uniform", space.full_table_bytes())
    model = CTRModel(MixedDimEmbedding(plan), make_backbone("deepfm", space.num_fields, 4))
    cfg = TrainConfig(epochs=2, batch_size=256, eval_every=7, progress=False)
    res = train_model(model, data, cfg, generator=g)
    return model.state_dict(), res


@pytest.mark.parametrize("seed", [0, 1])
def test_chunked_training_gives_the_in_memory_model(tmp_path: Path, seed: int) -> None:
    """Training from memory-mapped chunks (chunks of 3 batches and a ragged last one, the
    validation split in chunks too) gives exactly the in-memory model, metrics and history."""
    prepare("synthetic", [], str(tmp_path / "ds"), rows=4000, seed=seed)
    ds = Dataset.load(tmp_path / "ds")
    assert isinstance(ds.train.x, np.memmap)
    resident = DeviceData(ds, torch.device("cpu"))
    chunked = DeviceData(ds, torch.device("cpu"), resident_bytes=0, chunk_rows=800)
    sa, ra = _train(resident, seed)
    sb, rb = _train(chunked, seed)
    assert resident.chunked() == [] and chunked.chunked() == ["train", "val"]
    assert ra.history == rb.history and ra.best_step == rb.best_step
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert evaluate_split(sa, resident) == evaluate_split(sb, chunked)


def evaluate_split(state: dict, data: DeviceData) -> tuple[float, float]:
    """Test metrics of the trained weights, read through ``data``'s test split."""
    space = FieldDimsSpace(data.dataset.schema, 4)
    plan = space.to_plan(space.uniform(4), "uniform", space.full_table_bytes())
    model = CTRModel(MixedDimEmbedding(plan), make_backbone("deepfm", space.num_fields, 4))
    model.load_state_dict(state)
    return evaluate(model, data.split("test"), 333)


def test_chunked_split_batches_match_device_split() -> None:
    """Shuffled and in order, any chunk size: the same batches, row for row."""
    rng = np.random.default_rng(0)
    split = Split(rng.integers(0, 50, (1000, 3)).astype(np.int32), rng.random(1000).astype("f4"))
    whole = DeviceSplit(split)
    for chunk_rows, batch, shuffle in [(1, 64, True), (300, 64, True), (10**6, 7, False)]:
        a = list(whole.batches(batch, shuffle=shuffle, generator=torch.Generator().manual_seed(3)))
        b = list(
            ChunkedSplit(split, chunk_rows=chunk_rows).batches(
                batch, shuffle=shuffle, generator=torch.Generator().manual_seed(3)
            )
        )
        assert len(a) == len(b)
        for (xa, ya), (xb, yb) in zip(a, b):
            assert xb.dtype == torch.int64 and torch.equal(xa, xb) and torch.equal(ya, yb)


def test_resident_limit_picks_the_splits_fed_in_chunks(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """``EMBSEARCH_RESIDENT_BYTES``: a split whose int64 ids and labels exceed it is chunked,
    a smaller one is held whole; a value that is not a number is refused in one line."""
    ds = make_synthetic(rows=3000, seed=0)
    fields = ds.schema.num_fields
    limit = len(ds.val) * (fields * 8 + 4)  # val and test fit, train (8x larger) does not
    monkeypatch.setenv(RESIDENT_ENV, str(limit))
    data = DeviceData(ds, torch.device("cpu"))
    assert isinstance(data.split("train"), ChunkedSplit)
    assert isinstance(data.split("val"), DeviceSplit)
    assert data.chunked() == ["train"]
    monkeypatch.setenv(RESIDENT_ENV, "lots")
    with pytest.raises(ConfigError, match=RESIDENT_ENV):
        DeviceData(ds, torch.device("cpu")).split("train")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_chunked_training_on_cuda_gives_the_in_memory_model(tmp_path: Path) -> None:
    """On CUDA (pinned chunks, non_blocking int32 copies): the in-memory model, exactly."""
    prepare("synthetic", [], str(tmp_path / "ds"), rows=4000, seed=0)
    ds = Dataset.load(tmp_path / "ds")
    cuda = torch.device("cuda")
    sa, ra = _train(DeviceData(ds, cuda), 0)
    sb, rb = _train(DeviceData(ds, cuda, resident_bytes=0, chunk_rows=800), 0)
    assert ra.history == rb.history
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
