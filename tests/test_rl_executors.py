"""NIS's step 6 on an executor (issue 22 item 5): its policies' samples, scored in worker
processes (``--executor local --jobs 2``) from the saved supernet, give the serial run's
scores, policy and plan: rewards are told in ask order and no sample of a batch is drawn
before the previous batch's update, however the workers' results come back. The supernet
(trained alternating with the policies) stays in the search's process."""

from __future__ import annotations

import json
import os
import socket
from collections import Counter
from pathlib import Path

import pytest

from embsearch.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

ARGS = [
    "--data", "synthetic", "--budget", "15%", "--controller", "nis", "--epochs", "1",
    "--batch-size", "1024", "--threads", "1", "--quiet", "--param", "policy_every=4",
    "--param", "policy_batch=6", "--param", "search_updates=3", "--param", "val_rows=512",
]  # fmt: skip


def search(tmp_path: Path, name: str, *args: str) -> Path:
    cfg = tmp_path / "small.json"
    cfg.write_text(json.dumps({"synthetic_rows": 6000}))
    out = tmp_path / name
    assert main(["search", "--config", str(cfg), *ARGS, *args, "--out", str(out)]) == 0
    return out


def evaluations(run: Path) -> list[dict]:
    history = json.loads((run / "search.json").read_text())["history"]
    return [e for e in history if e["event"] == "evaluation"]


def test_nis_local_jobs_2_gives_the_serial_plan(tmp_path):
    serial = search(tmp_path, "serial")
    local = search(tmp_path, "local", "--executor", "local", "--jobs", "2")
    scored = [
        Counter((json.dumps(e["candidate"]), e["score"]) for e in evaluations(r))
        for r in (serial, local)
    ]
    assert sum(scored[0].values()) == 3 * 6 and scored[0] == scored[1]
    plans = [json.loads((r / "plan.json").read_text()) for r in (serial, local)]
    assert [f["groups"] for f in plans[0]["fields"]] == [f["groups"] for f in plans[1]["fields"]]
    for key in ("policy", "mean_reward_first_last", "inherited_val_auc", "best_sample"):
        assert plans[0]["extra"][key] == plans[1]["extra"][key], key
    here = f"{socket.gethostname()}:{os.getpid()}"
    workers = {e.get("worker") for e in evaluations(local) if not e["cached"]}
    assert workers and None not in workers and here not in workers  # ran in the workers
