"""The full-size baseline is a first-class run: trained once per dataset and recipe, tested,
and reused (issue 19 item 6); trainings record their per-epoch times."""

from __future__ import annotations

import json

import pytest
import torch

from embsearch.baseline import cache_dir
from embsearch.cli import main

FAST = ["--epochs", "2", "--batch-size", "1024", "--quiet"]


@pytest.fixture(autouse=True)
def _small(monkeypatch):
    from embsearch import run_config

    monkeypatch.setattr(run_config.RunConfig, "synthetic_rows", 6000)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _json(path):
    return json.loads(path.read_text())


def test_full_budget_run_is_the_tested_baseline_and_retrain_reuses_it(tmp_path, capsys):
    full, small = tmp_path / "full", tmp_path / "small"
    args = ["search", "--controller", "uniform", "--threads", "1", *FAST]
    assert main([*args, "--budget", "100%", "--out", str(full)]) == 0
    assert "this run trains and tests the full-size baseline" in capsys.readouterr().err
    base = _json(full / "search.json")["baseline"]
    assert 0.5 < base["test_auc"] <= 1 and base["epochs_run"] >= 1
    assert len(base["epoch_times"]) == base["epochs_run"] and base["samples_per_s"] > 0
    (stored,) = cache_dir().glob("*.json")
    assert _json(stored)["test_auc"] == base["test_auc"] and stored.stem == base["key"]

    # retrain of the full-size run: the identical model, so its record is reused
    assert main(["retrain", str(full), "--quiet"]) == 0
    report = _json(full / "retrain.json")
    assert report["test_auc"] == base["test_auc"] and report["baseline_key"] == base["key"]

    # another plan of the same recipe: --with-baseline reuses it too
    assert main([*args, "--budget", "25%", "--out", str(small)]) == 0
    assert main(["retrain", str(small), "--with-baseline", "--quiet"]) == 0
    report = _json(small / "retrain.json")
    assert report["baseline_reused"] is True and report["baseline_test_auc"] == base["test_auc"]
    assert report["baseline_training"]["epochs_run"] == base["epochs_run"]

    # another recipe (more epochs) is another baseline, trained once, then reused
    assert main(["retrain", str(small), "--with-baseline", "--epochs", "1", "--quiet"]) == 0
    first = _json(small / "retrain.json")
    assert first["baseline_reused"] is False and first["baseline_key"] != base["key"]
    assert main(["retrain", str(small), "--with-baseline", "--epochs", "1", "--quiet"]) == 0
    again = _json(small / "retrain.json")
    assert again["baseline_reused"] is True
    assert again["baseline_test_auc"] == first["baseline_test_auc"]
    assert len(list(cache_dir().glob("*.json"))) == 2


def test_a_reused_baseline_equals_a_fresh_training(tmp_path):
    """The cached record is what training the full table again gives (bit-identical model)."""
    run = tmp_path / "run"
    args = ["search", "--controller", "uniform", "--threads", "1", "--budget", "25%", *FAST]
    assert main([*args, "--out", str(run)]) == 0
    assert main(["retrain", str(run), "--with-baseline", "--quiet"]) == 0
    fresh = _json(run / "retrain.json")
    for f in cache_dir().glob("*.json"):
        f.unlink()
    assert main(["retrain", str(run), "--with-baseline", "--quiet"]) == 0
    again = _json(run / "retrain.json")
    assert fresh["baseline_reused"] is False and again["baseline_reused"] is False
    assert again["baseline_test_auc"] == fresh["baseline_test_auc"]


def test_search_and_retrain_record_per_epoch_times(tmp_path):
    run = tmp_path / "run"
    assert main(["search", "--budget", "25%", "--threads", "1", "--out", str(run), *FAST]) == 0
    training = _json(run / "search.json")["training"]
    assert [e["epoch"] for e in training["epoch_times"]] == list(
        range(1, training["epochs_run"] + 1)
    )
    for e in training["epoch_times"]:
        assert 0 < e["train_seconds"] <= e["seconds"] and e["samples"] > 0
    assert main(["retrain", str(run), "--quiet"]) == 0
    report = _json(run / "retrain.json")
    assert report["samples_per_s"] > 0 and len(report["epoch_times"]) == report["epochs_run"]


def test_an_unwritable_cache_only_costs_the_reuse(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    monkeypatch.setenv("EMBSEARCH_CACHE", str(blocked))
    run = tmp_path / "run"
    args = ["search", "--controller", "uniform", "--threads", "1", "--budget", "100%", *FAST]
    assert main([*args, "--out", str(run)]) == 0
    assert _json(run / "search.json")["baseline"]["stored"] is None
