"""The search runner: config -> data, space, budgets, controller -> one run directory per plan.

Run directory (``RUN_DIR``; with several budgets, ``RUN_DIR/budget-<label>/`` each)::

    plan.json     the Plan
    search.json   history (every evaluation/epoch the controller recorded) and timings
    model.pt      trained weights of the plan's model (table + backbone)
    config.json   the RunConfig, so retrain/export rebuild the same setup

Every file is staged in a temporary directory and renamed into place at the end.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from embsearch._atomic import read_json, staged_dir, write_json
from embsearch.budget import format_bytes, parse_budget
from embsearch.context import SearchContext
from embsearch.controllers.base import Controller
from embsearch.controllers.registry import get_controller
from embsearch.data.dataset import Dataset
from embsearch.data.synthetic import make_synthetic
from embsearch.errors import ConfigError, RunDirError
from embsearch.plan import Plan
from embsearch.run_checks import check_run_data, check_run_dir
from embsearch.run_config import RunConfig
from embsearch.search_spaces import SPACES, SearchSpace
from embsearch.train.device import resolve_device
from embsearch.train.trainer import TrainConfig


@dataclass
class RunResult:
    plan: Plan
    run_dir: Path
    seconds: float


def load_dataset(cfg: RunConfig) -> Dataset:
    """``synthetic`` builds the planted dataset (fixed data seed 0); otherwise a prepared dir."""
    if cfg.data == "synthetic":
        return make_synthetic(rows=cfg.synthetic_rows, seed=0)
    return Dataset.load(cfg.data)


def build_space(cfg: RunConfig, dataset: Dataset, default_space: str) -> SearchSpace:
    name = cfg.space or default_space
    if name not in SPACES:
        raise ConfigError(f"unknown search space {name!r}; choose one of {', '.join(SPACES)}")
    kwargs: dict[str, Any] = {
        "width": cfg.width,
        "candidates": cfg.candidates,
        "projection": cfg.projection or "linear",
    }
    if name == "feature_dims":
        kwargs["n_groups"] = cfg.groups
    return SPACES[name](dataset.schema, **kwargs)


def make_context(
    cfg: RunConfig, dataset: Dataset, space: SearchSpace, budgets: list[int], progress: bool
) -> SearchContext:
    cfg.validate()  # a RunConfig built in code, or retrain's --epochs / --device override
    train = TrainConfig(
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        eval_every=cfg.eval_every,
        progress=progress,
    )
    return SearchContext(
        dataset=dataset,
        space=space,
        budgets=budgets,
        backbone=cfg.backbone,
        train=train,
        device=resolve_device(cfg.device),
        seed=cfg.seed,
        max_seconds=cfg.max_seconds,
        log=lambda msg: None if not progress else print(msg),
    )


def controller_params(cfg: RunConfig, controller_cls: type[Controller]) -> dict[str, Any]:
    """``--param`` values, plus ``--projection`` for a controller whose plans choose their own
    projection (a ``projection`` parameter not given by ``--param``)."""
    params = dict(cfg.controller_params)
    if cfg.projection is not None and "projection" in controller_cls.params:
        params.setdefault("projection", cfg.projection)
    return params


def run_search(
    cfg: RunConfig,
    out: str | Path,
    *,
    progress: bool = True,
    overwrite: bool = False,
    warn: Callable[[str], None] | None = None,
) -> list[RunResult]:
    """Search, train each found plan (unless its controller attached weights), write run dirs.
    ``warn`` (default :func:`warnings.warn`) hears of a budget that constrains nothing."""
    warn = warn or (lambda msg: warnings.warn(msg, UserWarning, stacklevel=3))
    out = Path(out)
    if out.exists() and not overwrite and any(out.iterdir()):
        raise RunDirError(f"{out} already holds files; choose another --out or remove it")
    controller_cls = get_controller(cfg.controller)
    controller = controller_cls(**controller_params(cfg, controller_cls))
    controller.check_options(width=cfg.width, candidates=cfg.candidates, projection=cfg.projection)
    dataset = load_dataset(cfg)
    space = build_space(cfg, dataset, controller_cls.default_space)
    specs = [parse_budget(b) for b in cfg.budgets]
    if not specs:
        raise ConfigError("give at least one --budget")
    budgets = [space.resolve_budget(s) for s in specs]
    full = space.full_table_bytes()
    for spec, budget in zip(specs, budgets):
        if budget >= full:
            warn(
                f"budget {spec.text} = {format_bytes(budget)} holds the whole dim-{space.width} "
                f"table, {format_bytes(full)}, so it constrains nothing; give a smaller --budget "
                f"(e.g. 25%) or a larger --width"
            )
    ctx = make_context(cfg, dataset, space, budgets, progress)
    from embsearch.backbones import make_backbone

    make_backbone(cfg.backbone, space.num_fields, space.width)  # fail fast on a bad backbone name
    controller.check_space(ctx)

    t0 = time.perf_counter()
    plans = controller.search_budgets(ctx)
    search_seconds = time.perf_counter() - t0
    if len(plans) != len(budgets):
        raise RuntimeError(
            f"controller {cfg.controller} returned {len(plans)} plans for {len(budgets)} budgets"
        )

    results: list[RunResult] = []
    with staged_dir(out, overwrite=True) as tmp:
        for spec, budget, plan in zip(specs, budgets, plans):
            if plan.table_bytes > budget:
                raise RuntimeError(
                    f"controller {cfg.controller} broke the budget: {plan.table_bytes} > {budget} B"
                )
            t1 = time.perf_counter()
            interrupted = bool(plan.extra.get("interrupted"))
            state = None if interrupted else _trained_state(ctx, plan)  # Ctrl-C: no retraining
            sub = tmp if len(plans) == 1 else tmp / f"budget-{spec.label}"
            sub.mkdir(parents=True, exist_ok=True)
            plan.save(sub / "plan.json")
            if state is not None:
                torch.save(state, sub / "model.pt")
            write_json(sub / "config.json", cfg.to_json())
            write_json(
                sub / "search.json",
                {
                    "controller": cfg.controller,
                    "budget": spec.text,
                    "budget_bytes": budget,
                    "search_seconds": search_seconds,
                    "train_seconds": time.perf_counter() - t1,
                    "history": _jsonable(ctx.history),
                },
            )
            results.append(
                RunResult(plan, out if len(plans) == 1 else out / sub.name, search_seconds)
            )
        if len(plans) > 1:
            write_json(
                tmp / "search.json",
                {
                    "controller": cfg.controller,
                    "search_seconds": search_seconds,
                    "runs": [
                        {"budget": s.text, "budget_bytes": b, "dir": f"budget-{s.label}"}
                        for s, b in zip(specs, budgets)
                    ],
                    "history": _jsonable(ctx.history),
                },
            )
    return results


def _trained_state(ctx: SearchContext, plan: Plan) -> dict[str, torch.Tensor]:
    """The plan's model weights: those its controller attached, or a retrain from scratch."""
    if plan.weights is not None:
        return {k: v.detach().cpu() for k, v in plan.weights.items()}
    model, result = ctx.train_plan(plan, desc=f"train {plan.controller} plan")
    plan.metrics = {"val_auc": result.val_auc, "val_logloss": result.val_logloss, **plan.metrics}
    plan.extra["training"] = result.stopping_record()
    hint = result.epochs_hint()
    if hint:
        ctx.log(hint)
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def load_run(
    run_dir: str | Path, *, weights: bool = True
) -> tuple[RunConfig, Plan, dict[str, torch.Tensor]]:
    """Read a single-plan run directory (``weights=False``: its trained weights are not needed).

    The run's dataset must be the one the plan was searched on: its fingerprint is checked
    against the plan's ``data_fingerprint`` (a mismatch names both)."""
    run_dir = Path(run_dir)
    check_run_dir(run_dir)
    if weights and not (run_dir / "model.pt").is_file():
        raise RunDirError(
            f"{run_dir} has a plan but no trained weights (the search was interrupted); "
            f"`embsearch retrain {run_dir}` trains it, or run the search again"
        )
    cfg = RunConfig.from_mapping(read_json(run_dir / "config.json"), str(run_dir / "config.json"))
    plan = Plan.load(run_dir / "plan.json")
    check_run_data(cfg, plan, run_dir)
    try:
        state = (
            torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)
            if weights
            else {}
        )
    except Exception:  # torch raises several types (and long advice) for a damaged file
        raise RunDirError(
            f"{run_dir / 'model.pt'} cannot be read: it is damaged or was not written by "
            f"embsearch; `embsearch retrain {run_dir}` trains the plan again"
        ) from None
    return cfg, plan, state
