"""Training throughput beside busy processes (issue 19 item 5): per-epoch times of the
full-size default DeepFM at several ``--threads`` settings, alone and with competing
processes that each keep one core busy.

    python benchmarks/bench_contention.py --data prepared/frappe-split --epochs 4 \\
        --threads 0 1 --competitors 0 1 --out benchmarks/results/contention/frappe.jsonl

``--threads 0`` is torch's own default (every core); the embsearch default is
``train.device.default_threads()``. Each (threads, competitors) pair trains once with early
stopping off and appends one JSON line with every epoch's seconds and samples/s.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from embsearch.retrain import full_table_plan
from embsearch.run_config import RunConfig
from embsearch.search import build_space, load_dataset, make_context
from embsearch.train.device import default_threads


def _spin(stop: mp.Event) -> None:  # type: ignore[valid-type]
    x = 0
    while not stop.is_set():  # type: ignore[attr-defined]
        for _ in range(100_000):
            x += 1


def run(data: str, threads: int, epochs: int) -> dict:
    cfg = RunConfig(data=data, epochs=epochs, threads=threads or os.cpu_count())
    dataset = load_dataset(cfg)
    space = build_space(cfg, dataset, "field_dims")
    ctx = make_context(cfg, dataset, space, [space.full_table_bytes()], progress=False)
    ctx.train.patience = epochs + 1  # every epoch runs
    _, result = ctx.train_plan(full_table_plan(ctx), desc="full table")
    times = result.timing_record()
    secs = [e["train_seconds"] for e in times["epoch_times"]]
    return {
        "threads": torch.get_num_threads(),
        "epoch_train_seconds": [round(s, 3) for s in secs],
        "median_epoch_s": round(statistics.median(secs), 3),
        "samples_per_s": times["samples_per_s"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--threads", nargs="+", type=int, default=[0, 1], help="0: torch's default")
    ap.add_argument("--competitors", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for n in args.competitors:
        stop = mp.Event()
        procs = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(n)]
        for p in procs:
            p.start()
        time.sleep(1.0)
        try:
            for t in args.threads:
                row = run(args.data, t, args.epochs)
                row.update(
                    competitors=n,
                    threads_asked="torch default" if t == 0 else t,
                    embsearch_default_threads=default_threads(),
                    cpu_count=os.cpu_count(),
                    cpu=platform.processor() or platform.machine(),
                    torch=torch.__version__,
                )
                with out.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
        finally:
            stop.set()
            for p in procs:
                p.join()


if __name__ == "__main__":
    main()
