"""What a mixed-dim layout costs by itself: the same uniform dims trained three ways.

For every dim ``d`` and seed, a plan with every field at ``d`` is trained from scratch
(early stopping on validation AUC) and tested:

- ``narrow``: the narrow table, a backbone of width ``d`` (the ``uniform`` controller's plan);
- ``linear``: stored at ``--width`` with a learned ``d x width`` projection per field;
- ``pad``: stored at ``--width``, zero-padded (the backbone's input layers initialised for
  the live inputs, ``Plan.live_inputs``).

A searched plan mixes dims, so it can only be stored the second or third way; the gap
between the rows is what the layout costs before any dim is chosen (fifth and sixth
sessions, `git show efc005f:BENCHMARKS.md`). Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_layout.py --dataset synthetic --dims 1,4,8 \\
        --seeds 0,1,2 --epochs 20
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_protocol import DATASETS, load_dataset  # noqa: E402

from embsearch.context import SearchContext  # noqa: E402
from embsearch.data.dataset import Dataset  # noqa: E402
from embsearch.plan import Plan  # noqa: E402
from embsearch.search_spaces import FieldDimsSpace  # noqa: E402
from embsearch.train import TrainConfig, evaluate  # noqa: E402

LAYOUTS = ("narrow", "linear", "pad")


def uniform_plan(ds: Dataset, dim: int, layout: str, width: int) -> Plan:
    """Every field at ``dim``, stored as ``layout``."""
    if layout == "narrow":
        space = FieldDimsSpace(ds.schema, width=dim, candidates=[dim])
    else:
        space = FieldDimsSpace(ds.schema, width=width).with_projection(layout)
    cand = space.uniform(dim)
    return space.to_plan(cand, f"uniform-{layout}", space.bytes_of(cand))


def test_auc(ds: Dataset, plan: Plan, args: argparse.Namespace, seed: int) -> float:
    """Train ``plan`` from scratch (seeded) and return its test AUC."""
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, progress=False)
    ctx = SearchContext(
        ds,
        FieldDimsSpace(ds.schema, width=plan.width),
        [plan.budget_bytes],
        backbone=args.backbone,
        train=cfg,
        seed=seed,
        log=lambda m: None,
    )
    model, _ = ctx.train_plan(plan)
    return evaluate(model, ctx.data.split("test"))[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", default="synthetic", choices=DATASETS)
    p.add_argument("--dims", default="1,4,8", help="uniform dims to compare (each below --width)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--layouts", default=",".join(LAYOUTS))
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--backbone", default="deepfm")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--data-dir", default="/tmp/embsearch-bench-data")
    args = p.parse_args()
    dims = [int(d) for d in args.dims.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    layouts = args.layouts.split(",")
    if bad := [x for x in layouts if x not in LAYOUTS]:
        raise SystemExit(f"unknown layout {bad[0]!r}; choose from {', '.join(LAYOUTS)}")
    if bad := [d for d in dims if not 1 <= d < args.width]:
        raise SystemExit(f"dim {bad[0]} is not in [1, --width {args.width})")
    torch.set_num_threads(1)
    print(f"| dataset | backbone | dim | {' | '.join(layouts)} |")
    print("|---|---|---|" + "---|" * len(layouts))
    for d in dims:
        cells = []
        for layout in layouts:
            aucs = []
            for seed in seeds:
                ds = load_dataset(args.dataset, Path(args.data_dir), None, seed)
                aucs.append(test_auc(ds, uniform_plan(ds, d, layout, args.width), args, seed))
            cells.append(" / ".join(f"{a:.4f}" for a in aucs))
        print(f"| {args.dataset} | {args.backbone} | {d} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
