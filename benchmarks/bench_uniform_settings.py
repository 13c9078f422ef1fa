"""Hand-made uniform settings in the hybrid space, trained like ``bench_composed_grid.py``'s
runs: why ``uniform`` misses the full table at 10% on frappe (issue 21's 0.002 target).

Each ``SETTING`` is JSON: every field at dim ``d`` (the plan's width, as ``uniform`` builds
it) and precision ``p``; ``kinds`` names fields stored otherwise: ``{"item": 1}`` hashes
``item`` to ``ceil(n / 2**1)`` rows, ``{"item": ["qr", 2]}`` is a QR table with collision
factor 2. The plan is checked against ``--budget`` (a larger one measures a setting that
does not fit the target budget: the AUC a wider table would buy). One JSON line a setting::

    python benchmarks/bench_uniform_settings.py --data DIR --seed 0 --budget 10% \\
        --out FILE '{"d": 3, "p": "fp16"}' '{"d": 5, "p": "fp16", "kinds": {"item": 1}}'
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from embsearch.budget import parse_budget
from embsearch.run_config import RunConfig
from embsearch.search import build_space, load_dataset, make_context
from embsearch.search_spaces.composed import BlockOption
from embsearch.train.trainer import evaluate

SPACE = "field_dims+meta_table+precision"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget", default="10%")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--out", required=True)
    ap.add_argument("settings", nargs="+", metavar="SETTING")
    args = ap.parse_args()
    cfg = RunConfig(
        data=args.data,
        budgets=[args.budget],
        controller="uniform",
        space=SPACE,
        seed=args.seed,
        epochs=args.epochs,
        threads=1,
    )
    dataset = load_dataset(cfg)
    space = build_space(cfg, dataset, "field_dims")
    budget = space.resolve_budget(parse_budget(args.budget))
    for text in args.settings:
        setting = json.loads(text)
        d, p = int(setting["d"]), setting["p"]
        narrow = space.with_width(d)
        cand = []
        for f, field in enumerate(narrow.schema.fields):
            kind = setting.get("kinds", {}).get(field.name, 0)
            rows = narrow.groups[f][0][1] - narrow.groups[f][0][0]
            if isinstance(kind, list):
                want = BlockOption(d, kind[0], int(kind[1]), p)
            elif kind:
                want = BlockOption(d, "hash", -(-rows // 2 ** int(kind)), p)
            else:
                want = BlockOption(d, "full", 0, p)
            cand.append((narrow.block_options(f, 0).index(want),))
        plan = narrow.to_plan(tuple(cand), "uniform-setting", budget)
        ctx = make_context(cfg, dataset, narrow, [budget], progress=False)
        t0 = time.perf_counter()
        model, result = ctx.train_plan(plan, desc=text)
        auc, ll = evaluate(model, ctx.data.split("test"))
        row = {
            "data": args.data,
            "seed": args.seed,
            "budget": args.budget,
            "setting": setting,
            "table_bytes": plan.table_bytes,
            "budget_bytes": budget,
            "val_auc": result.val_auc,
            "test_auc": auc,
            "test_logloss": ll,
            "epochs_run": result.epochs_run,
            "seconds": round(time.perf_counter() - t0, 1),
        }
        print(json.dumps(row), flush=True)
        with Path(args.out).open("a") as fh:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
