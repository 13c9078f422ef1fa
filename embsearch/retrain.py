"""``embsearch retrain``: train a found plan from scratch and report test metrics, optionally
beside the full-size table (every field at the width, one group, no projection)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from embsearch._atomic import write_json
from embsearch.context import SearchContext
from embsearch.plan import Plan
from embsearch.search import build_space, load_dataset, load_run, make_context
from embsearch.train.trainer import evaluate


def full_table_plan(ctx: SearchContext) -> Plan:
    """The full-size table as a plan: uniform at the width."""
    space = ctx.space.with_width(ctx.space.width)
    space.groups = [[(0, f.cardinality)] for f in ctx.dataset.schema.fields]
    return space.to_plan(space.uniform(space.width), "full", space.full_table_bytes())


def _train_and_test(ctx: SearchContext, plan: Plan, desc: str) -> dict[str, Any]:
    model, result = ctx.train_plan(plan, desc=desc)
    auc, ll = evaluate(model, ctx.data.split("test"))
    return {
        "test_auc": auc,
        "test_logloss": ll,
        "val_auc": result.val_auc,
        "table_bytes": plan.table_bytes,
        "train_seconds": result.seconds,
        "stopping": result.stopping_record(),
        "hint": result.epochs_hint(),
    }


def run_retrain(
    run_dir: str | Path,
    *,
    with_baseline: bool = False,
    epochs: int | None = None,
    device: str | None = None,
    eval_every: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Retrain, evaluate on test, write ``RUN_DIR/retrain.json``; returns its content.
    ``epochs``, ``device`` and ``eval_every`` override the search's options."""
    run_dir = Path(run_dir)
    cfg, plan, _ = load_run(run_dir, weights=False)
    if epochs is not None:
        cfg.epochs = epochs
    if eval_every is not None:
        cfg.eval_every = eval_every
    if device is not None:
        cfg.device = device
    dataset = load_dataset(cfg)
    space = build_space(cfg, dataset, plan.space)
    ctx = make_context(cfg, dataset, space, [plan.budget_bytes], progress)
    res = _train_and_test(ctx, plan, "retrain plan")
    if res["hint"]:
        ctx.log(res["hint"])
    report: dict[str, Any] = {
        "test_auc": res["test_auc"],
        "test_logloss": res["test_logloss"],
        "table_bytes": plan.table_bytes,
        "budget_bytes": plan.budget_bytes,
        "val_auc": res["val_auc"],
        "train_seconds": res["train_seconds"],
        "epochs": cfg.epochs,
        **res["stopping"],
        "controller": plan.controller,
    }
    if with_baseline:
        base = _train_and_test(ctx, full_table_plan(ctx), "retrain full table")
        report.update(
            {
                "baseline_test_auc": base["test_auc"],
                "baseline_test_logloss": base["test_logloss"],
                "baseline_table_bytes": base["table_bytes"],
                "baseline_train_seconds": base["train_seconds"],
            }
        )
    write_json(run_dir / "retrain.json", report)
    return report
