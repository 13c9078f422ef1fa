"""Evolutionary trials on an executor (issue 22 item 5): optembed's evolution and rule's
estimator samples, scored in worker processes (``--executor local --jobs 2``) from the saved
supernet, give the same scores and the same plan as in the search's own process; their
final checks (and rule's estimator-scored evolution) stay in the search's process."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from embsearch.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

BASE = [
    "--data", "synthetic", "--budget", "15%", "--param", "supernet_epochs=1", "--epochs", "1",
    "--batch-size", "1024", "--threads", "1", "--quiet",
    "--param", "population=6", "--param", "generations=2", "--param", "top_k=3",
]  # fmt: skip
REMOTE = {"optembed": ("search", []), "rule": ("estimator", ["--param", "estimator_samples=8"])}


def search(tmp_path: Path, name: str, *args: str) -> Path:
    cfg = tmp_path / "small.json"
    cfg.write_text(json.dumps({"synthetic_rows": 6000}))
    out = tmp_path / name
    assert main(["search", "--config", str(cfg), *BASE, *args, "--out", str(out)]) == 0
    return out


def evaluations(run: Path, phase: str) -> list[dict]:
    history = json.loads((run / "search.json").read_text())["history"]
    return [e for e in history if e["event"] == "evaluation" and e["phase"] == phase]


@pytest.mark.parametrize("controller", sorted(REMOTE))
def test_local_jobs_2_scores_as_this_process_does(tmp_path, controller):
    phase, extra = REMOTE[controller]
    args = ["--controller", controller, *extra]
    serial = search(tmp_path, "serial", *args)
    local = search(tmp_path, "local", *args, "--executor", "local", "--jobs", "2")
    scored = [
        sorted((json.dumps(e["candidate"]), e["score"]) for e in evaluations(r, phase))
        for r in (serial, local)
    ]
    assert len(scored[0]) > 0 and scored[0] == scored[1]
    plans = [json.loads((r / "plan.json").read_text()) for r in (serial, local)]
    assert [f["groups"] for f in plans[0]["fields"]] == [f["groups"] for f in plans[1]["fields"]]
    assert plans[0]["extra"]["inherited_val_auc"] == plans[1]["extra"]["inherited_val_auc"]
    here = f"{socket.gethostname()}:{os.getpid()}"
    workers = {e.get("worker") for e in evaluations(local, phase) if not e["cached"]}
    assert workers and None not in workers and here not in workers  # ran in the workers
    assert all("worker" not in e for e in evaluations(local, "final"))  # checks stay here
