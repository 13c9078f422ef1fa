"""Where AutoIAS's search time goes (issue 23, item 3): one DeepFM training of the full
table for ``--epochs`` (no early stopping) beside one AutoIAS search of the same epochs,
split into its supernet (teacher and student passes) and its generator phase. Wall-clock
seconds and process CPU seconds (one thread: on a shared box the CPU time is the steadier
measure of the cost). Usage::

    python benchmarks/autoias_cost.py --epochs 2 --param val_rows=1024
    python benchmarks/autoias_cost.py --epochs 10 --param teacher_rows=1.0 --out FILE.json
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from embsearch.budget import parse_budget
from embsearch.cli import parse_param
from embsearch.context import SearchContext
from embsearch.controllers.autoias import AutoIAS
from embsearch.data.dataset import Dataset
from embsearch.data.synthetic import make_synthetic
from embsearch.search_spaces import FieldDimsSpace
from embsearch.train import TrainConfig
from embsearch.train.trainer import train_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default="synthetic", help="synthetic or a prepared directory")
    ap.add_argument("--out", help="append the row to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(1)
    params = dict(parse_param(t) for t in args.param)
    ds = make_synthetic() if args.data == "synthetic" else Dataset.load(args.data)
    space = FieldDimsSpace(ds.schema, 16)
    budgets = sorted(space.resolve_budget(parse_budget(b)) for b in ("10%", "25%"))
    cfg = TrainConfig(epochs=args.epochs, progress=False)
    ctx = SearchContext(ds, space, budgets, train=cfg, seed=args.seed, log=lambda m: None)
    plan = space.to_plan(space.uniform(16), "full", space.full_table_bytes())
    t0, c0 = time.perf_counter(), time.process_time()
    train_model(ctx.build_model(plan), ctx.data, replace(cfg, patience=args.epochs + 1))
    full, full_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    ctrl = AutoIAS(**params)
    ctrl.search_budgets(ctx)
    search, search_cpu = time.perf_counter() - t0, time.process_time() - c0
    supernet = ctrl.state.supernet_summary
    row = {
        "params": params,
        "epochs": args.epochs,
        "full_s": round(full, 1),
        "search_s": round(search, 1),
        "supernet_s": round(supernet["seconds"], 1),
        "supernet_epochs_run": supernet["epochs_run"],
        "generator_s": round(search - supernet["seconds"], 1),
        "ratio": round(search / full, 2),
        "seed": args.seed,
        "data": args.data,
        "full_cpu_s": round(full_cpu, 1),
        "search_cpu_s": round(search_cpu, 1),
        "supernet_cpu_s": round(supernet["cpu_seconds"], 1),
        "cpu_ratio": round(search_cpu / full_cpu, 2),
    }
    print(json.dumps(row), flush=True)
    if args.out:
        path = Path(args.out)
        rows = json.loads(path.read_text()) if path.exists() else []
        path.write_text(json.dumps([*rows, row], indent=1))


if __name__ == "__main__":
    main()
