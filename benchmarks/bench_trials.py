"""Trials per minute of the black-box controllers, with and without the run's journal.

For each controller (``tpe``, ``random``, ``cmaes``, ``nsga2`` by default) one search on a
prepared dataset at one budget: the supernet is trained once (``--supernet-epochs``), then
``--trials`` trials are asked, scored with inherited weights and told, in memory and again
with every trial written to an Optuna journal file (what ``embsearch search`` does). The
loop's own seconds (from its ``loop_end`` record) give trials per minute; the supernet's
seconds are reported beside them. Usage::

    python benchmarks/bench_trials.py --data /tmp/proto/data/frappe --budget 10% \\
        --trials 64 --threads 1 --out benchmarks/results/black_box/trials.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from embsearch.budget import parse_budget
from embsearch.context import SearchContext
from embsearch.controllers.registry import get_controller
from embsearch.data.dataset import Dataset
from embsearch.search_spaces import FieldDimsSpace
from embsearch.train import TrainConfig
from embsearch.trial_store import open_store


def one(name: str, ds: Dataset, args: argparse.Namespace, journal: bool) -> dict:
    space = FieldDimsSpace(ds.schema, 16)
    budget = space.resolve_budget(parse_budget(args.budget))
    cfg = TrainConfig(epochs=args.supernet_epochs, batch_size=4096, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(None, Path(tmp), "bench") if journal else None
        ctx = SearchContext(ds, space, [budget], train=cfg, seed=args.seed, store=store, log=print)
        ctrl = get_controller(name)(trials=args.trials, supernet_epochs=args.supernet_epochs)
        t0 = time.perf_counter()
        plan = ctrl.search(ctx)
        total = time.perf_counter() - t0
    (loop,) = [e for e in ctx.history if e.get("event") == "loop_end"]
    return {
        "controller": name,
        "journal": journal,
        "trials": args.trials,
        "loop_s": round(loop["seconds"], 3),
        "trials_per_min": round(60 * args.trials / loop["seconds"], 1),
        "supernet_s": round(total - loop["seconds"], 2),
        "inherited_val_auc": plan.extra.get("inherited_val_auc"),
        "bytes": plan.table_bytes,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="a prepared dataset directory")
    p.add_argument("--budget", default="10%")
    p.add_argument("--controllers", default="tpe,random,cmaes,nsga2")
    p.add_argument("--trials", type=int, default=64)
    p.add_argument("--supernet-epochs", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="results JSON")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ds = Dataset.load(args.data)
    rows = []
    for name in args.controllers.split(","):
        for journal in (False, True):
            rows.append(one(name, ds, args, journal))
            print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": vars(args), "rows": rows}, indent=1, allow_nan=False))


if __name__ == "__main__":
    main()
