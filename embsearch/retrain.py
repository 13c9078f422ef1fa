"""``embsearch retrain``: train a found plan from scratch and report test metrics, optionally
beside the full-size table (every field at the width, one group, no projection).

A run whose plan was never trained (Ctrl-C during the search, or a kill during its final
training) gets the retrained weights as its own: ``model.pt``, with the validation metrics
written into ``plan.json``, so ``embsearch export`` takes it afterwards."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from embsearch._atomic import write_file, write_json
from embsearch.baseline import (
    baseline_key,
    baseline_record,
    is_full_table,
    load_baseline,
    save_baseline,
)
from embsearch.context import SearchContext
from embsearch.out_dir import lock_dir
from embsearch.plan import Plan
from embsearch.run_config import RunConfig
from embsearch.run_dir import load_run, load_weights
from embsearch.search import build_space, load_dataset, make_context, record_training
from embsearch.train.cpu_weights import cpu_weights
from embsearch.train.trainer import evaluate


def full_table_plan(ctx: SearchContext) -> Plan:
    """The full-size table as a plan: uniform at the width."""
    space = ctx.space.with_one_group_per_field()
    return space.to_plan(space.uniform(space.width), "full", space.full_table_bytes())


def _train_and_test(ctx: SearchContext, plan: Plan, desc: str) -> dict[str, Any]:
    model, result = ctx.train_plan(plan, desc=desc)
    auc, ll = evaluate(model, ctx.data.split("test"))
    return {
        "model": model,
        "result": result,
        "test_auc": auc,
        "test_logloss": ll,
        "val_auc": result.val_auc,
        "table_bytes": plan.table_bytes,
        "train_seconds": result.seconds,
        "stopping": result.stopping_record(),
        "timing": result.timing_record(),
        "hint": result.epochs_hint(),
    }


def _record(test: dict[str, Any]) -> dict[str, Any]:
    """The baseline record of a :func:`_train_and_test` result."""
    return baseline_record(
        test["result"], test["table_bytes"], test["test_auc"], test["test_logloss"]
    )


def _stopping(record: dict[str, Any]) -> dict[str, Any]:
    keys = ("epochs_run", "best_epoch", "best_step", "steps_run")
    return {k: record[k] for k in keys if k in record}


def _timing(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in ("epoch_times", "samples_per_s") if k in record}


def _served_test(ctx: SearchContext, plan: Plan, state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Test metrics of the weights a controller served without retraining (RULE's step 5:
    the plan's table filled from the supernet), reported beside the retrained model's."""
    model = ctx.build_model(plan)
    model.load_state_dict(state)
    auc, ll = evaluate(model, ctx.data.split("test"))
    return {"served_test_auc": auc, "served_test_logloss": ll}


def run_retrain(
    run_dir: str | Path,
    *,
    with_baseline: bool = False,
    epochs: int | None = None,
    device: str | None = None,
    eval_every: int | None = None,
    threads: int | None = None,
    progress: bool = True,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Retrain, evaluate on test, write ``RUN_DIR/retrain.json``; returns its content.
    ``epochs``, ``device``, ``eval_every`` and ``threads`` override the search's options. A run without
    trained weights keeps the retrained ones (``model.pt``, metrics in ``plan.json``; the
    report's ``saved_weights``). The run directory is locked meanwhile (``warn`` hears of
    temporary files a killed process left in it, which are removed)."""
    run_dir = Path(run_dir)
    cfg, plan, _ = load_run(run_dir, weights=False)
    if threads is not None:
        cfg.threads = threads
    served = None  # the weights RULE served, to test them too
    if plan.extra.get("served_from_supernet") and (run_dir / "model.pt").is_file():
        served = load_weights(run_dir)
    with lock_dir(run_dir, flag="RUN_DIR", warn=warn):
        return _retrain(
            run_dir, cfg, plan, with_baseline, epochs, device, eval_every, progress, served
        )


def _retrain(
    run_dir: Path,
    cfg: RunConfig,
    plan: Plan,
    with_baseline: bool,
    epochs: int | None,
    device: str | None,
    eval_every: int | None,
    progress: bool,
    served_state: dict[str, torch.Tensor] | None = None,
) -> dict[str, Any]:
    untrained = not (run_dir / "model.pt").is_file()
    if epochs is not None:
        cfg.epochs = epochs
    if eval_every is not None:
        cfg.eval_every = eval_every
    if device is not None:
        cfg.device = device
    dataset = load_dataset(cfg)
    space = build_space(cfg, dataset, plan.space)
    ctx = make_context(cfg, dataset, space, [plan.budget_bytes], progress)
    served = {} if served_state is None else _served_test(ctx, plan, served_state)
    key = baseline_key(cfg, ctx)
    full = is_full_table(plan, cfg.width)  # the plan is the full-size model itself
    cached = load_baseline(key) if with_baseline or full else None
    if full and cached is not None and not untrained:
        # the plan is the full-size model this recipe has trained and tested already
        res = {**cached, "stopping": _stopping(cached), "timing": _timing(cached), "hint": None}
        ctx.log(f"the plan is the full-size baseline: reusing its tested record ({key})")
    else:
        res = _train_and_test(ctx, plan, "retrain plan")
        if full:
            cached = _record(res)
            save_baseline(key, cached)
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
        **res["timing"],
        "controller": plan.controller,
        **served,
    }
    if untrained:  # the run's own weights, so that export takes it
        state = cpu_weights(res["model"].state_dict())
        write_file(run_dir / "model.pt", lambda tmp: torch.save(state, tmp))
        record_training(plan, res["result"])
        plan.save(run_dir / "plan.json")
        report["saved_weights"] = "model.pt"
    if full:
        report["baseline_key"] = key
    if with_baseline:
        reused = cached is not None
        if cached is None:  # trained once per dataset and recipe, then reused
            cached = _record(_train_and_test(ctx, full_table_plan(ctx), "full table"))
            save_baseline(key, cached)
        report.update(
            {
                "baseline_test_auc": cached["test_auc"],
                "baseline_test_logloss": cached["test_logloss"],
                "baseline_table_bytes": cached["table_bytes"],
                "baseline_train_seconds": cached["train_seconds"],
                "baseline_training": {**_stopping(cached), **_timing(cached)},
                "baseline_reused": reused,
                "baseline_key": key,
            }
        )
    write_json(run_dir / "retrain.json", report)
    return report
