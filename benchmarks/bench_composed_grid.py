"""Test AUC of uniform and mde plans in the dims-only and composed spaces (issue 21 item 3).

For every ``--space`` x ``--controller`` x ``--budget`` (a share of the fp32 dim-16 table):
``embsearch search`` (the plan trained from scratch with the run's recipe and early
stopping), then the trained plan's test AUC. A budget no plan of a space can meet is
recorded as infeasible with the smallest plan's size (the one-line refusal). ``--full``
adds the full table (fp32 dim 16 on every field: ``uniform`` at 100%, ``space`` "full") trained
the same way. One JSON line per run in ``--out``, with ``--note`` (e.g. the code and machine).

``--make-big DIR`` first writes (once; reused when DIR exists) the planted synthetic set of
``embsearch.data.synthetic`` (every field Zipf(0.6)) with a thirteenth, informative field of ``BIG_IDS``
ids (about 1.1M of them seen in the train split of ``--big-rows`` 2M rows, two thirds of
them once: issue 21's "one field of at least 1M ids"), and searches it (``--data`` unused).

    nice python benchmarks/bench_composed_grid.py --data DIR --seed 0 \\
        --out benchmarks/results/composed_spaces/frappe_grid.jsonl
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from embsearch.data.dataset import Dataset
from embsearch.data.synthetic import DEFAULT_CARDINALITIES, DEFAULT_INFORMATIVE, make_synthetic
from embsearch.errors import BudgetError
from embsearch.run_config import RunConfig
from embsearch.search import load_dataset, load_run, make_context, run_search
from embsearch.train.trainer import evaluate

BIG_IDS = 4_000_000  # drawn ids of the big field; Zipf(0.6) leaves ~1.1M of them in 1.6M rows
BIG_ZIPF = 0.6

SPACES = [
    "field_dims",
    "meta_table",
    "precision",
    "field_dims+meta_table",
    "field_dims+precision",
    "field_dims+meta_table+precision",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="synthetic")
    ap.add_argument("--spaces", nargs="*", default=SPACES)
    ap.add_argument("--controllers", nargs="+", default=["uniform", "mde"])
    ap.add_argument("--budgets", nargs="+", default=["1%", "3%", "10%", "25%"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--full", action="store_true", help="also train the full fp32 dim-16 table")
    ap.add_argument("--note", default="", help="stored in every row (code, machine, load)")
    ap.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="controller parameter (repeatable; JSON values), stored in every row",
    )
    ap.add_argument("--make-big", metavar="DIR", help="write (once) and use the 1M-id set")
    ap.add_argument("--big-rows", type=int, default=2_000_000)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.make_big:
        args.data = make_big(Path(args.make_big), args.big_rows)
    dataset = load_dataset(RunConfig(data=args.data))
    params = {k: _json_or_str(v) for k, _, v in (p.partition("=") for p in args.param)}
    runs = [(b, s, c) for b in args.budgets for s in args.spaces for c in args.controllers]
    if args.full:
        runs.insert(0, ("100%", "full", "uniform"))
    for budget, space, controller in runs:
        cfg = RunConfig(
            data=args.data,
            budgets=[budget],
            controller=controller,
            space="field_dims" if space == "full" else space,
            seed=args.seed,
            epochs=args.epochs,
            threads=args.threads,
            controller_params=params if space != "full" else {},
        )
        row = {"data": args.data, "space": space, "controller": controller}
        row.update({"budget": budget, "seed": args.seed, "epochs": args.epochs})
        if params and space != "full":
            row["params"] = params
        if args.note:
            row["note"] = args.note
        row.update(_run(cfg, dataset))
        print(json.dumps({k: v for k, v in row.items() if k != "blocks"}), flush=True)
        with out.open("a") as fh:
            fh.write(json.dumps(row) + "\n")


def _json_or_str(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def make_big(out: Path, rows: int) -> str:
    """The planted synthetic set plus one informative field of ~1M seen ids, saved to ``out``
    (kept and reused when it exists)."""
    if not out.is_dir():
        ds = make_synthetic(
            rows=rows,
            cardinalities=(*DEFAULT_CARDINALITIES, BIG_IDS),
            informative=(*DEFAULT_INFORMATIVE, len(DEFAULT_CARDINALITIES)),
            zipf=BIG_ZIPF,
        )
        ds.save(out)
    return str(out)


def _run(cfg: RunConfig, dataset: Dataset) -> dict[str, Any]:
    """One search and its plan's test AUC; ``infeasible`` with the refusal's line."""
    tmp = Path(tempfile.mkdtemp()) / "run"
    t0 = time.perf_counter()
    try:
        run_search(cfg, tmp, progress=False)
    except BudgetError as e:
        return {"infeasible": str(e)}
    run_cfg, plan, state = load_run(tmp)
    ctx = make_context(run_cfg, dataset, None, [plan.budget_bytes], progress=False)  # type: ignore[arg-type]
    model = ctx.build_model(plan)
    model.load_state_dict(state)
    auc, ll = evaluate(model, ctx.data.split("test"))
    blocks = [plan.block_spec(f, 0) for f in plan.fields]
    shutil.rmtree(tmp.parent, ignore_errors=True)
    return {
        "budget_bytes": plan.budget_bytes,
        "table_bytes": plan.table_bytes,
        "width": plan.width,
        "blocks": {f.name: {**b.to_json(), "dim": b.dim} for f, b in zip(plan.fields, blocks)},
        "val_auc": plan.metrics.get("val_auc"),
        "test_auc": auc,
        "test_logloss": ll,
        "seconds": round(time.perf_counter() - t0, 1),
        # which step chose the plan, OptEmbed's uniform gate's figures and uniform's
        # select="val" scores (where recorded)
        **{k: plan.extra[k] for k in ("provenance", "uniform_margin", "select") if k in plan.extra},
    }


if __name__ == "__main__":
    main()
