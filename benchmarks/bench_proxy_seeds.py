"""Retrain the candidates of a ``bench_proxy_spearman.py`` report under more seeds (issue 21
item 3).

One retraining per candidate is a noisy target: on frappe a candidate whose item field is a
MEmCom block of 8 rows trains to test AUC 0.52 under seed 0 (early stopping after 3 epochs
of a model that had not started to learn) and to 0.93 under seeds 1 and 2. This script keeps
the report's data, supernet, candidates and proxy scores, retrains every candidate from
scratch under each ``--seeds`` value (the run's recipe, ``ctx.train_plan``; the data are
loaded once with the report's seed, so only the model's initialisation and batch order
change), and reports the Spearman correlations of the proxy, the first epoch's validation AUC
and the validation AUC against the *mean* test AUC over the report's seed and these, with
the bootstrap interval and leave-one-out range of ``bench_proxy_spearman.intervals``. The
output is rewritten after every candidate (``"complete": false`` until the last).
``--reuse`` takes the test AUCs of a candidate and seed from an earlier output of this script
(on the same data: a retraining does not depend on the budget, only on the plan and the seed;
a 10% and a 25% report share most random draws, whose seed-0 retrainings agree to the last
digit).

    nice python benchmarks/bench_proxy_seeds.py \\
        --report benchmarks/results/proxy_spearman/frappe_hybrid_10pct_spear20.json \\
        --seeds 1 2 --out benchmarks/results/proxy_spearman/frappe_hybrid_10pct_seeds_spear20.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from embsearch._atomic import write_json
from embsearch.run_config import RunConfig
from embsearch.search import build_space, load_dataset, make_context
from embsearch.train.trainer import evaluate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_proxy_spearman import intervals, spearman  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--report", required=True, help="a bench_proxy_spearman.py report")
    ap.add_argument("--seeds", type=int, nargs="+", required=True)
    ap.add_argument("--epochs", type=int, default=30, help="as the report's run")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reuse", nargs="*", default=[], help="earlier outputs of this script")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    src = json.loads(Path(args.report).read_text())
    done: dict[tuple[str, str], float] = {}  # (candidate's JSON, seed) -> test AUC
    for path in args.reuse:
        for row in json.loads(Path(path).read_text())["rows"]:
            for s, auc in row["test_auc_by_seed"].items():
                done[(json.dumps(row["candidate"]), s)] = auc

    def config(seed: int) -> RunConfig:
        return RunConfig(
            data=src["data"],
            budgets=[src["budget"]],
            controller="tpe",
            space=src["space"],
            projection="pad",
            epochs=args.epochs,
            seed=seed,
            threads=args.threads,
        )

    dataset = load_dataset(config(src["seed"]))  # the report's data, whatever the seed
    space = build_space(config(src["seed"]), dataset, "field_dims")
    contexts = {
        s: make_context(config(s), dataset, space, [src["budget_bytes"]], progress=False)
        for s in args.seeds
    }
    rows = []
    for i, row in enumerate(src["rows"]):
        cand = tuple(tuple(k) for k in row["candidate"])
        plan = space.to_plan(cand, "bench", src["budget_bytes"])
        by_seed = {str(src["seed"]): row["test_auc"]}
        for s, ctx in contexts.items():
            if (json.dumps(row["candidate"]), str(s)) in done:
                by_seed[str(s)] = done[(json.dumps(row["candidate"]), str(s))]
                continue
            model, result = ctx.train_plan(plan, desc=f"candidate {i} seed {s}")
            by_seed[str(s)] = evaluate(model, ctx.data.split("test"))[0]
            print(f"{i:2d} seed {s}: test {by_seed[str(s)]:.4f} ({result.epochs_run} epochs)")
        rows.append(
            {
                **{k: row[k] for k in ("candidate", "proxy_val_auc", "first_epoch_val_auc")},
                "val_auc": row["val_auc"],
                "test_auc_by_seed": by_seed,
                "test_auc_mean": float(np.mean(list(by_seed.values()))),
            }
        )
        write(args, src, rows)
    out = json.loads(Path(args.out).read_text())
    print(f"spearman proxy/mean test {out['spearman_proxy_vs_mean_test_auc']:.3f}")


def write(args: argparse.Namespace, src: dict, rows: list[dict]) -> None:
    """The report on the rows so far (atomically, strict JSON: :func:`write_json`)."""
    mean = [r["test_auc_mean"] for r in rows]
    enough = len(rows) >= 3
    cols = {
        "proxy": [r["proxy_val_auc"] for r in rows],
        "first_epoch": [r["first_epoch_val_auc"] for r in rows],
        "val_auc": [r["val_auc"] for r in rows],
    }
    report = {
        "report": args.report,
        "seeds": [src["seed"], *args.seeds],
        "candidates": len(rows),
        "complete": len(rows) == len(src["rows"]),
        **{
            f"spearman_{k}_vs_mean_test_auc": spearman(v, mean) if enough else None
            for k, v in cols.items()
        },
        "intervals": {k: intervals(v, mean) for k, v in cols.items()} if enough else None,
        "mean_test_auc_range": [min(mean), max(mean)],
        "command": "python benchmarks/bench_proxy_seeds.py "
        + " ".join(
            f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items()
            if v != []
        ),
        "rows": rows,
    }
    write_json(args.out, report)


if __name__ == "__main__":
    main()
