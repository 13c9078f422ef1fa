"""ESAPN in the streaming setting (issue 23 item 2): the cost of its pass against one plain
training epoch of the same backbone, and the test AUC of its plans beside uniform.

Datasets, each prepared with ``--order-by t --drop t`` (``t`` the row's position, the
time order both files already have):

- ``synthetic``: the built-in planted data (60,000 rows, data seed 0) written as a CSV;
- ``frappe``: ``../shared/data/frappe-split`` (its fixed 80/10/10 files; each sorted by its
  own ``t``, so the split stays the given one);
- ``talkingdata``: the 100,000-row sample ordered by its ``click_time`` (a real time order;
  split 80/10/10 by time, ``click_time`` and the leaking ``attributed_time`` dropped).

For every seed: one plain epoch (the full-width table, DeepFM, batches of ESAPN's size, in
time order; validation excluded) is timed; ESAPN searches every budget with ``stream=True``
(one pass each, timed from inside the pass); each plan and the uniform plan of the same
budget are trained from scratch (``--epochs``, early stopping on validation AUC) and
tested. Results go to ``OUT/results.json`` after every run. ``--timing N`` only times N
alternations of a plain epoch and an ESAPN pass (``OUT/timing.json``, or ``--timing-out``),
in wall-clock and in process CPU seconds (one thread; on a shared box the CPU time is the
steadier measure). Usage::

    python benchmarks/bench_esapn.py --out benchmarks/results/esapn --seeds 0,1,2
    python benchmarks/bench_esapn.py --out benchmarks/results/esapn --timing 5
    python benchmarks/bench_esapn.py --out /tmp/e --datasets frappe,synthetic --timing 7 \
        --timing-out benchmarks/results/esapn/timing_cpu_2026-12-07.json
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embsearch.cli import parse_param
from embsearch.context import SearchContext
from embsearch.controllers.esapn import ESAPN
from embsearch.controllers.uniform import Uniform
from embsearch.data.dataset import Dataset
from embsearch.data.prepare import prepare
from embsearch.data.synthetic import make_synthetic
from embsearch.search_spaces import FeatureDimsSpace
from embsearch.train import TrainConfig, evaluate
from embsearch.train.device import seed_everything
from embsearch.train.trainer import make_adam

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _with_time(src: Path, dst: Path) -> None:
    """``src`` (a CSV with a header, gzip or not) with a column ``t`` = row number."""
    opener = gzip.open if src.suffix == ".gz" else open
    with opener(src, "rt") as fi, gzip.open(dst, "wt", newline="") as fo:
        reader, writer = csv.reader(fi), csv.writer(fo)
        writer.writerow([*next(reader), "t"])
        for i, row in enumerate(reader):
            writer.writerow([*row, i])


def prepared(name: str, data_dir: Path) -> Dataset:
    out = data_dir / name
    if out.exists():
        return Dataset.load(out)
    data_dir.mkdir(parents=True, exist_ok=True)
    if name == "synthetic":
        ds = make_synthetic(rows=60_000, seed=0)
        x = np.concatenate([ds.split(s).x for s in ("train", "val", "test")])
        y = np.concatenate([ds.split(s).y for s in ("train", "val", "test")])
        src = data_dir / "synthetic.csv.gz"
        with gzip.open(src, "wt", newline="") as fo:
            w = csv.writer(fo)
            w.writerow(["label", *ds.schema.names, "t"])
            for i in range(len(y)):
                w.writerow([int(y[i]), *(int(v) for v in x[i]), i])
        prepare("csv", [str(src)], str(out), label="label", drop=["t"], order_by="t")
    elif name == "talkingdata":  # a real time order: click_time (dropped as a feature)
        src = SHARED / "talkingdata-adtracking-sample" / "train_sample.csv.gz"
        drop = ["attributed_time", "click_time"]  # attributed_time leaks the label
        opts = {"label": "is_attributed", "drop": drop, "order_by": "click_time"}
        prepare("csv", [str(src)], str(out), **opts)
    else:
        files = []
        for part in ("train", "valid", "test"):
            dst = data_dir / f"frappe_{part}_t.csv.gz"
            _with_time(SHARED / "frappe-split" / f"frappe_{part}.csv.gz", dst)
            files.append(str(dst))
        prepare("csv", files, str(out), label="label", drop=["t"], order_by="t")
    return Dataset.load(out)


def plain_epoch(ctx: SearchContext, batch_size: int, cpu: bool = False) -> float:
    """Seconds of one plain training pass (full-width table, in time order, no validation);
    ``cpu``: the process's CPU seconds."""
    plan = Uniform().search(ctx.with_budget(ctx.space.full_table_bytes()))
    seed_everything(ctx.seed)
    model = ctx.build_model(plan)
    opt = make_adam(model.parameters(), ctx.train.lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    extra = ctx.penalty()
    model.train()
    clock = time.process_time if cpu else time.perf_counter
    t0 = clock()
    for x, y in ctx.data.split("train").batches(batch_size, shuffle=False):
        loss = loss_fn(model(x).float(), y)
        if extra is not None:
            loss = loss + extra(model)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return clock() - t0


def test_auc(ctx: SearchContext, plan: Any) -> dict[str, float]:
    model, res = ctx.train_plan(plan)
    auc, ll = evaluate(model, ctx.data.split("test"), ctx.train.eval_batch_size)
    return {"test_auc": auc, "test_logloss": ll, "epochs_run": res.epochs_run}


def timing(ds: Dataset, name: str, repeats: int, path: Path) -> None:
    """``repeats`` alternations of a plain epoch and an ESAPN pass (10% budget, stream) on
    ``ds``, each in wall-clock and CPU seconds: the least of each (the least disturbed by
    other processes), the medians and their ratios."""
    space = FeatureDimsSpace(ds.schema, 16)
    budget = int(space.full_table_bytes() * 0.10)
    cfg = TrainConfig(epochs=1, batch_size=4096, progress=False)
    ctx = SearchContext(ds, space, [budget], train=cfg, log=lambda m: None, stream=True)
    plain, passes, plain_cpu, passes_cpu = [], [], [], []
    for _ in range(repeats):
        esapn = ESAPN()
        size = int(esapn.config["batch_size"])
        plain.append(plain_epoch(ctx, size))
        plain_cpu.append(plain_epoch(ctx, size, cpu=True))
        esapn.null_candidate = lambda c, b: None  # type: ignore[method-assign]  # pass only
        record = esapn.search(ctx).extra["pass"]
        passes.append(record["seconds"])
        passes_cpu.append(record["cpu_seconds"])
    row = {
        "dataset": name,
        "plain_epoch_s": plain,
        "esapn_pass_s": passes,
        "least_ratio": round(min(passes) / min(plain), 3),
        "median_ratio": round(float(np.median(passes)) / float(np.median(plain)), 3),
        "plain_epoch_cpu_s": [round(t, 3) for t in plain_cpu],
        "esapn_pass_cpu_s": passes_cpu,
        "cpu_median_ratio": round(float(np.median(passes_cpu)) / float(np.median(plain_cpu)), 3),
    }
    rows = json.loads(path.read_text()) if path.exists() else []
    path.write_text(json.dumps([*rows, row], indent=1))
    print(
        f"{name}: pass/epoch least {row['least_ratio']} median {row['median_ratio']}, "
        f"CPU median {row['cpu_median_ratio']}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--datasets", default="synthetic,frappe")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--budgets", default="0.10,0.25")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--timing", type=int, default=0, help="only time N alternations")
    ap.add_argument("--timing-out", help="the timing's JSON file (default OUT/timing.json)")
    ap.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an ESAPN parameter (JSON value) for the search; repeatable",
    )
    args = ap.parse_args()
    params = dict(parse_param(t, "--param") for t in args.param)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    path = out / "results.json"
    if path.exists():
        results = json.loads(path.read_text())
    done = {(r["dataset"], r["seed"]) for r in results}
    fractions = [float(f) for f in args.budgets.split(",")]
    for name in args.datasets.split(","):
        ds = prepared(name, out / "data")
        if args.timing:
            timing(ds, name, args.timing, Path(args.timing_out or out / "timing.json"))
            continue
        space = FeatureDimsSpace(ds.schema, 16)
        for seed in (int(s) for s in args.seeds.split(",")):
            if (name, seed) in done:
                continue
            budgets = [int(space.full_table_bytes() * f) for f in fractions]
            cfg = TrainConfig(epochs=args.epochs, batch_size=4096, progress=False)
            ctx = SearchContext(
                ds, space, budgets, train=cfg, seed=seed, log=lambda m: None, stream=True
            )
            esapn = ESAPN(**params)
            batch = int(esapn.config["batch_size"])
            epoch_s = plain_epoch(ctx, batch)
            t0 = time.perf_counter()
            plans = esapn.search_budgets(ctx)
            search_s = time.perf_counter() - t0
            for frac, budget, plan in zip(fractions, budgets, plans):
                uni = Uniform().search(ctx.with_budget(budget))
                row = {
                    "dataset": name,
                    "seed": seed,
                    "params": params,
                    "budget": frac,
                    "budget_bytes": budget,
                    "plain_epoch_s": round(epoch_s, 3),
                    "esapn_pass_s": plan.extra["pass"]["seconds"],
                    "pass_over_epoch": round(plan.extra["pass"]["seconds"] / epoch_s, 3),
                    "esapn_search_s_all_budgets": round(search_s, 3),
                    "esapn_bytes": plan.table_bytes,
                    "esapn_dims": {f.name: [g.dim for g in f.groups] for f in plan.fields},
                    "null_agreement": plan.extra["signal"]["null_agreement"],
                    "provenance": plan.extra["provenance"],
                    "esapn": test_auc(ctx, plan),
                    "uniform_dim": uni.fields[0].groups[0].dim,
                    "uniform": test_auc(ctx, uni),
                }
                results.append(row)
                path.write_text(json.dumps(results, indent=1))
                print(
                    f"{name} seed {seed} {frac:.0%}: pass/epoch {row['pass_over_epoch']} "
                    f"esapn {row['esapn']['test_auc']:.4f} uniform {row['uniform']['test_auc']:.4f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
