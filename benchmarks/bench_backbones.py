"""Full-size models with embsearch's default recipe, per backbone (issue 19, BENCHMARKS.md
"Backbones"): test AUC / logloss and whole-epoch samples/s on one prepared dataset.

Each (backbone, seed) trains the full-size table (every field at the width) exactly as
``embsearch retrain --with-baseline`` does, with the run defaults (``RunConfig()``: at most
30 epochs, early stopping on validation AUC with patience 2, the backbone's declared
recipe) unless ``--backbone-param``/``--epochs`` say otherwise, and appends one JSON line::

    python benchmarks/bench_backbones.py --data prepared/frappe-split \\
        --backbone deepfm dnn fm dcnv2 widedeep --seeds 0 1 2 --threads 1 \\
        --out benchmarks/results/backbones/frappe.jsonl

``samples_per_s`` counts every training row of every epoch run over the whole training time,
validations included (the conservative figure; FuxiCTR's in benchmarks/fuxictr_reference.py
leaves its validations out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from embsearch.retrain import full_table_plan
from embsearch.run_config import RunConfig
from embsearch.search import build_space, load_dataset, make_context
from embsearch.train.trainer import evaluate


def run_one(
    data: str,
    backbone: str,
    seed: int,
    epochs: int | None,
    params: dict,
    batch_size: int | None = None,
) -> dict:
    cfg = RunConfig(data=data, backbone=backbone, seed=seed, backbone_params=dict(params))
    if epochs is not None:
        cfg.epochs = epochs
    if batch_size is not None:
        cfg.batch_size = batch_size
    dataset = load_dataset(cfg)
    space = build_space(cfg, dataset, "field_dims")
    ctx = make_context(cfg, dataset, space, [space.full_table_bytes()], progress=False)
    plan = full_table_plan(ctx)
    t0 = time.perf_counter()
    model, result = ctx.train_plan(plan, desc="full table")
    seconds = time.perf_counter() - t0
    auc, ll = evaluate(model, ctx.data.split("test"))
    rows = len(dataset.split("train"))
    return {
        "backbone": backbone,
        "seed": seed,
        "backbone_params": ctx.backbone_params,
        "max_epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "test_auc": auc,
        "test_logloss": ll,
        "val_auc": result.val_auc,
        **result.stopping_record(),
        "train_seconds": round(seconds, 3),
        "samples_per_s": round(rows * result.epochs_run / seconds),
        "train_rows": rows,
        "table_bytes": plan.table_bytes,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a directory from `embsearch data prepare`")
    ap.add_argument("--backbone", nargs="+", default=["deepfm"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, help="most epochs (default: the run default, 30)")
    ap.add_argument("--batch-size", type=int, help="default: the run default, 4096")
    ap.add_argument("--backbone-param", action="append", default=[], metavar="KEY=JSON")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    ap.add_argument("--label", default="defaults", help="a name for this configuration")
    ap.add_argument("--out", required=True, help="JSON-lines file to append to")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    params = {}
    for item in args.backbone_param:
        key, _, value = item.partition("=")
        params[key] = json.loads(value)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for backbone in args.backbone:
        for seed in args.seeds:
            row = run_one(args.data, backbone, seed, args.epochs, params, args.batch_size)
            row.update(
                label=args.label,
                data=os.path.basename(os.path.normpath(args.data)),
                torch_threads=torch.get_num_threads(),
                cpu=platform.processor() or platform.machine(),
                cpu_count=os.cpu_count(),
                torch=torch.__version__,
            )
            with out.open("a") as fh:
                fh.write(json.dumps(row, allow_nan=False) + "\n")
            print(
                f"{backbone} seed {seed}: test AUC {row['test_auc']:.4f} logloss "
                f"{row['test_logloss']:.4f} epochs {row['epochs_run']} "
                f"{row['samples_per_s']} samples/s",
                flush=True,
            )


if __name__ == "__main__":
    main()
