"""OptEmbed with and without the pruned-row credit (issue 21 item 4), same seed.

For each seed: one ``embsearch search --controller optembed`` over every ``--budgets`` (one
supernet serves them) with ``prune_rows=true`` (the default: kept rows only, the budget
credits the pruned ones) and one with ``prune_rows=false`` (every row stored); each plan is
trained from scratch by the search (the run's recipe, early stopping) and scored on the
test split. One JSON line per (setting, budget) in ``--out``: the share of rows the
thresholds prune, the plan's pruned fields, rows left out and bytes credited, dims, bytes
and test AUC.

    nice -n 5 python benchmarks/bench_optembed_pruned.py --data DIR --seeds 0 1 2 \\
        --out benchmarks/results/optembed_pruned/frappe.jsonl
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from embsearch.run_config import RunConfig
from embsearch.search import load_dataset, load_run, make_context, run_search
from embsearch.train.trainer import evaluate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="synthetic")
    ap.add_argument("--budgets", nargs="+", default=["10%", "25%"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--param", action="append", default=[], help="more optembed KEY=VALUE")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(RunConfig(data=args.data))
    extra = dict(p.split("=", 1) for p in args.param)
    for seed in args.seeds:
        for prune in (True, False):
            cfg = RunConfig(
                data=args.data,
                budgets=list(args.budgets),
                controller="optembed",
                controller_params={**extra, "prune_rows": prune},
                seed=seed,
                epochs=args.epochs,
                threads=args.threads,
            )
            tmp = Path(tempfile.mkdtemp()) / "run"
            t0 = time.perf_counter()
            results = run_search(cfg, tmp, progress=False)
            seconds = round(time.perf_counter() - t0, 1)
            for budget, res in zip(args.budgets, results):
                run_cfg, plan, state = load_run(res.run_dir)
                ctx = make_context(run_cfg, dataset, None, [plan.budget_bytes], progress=False)  # type: ignore[arg-type]
                model = ctx.build_model(plan)
                model.load_state_dict(state)
                auc, ll = evaluate(model, ctx.data.split("test"))
                row = {
                    "data": args.data,
                    "seed": seed,
                    "prune_rows": prune,
                    "budget": budget,
                    "budget_bytes": plan.budget_bytes,
                    "table_bytes": plan.table_bytes,
                    "width": plan.width,
                    "dims": {f.name: f.dim for f in plan.fields},
                    "pruned_rows_total": plan.extra["pruned_rows_total"],
                    "pruned_row_fraction": plan.extra["pruned_row_fraction"],
                    **plan.extra["rows"],
                    "provenance": plan.extra.get("provenance"),
                    "val_auc": plan.metrics.get("val_auc"),
                    "test_auc": auc,
                    "test_logloss": ll,
                    "search_and_train_s": seconds,
                }
                print(json.dumps({k: v for k, v in row.items() if "fraction" not in k}), flush=True)
                with out.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
            shutil.rmtree(tmp.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
