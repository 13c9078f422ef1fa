"""How well the inherited-weight proxy ranks composed candidates (issue 21 item 3).

One dims supernet (:class:`~embsearch.embeddings.supernets.MaskedSupernet`, every example
drawing a dim per field, as the black-box controllers train it) is trained once; then
``--candidates`` distinct random candidates of ``--space`` (sampled uniformly over each
field's options and repaired onto ``--budget``, as tpe/random's trials are) are scored by
:class:`~embsearch.controllers.block_proxy.BlockProxyEvaluator` (the supernet's rows fitted
to each block's kind, rounded to its precision) and each is retrained from scratch
(``ctx.train_plan``: the run's recipe, early stopping) and tested. Reported: the Spearman
rank correlation between the proxy score and the retrained test AUC, and beside it the
correlation of the first epoch's validation AUC of that same training (a cheap
scratch-training proxy). Raw per-candidate rows are kept. Each correlation comes with a
95% bootstrap interval (candidates resampled with replacement, :data:`BOOTSTRAP` draws) and
its leave-one-out range. The report is rewritten after every candidate (``"complete":
false`` until the last), so a run cut short keeps what it measured.

    nice python benchmarks/bench_proxy_spearman.py --data DIR --budget 10% --candidates 24 \\
        --out benchmarks/results/proxy_spearman/frappe_hybrid_10pct.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from embsearch._atomic import write_json
from embsearch.backbones import CTRModel
from embsearch.budget import parse_budget
from embsearch.controllers.block_proxy import BlockProxyEvaluator
from embsearch.controllers.weight_sharing import train_weight_sharing_supernet
from embsearch.embeddings.supernets import MaskedSupernet
from embsearch.run_config import RunConfig
from embsearch.search import build_space, load_dataset, make_context
from embsearch.train.trainer import evaluate


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rho (Pearson correlation of mid-ranks)."""

    def ranks(x: list[float]) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x), dtype=np.float64)
        for v in np.unique(x):  # ties: mid-ranks
            r[x == v] = r[x == v].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    return float(np.corrcoef(ra, rb)[0, 1])


#: bootstrap resamples of the candidates for each correlation's interval
BOOTSTRAP = 2000


