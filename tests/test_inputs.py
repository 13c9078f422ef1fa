"""Inputs checked before use (issue 18, items 3, 7, 8, 10): run directories that work from
any working directory and refuse another dataset, strict JSON, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embsearch.cli import main

FAST = ["--epochs", "1", "--batch-size", "512", "--quiet"]


def _csv(path: Path, rows: int, seed: int = 0, header: str = "user,item,hour,label") -> Path:
    """A small CSV whose label depends on ``user`` (both classes in every split)."""
    rng = np.random.default_rng(seed)
    lines = [header]
    for _ in range(rows):
        u, i, h = rng.integers(0, 30), rng.integers(0, 50), rng.integers(0, 24)
        y = int(rng.random() < (0.8 if u < 15 else 0.2))
        lines.append(f"u{u},i{i},{h},{y}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _prepare(tmp: Path, name: str, rows: int = 600, seed: int = 0) -> Path:
    out = tmp / name
    src = _csv(tmp / f"{name}.csv", rows, seed)
    args = ["data", "prepare", "--format", "csv", "--input", str(src), "--label", "label"]
    assert main([*args, "--out", str(out)]) == 0
    return out


def _error(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    """Run ``args``, expect exit 2 and one ``embsearch: error:`` line; return it."""
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("embsearch: error: "), err
    return err[0]


@pytest.fixture(scope="module")
def prepared_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A dataset prepared from a relative path and a run searched on it, from ``tmp/work``."""
    tmp = tmp_path_factory.mktemp("inputs")
    work = tmp / "work"
    work.mkdir()
    mp = pytest.MonkeyPatch()
    mp.chdir(work)
    try:
        _prepare(Path("."), "data")
        args = ["search", "--data", "data", "--budget", "25%", "--controller", "uniform"]
        assert main([*args, "--out", "run", *FAST]) == 0
    finally:
        mp.undo()
    return work / "data", work / "run"


def test_retrain_and_export_work_from_another_directory(prepared_run, tmp_path, monkeypatch):
    data, run = prepared_run
    assert json.loads((run / "config.json").read_text())["data"] == str(data.resolve())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["export", str(run), "--out", "exp"]) == 0
    assert (elsewhere / "exp" / "vocab" / "index.json").is_file()  # vocab included
    assert main(["retrain", str(run), "--epochs", "1", "--quiet"]) == 0
    assert json.loads((run / "retrain.json").read_text())["test_auc"] > 0.5


def test_another_dataset_with_the_same_field_sizes_is_refused(
    prepared_run, tmp_path, capsys, monkeypatch
):
    data, run = prepared_run
    other = _prepare(tmp_path, "other", seed=1)  # same columns and row count, other values
    cfg = json.loads((run / "config.json").read_text())
    plan = json.loads((run / "plan.json").read_text())
    from embsearch.data.dataset import Dataset

    assert Dataset.load(other).schema.num_fields == Dataset.load(data).schema.num_fields
    swapped = tmp_path / "swapped"
    swapped.mkdir()
    for name in ("plan.json", "model.pt"):
        (swapped / name).write_bytes((run / name).read_bytes())
    (swapped / "config.json").write_text(json.dumps({**cfg, "data": str(other)}))
    have = Dataset.load(other).fingerprint()
    for cmd in (["retrain", str(swapped), "--quiet"], ["export", str(swapped), "--out", "x"]):
        monkeypatch.chdir(tmp_path)
        line = _error(capsys, cmd)
        assert plan["data_fingerprint"] in line and have in line
        assert not (tmp_path / "x").exists() and not (swapped / "retrain.json").exists()


def test_a_missing_data_directory_is_named(prepared_run, tmp_path, capsys):
    _, run = prepared_run
    gone = tmp_path / "gone"
    gone.mkdir()
    for name in ("plan.json", "model.pt"):
        (gone / name).write_bytes((run / name).read_bytes())
    cfg = json.loads((run / "config.json").read_text())
    (gone / "config.json").write_text(json.dumps({**cfg, "data": str(tmp_path / "moved")}))
    line = _error(capsys, ["export", str(gone), "--out", str(tmp_path / "x")])
    assert str(tmp_path / "moved") in line and "does not exist" in line


def test_retrain_says_what_a_wrong_path_is(prepared_run, tmp_path, capsys):
    _, run = prepared_run
    exp = tmp_path / "exp"
    assert main(["export", str(run), "--out", str(exp)]) == 0
    assert "export directory" in _error(capsys, ["retrain", str(exp)])
    line = _error(capsys, ["retrain", str(run / "plan.json")])
    assert "is a file" in line and str(run) in line
    assert "is a file" in _error(capsys, ["export", str(run / "config.json"), "--out", "x"])


def test_a_budget_folder_named_by_its_budget_is_pointed_to(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "budget-25pct").mkdir(parents=True)
    (run / "budget-10pct").mkdir()
    line = _error(capsys, ["retrain", str(run / "budget-25%")])
    assert str(run / "budget-25pct") in line
    line = _error(capsys, ["retrain", str(run / "budget-7%")])
    assert "budget-10pct, budget-25pct" in line
