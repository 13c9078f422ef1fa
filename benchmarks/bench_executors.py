"""Trials per minute on each executor, and Ray's overhead per trial once its workers are warm.

One ``embsearch search`` per executor (a subprocess each, as a user runs it): ``tpe`` with
``--trials`` trials, each trained from scratch for ``--trial-epochs`` epochs
(``scoring=scratch``), on a prepared dataset at one budget, one torch thread per trial:
``serial`` (in the search's process), ``local --jobs 1``, ``local --jobs 2`` and ``ray``
(a private one-machine cluster of ``--ray-jobs`` CPUs). From ``search.json``: the loop's
seconds (its ``loop_end`` record) give trials per minute; for the worker executors each
trial's wall time at the driver (``seconds``, submit to result) against its time in the
worker (``worker_seconds``) gives the overhead per trial, reported over the warm trials
(each worker's first trial also loads the dataset and imports torch). The machine's load
(``os.getloadavg``) is recorded before and after each run. Usage::

    embsearch data prepare --format csv --input ../shared/data/frappe-split/frappe_{train,valid,test}.csv.gz \\
        --label label --out /tmp/frappe
    python benchmarks/bench_executors.py --data /tmp/frappe \\
        --out benchmarks/results/executors/frappe.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = {
    "serial": [],
    "local-1": ["--executor", "local", "--jobs", "1"],
    "local-2": ["--executor", "local", "--jobs", "2"],
    "ray": ["--executor", "ray"],
}


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def one(mode: str, args: argparse.Namespace, tmp: Path) -> dict:
    out = tmp / mode
    extra = MODES[mode] + (["--jobs", str(args.ray_jobs)] if mode == "ray" else [])
    argv = [
        sys.executable, "-m", "embsearch", "search", "--data", args.data, "--budget", args.budget,
        "--controller", "tpe", "--param", f"trials={args.trials}", "--param", "scoring=scratch",
        "--param", f"trial_epochs={args.trial_epochs}", "--epochs", "1", "--threads", "1",
        "--seed", str(args.seed), "--quiet", "--out", str(out), *extra,
    ]  # fmt: skip
    before = load()
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{mode}: {done.stderr.strip()}")
    history = json.loads((out / "search.json").read_text())["history"]
    (loop,) = [e for e in history if e["event"] == "loop_end"]
    evals = [e for e in history if e["event"] == "evaluation"]
    row = {
        "mode": mode,
        "trials": len(evals),
        "loop_s": round(loop["seconds"], 2),
        "trials_per_min": round(60 * len(evals) / loop["seconds"], 2),
        "best_val_auc": round(loop["best_score"], 5),
        "trial_train_s_median": round(statistics.median(e["train_seconds"] for e in evals), 3),
        "command_wall_s": round(wall, 1),
        "load_before": before,
        "load_after": load(),
    }
    if "worker" in evals[0]:
        seen: set[str] = set()
        warm = []
        for e in evals:  # in the order they finished; a worker's first trial is not warm
            if e["worker"] in seen:
                warm.append(e)
            seen.add(e["worker"])
        over = [e["seconds"] - e["worker_seconds"] for e in warm]
        share = [(e["seconds"] - e["worker_seconds"]) / e["seconds"] for e in warm]
        row.update(
            workers=len(seen),
            warm_trials=len(warm),
            overhead_s_median=round(statistics.median(over), 4) if over else None,
            overhead_s_max=round(max(over), 4) if over else None,
            overhead_share_median=round(statistics.median(share), 4) if share else None,
            worker_s_median=round(statistics.median(e["worker_seconds"] for e in warm), 3)
            if warm
            else None,
        )
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="a prepared dataset directory")
    p.add_argument("--budget", default="10%")
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--trial-epochs", type=int, default=3)
    p.add_argument("--ray-jobs", type=int, default=2)
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="results JSON")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes.split(","):
            rows.append(one(mode, args, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"config": vars(args), "cores": os.cpu_count(), "rows": rows}
    out.write_text(json.dumps(record, indent=1, allow_nan=False))


if __name__ == "__main__":
    main()