def intervals(a: list[float], b: list[float], seed: int = 0) -> dict:
    """Spearman of ``a`` vs ``b`` with a 95% percentile bootstrap interval over candidates
    and the range of its leave-one-out values."""
    n = len(a)
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(BOOTSTRAP):
        i = rng.integers(0, n, n)
        if np.ptp(x[i]) > 0 and np.ptp(y[i]) > 0:  # a constant resample has no correlation
            boot.append(spearman(list(x[i]), list(y[i])))
    loo = [spearman(list(np.delete(x, j)), list(np.delete(y, j))) for j in range(n)]
    return {
        "rho": spearman(a, b),
        "bootstrap_95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
        "leave_one_out": [min(loo), max(loo)],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="synthetic")
    ap.add_argument("--space", default="field_dims+meta_table+precision")
    ap.add_argument("--budget", default="10%")
    ap.add_argument("--candidates", type=int, default=24)
    ap.add_argument("--epochs", type=int, default=30, help="most epochs of each retraining")
    ap.add_argument("--supernet-epochs", type=int, default=None, help="default --epochs")
    ap.add_argument("--val-rows", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    cfg = RunConfig(
        data=args.data,
        budgets=[args.budget],
        controller="tpe",
        space=args.space,
        projection="pad",
        epochs=args.epochs,
        seed=args.seed,
        threads=args.threads,
    )
    dataset = load_dataset(cfg)
    space = build_space(cfg, dataset, "field_dims")
    budget = space.resolve_budget(parse_budget(args.budget))
    ctx = make_context(cfg, dataset, space, [budget], progress=False)
    dims = space.candidates if "dims" in space.axes else (space.width,)

    def build() -> CTRModel:
        emb = MaskedSupernet(space.width, dims, space.groups, space.schema.names, seed=ctx.seed)
        return CTRModel(emb, ctx.make_backbone())

    t0 = time.perf_counter()
    supernet, summary = train_weight_sharing_supernet(
        ctx, build, args.supernet_epochs or args.epochs, None, desc="supernet"
    )
    supernet_s = time.perf_counter() - t0
    proxy = BlockProxyEvaluator(supernet, space, ctx.data.split("val"), max_rows=args.val_rows)

    rng = np.random.default_rng(args.seed)
    cands: list = []
    while len(cands) < args.candidates:
        c = space.repair(space.sample(rng), budget)
        if c not in cands:
            cands.append(c)
    rows = []
    for i, cand in enumerate(cands):
        t = time.perf_counter()
        score = proxy(cand)
        proxy_s = time.perf_counter() - t
        plan = space.to_plan(cand, "bench", budget)
        model, result = ctx.train_plan(plan, desc=f"candidate {i}")
        test_auc, test_ll = evaluate(model, ctx.data.split("test"))
        blocks = [plan.block_spec(f, 0) for f in plan.fields]
        rows.append(
            {
                "candidate": [list(k) for k in cand],
                "blocks": {
                    f.name: {**b.to_json(), "dim": b.dim} for f, b in zip(plan.fields, blocks)
                },
                "table_bytes": plan.table_bytes,
                "proxy_val_auc": score,
                "proxy_seconds": round(proxy_s, 4),
                "first_epoch_val_auc": result.history[0].get("val_auc") if result.history else None,
                "val_auc": result.val_auc,
                "test_auc": test_auc,
                "test_logloss": test_ll,
                "epochs_run": result.epochs_run,
                "train_seconds": round(result.seconds, 2),
            }
        )
        print(
            f"{i:2d} {plan.table_bytes:7d} B proxy {score:.4f} test {test_auc:.4f} "
            f"({result.epochs_run} epochs)",
            flush=True,
        )
        write_report(args, budget, rows, summary, supernet_s, len(cands))
    report = json.loads(Path(args.out).read_text())
    print(
        f"spearman proxy/test {report['spearman_proxy_vs_test_auc']:.3f}, first epoch/test "
        f"{report['spearman_first_epoch_vs_test_auc']}, over {len(rows)} candidates"
    )


def write_report(
    args: argparse.Namespace,
    budget: int,
    rows: list[dict],
    summary: dict,
    supernet_s: float,
    wanted: int,
) -> None:
    """Write the report on the rows so far (atomically, strict JSON: :func:`write_json`)."""
    test = [r["test_auc"] for r in rows]
    first = [r["first_epoch_val_auc"] for r in rows]
    enough = len(rows) >= 3
    proxy = [r["proxy_val_auc"] for r in rows]
    val = [r["val_auc"] for r in rows]
    has_first = all(v is not None for v in first)
    report = {
        "data": args.data,
        "space": args.space,
        "budget": args.budget,
        "budget_bytes": budget,
        "seed": args.seed,
        "candidates": len(rows),
        "complete": len(rows) == wanted,
        "spearman_proxy_vs_test_auc": spearman(proxy, test) if enough else None,
        "spearman_first_epoch_vs_test_auc": (
            spearman(first, test) if enough and has_first else None
        ),
        "spearman_val_auc_vs_test_auc": spearman(val, test) if enough else None,
        "intervals": {
            "proxy_vs_test_auc": intervals(proxy, test),
            "first_epoch_vs_test_auc": intervals(first, test) if has_first else None,
            "val_auc_vs_test_auc": intervals(val, test),
        }
        if enough
        else None,
        "test_auc_range": [min(test), max(test)],
        "supernet": summary,
        "supernet_seconds": round(supernet_s, 1),
        "machine": f"{platform.machine()} {platform.processor()}, torch {torch.__version__}, "
        f"{args.threads} thread(s)",
        "command": "python benchmarks/bench_proxy_spearman.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None),
        "rows": rows,
    }
    write_json(args.out, report)


if __name__ == "__main__":
    main()
