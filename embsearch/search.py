"""The search runner: config -> data, space, budgets, controller -> one run directory per plan.

Run directory (``RUN_DIR``; with several budgets, ``RUN_DIR/budget-<label>/`` each)::

    plan.json     the Plan; ``extra.trained`` is false until model.pt holds its weights
    search.json   history (every evaluation/epoch the controller recorded) and timings
    model.pt      trained weights of the plan's model (table + backbone)
    config.json   the RunConfig, so retrain/export rebuild the same setup
    run.json      the run's id, storage and fingerprints (written first: --resume reads it)
    trials.journal  every finished trial, as it finishes (Optuna's journal; or --storage URL)
    front/, front.json  a multi-objective controller's Pareto front (nsga2): one plan each
    supernet.pt   a one-shot controller's trained supernet (black-box, optembed, rule, nis,
                  autoias; with nis's/autoias's policies as they were then): what a resume
                  loads and executor workers score with
    supernet.epoch.pt  its per-epoch checkpoint while it trains (--resume continues from it;
                  removed once supernet.pt is written)
    generator.pt  autoias's generators after their last update (--resume goes on from it)
    passes.pt     esapn's finished passes and its pass in progress (--resume continues it)

``--out`` is checked before any compute and claimed (created, and locked by
``.embsearch.lock`` while this process writes it; :mod:`embsearch.out_dir`), so two searches
never write one directory and nothing already there is overwritten. As soon as the search
has chosen its plans, config.json, search.json and plan.json (untrained) are written; the
final training then adds model.pt and rewrites plan.json with its metrics. Every file is
written under a temporary name and renamed, so none is ever half-written.

config.json and run.json are written when the directory is claimed, before any training,
and trials go into the storage as they finish (:mod:`embsearch.run_state`); ``resume=True``
(``--resume RUN_DIR``) takes such a directory up again instead of claiming a new one.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from embsearch._atomic import write_file, write_json
from embsearch.backbones import backbone_params, dense_bytes
from embsearch.backbones.params import split_params
from embsearch.baseline import is_full_table, test_and_store
from embsearch.budget import format_bytes, parse_budget
from embsearch.constraints import parse_constraints
from embsearch.context import SearchContext
from embsearch.controllers.base import Controller
from embsearch.controllers.registry import get_controller
from embsearch.data.dataset import Dataset
from embsearch.data.synthetic import make_synthetic
from embsearch.errors import ConfigError, EmbsearchError
from embsearch.executors import check_executor, close_executor, closing_executor, open_executor
from embsearch.out_dir import check_out_dir, claim_dir, lock_dir
from embsearch.plan import NO_EMBEDDING, Plan
from embsearch.run_config import RunConfig
from embsearch.run_dir import (  # load_run, load_weights: re-exported, their home is run_dir
    RunResult,
    load_run,  # noqa: F401
    load_weights,  # noqa: F401
)
from embsearch.run_state import (
    check_same_run,
    discard_start,
    read_run,
    resume_store,
    start_run,
)
from embsearch.search_spaces import SPACES, SearchSpace
from embsearch.train.cpu_weights import cpu_weights
from embsearch.train.device import resolve_device, set_threads
from embsearch.train.trainer import TrainConfig


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
        "precision": cfg.precision,
    }
    if name == "feature_dims":
        kwargs["n_groups"] = cfg.groups
    space = SPACES[name](dataset.schema, **kwargs)
    if cfg.constraints:  # checked against the data and the space, one line, before any compute
        space = space.with_constraints(parse_constraints(cfg.constraints))
    return space


def make_context(
    cfg: RunConfig, dataset: Dataset, space: SearchSpace, budgets: list[int], progress: bool
) -> SearchContext:
    cfg.validate()  # a RunConfig built in code, or retrain's --epochs / --device override
    set_threads(cfg.threads)
    params = backbone_params(cfg.backbone, cfg.backbone_params)
    train = TrainConfig(
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        eval_every=cfg.eval_every,
        progress=progress,
        lr_plateau_factor=split_params(params)[1]["lr_plateau_factor"],
        column_qat=not cfg.column_ptq,
    )
    return SearchContext(
        dataset=dataset,
        space=space,
        budgets=budgets,
        backbone=cfg.backbone,
        backbone_params=params,
        train=train,
        device=resolve_device(cfg.device),
        seed=cfg.seed,
        max_seconds=cfg.max_seconds,
        stream=cfg.stream,
        log=lambda msg: None if not progress else print(msg),
    )


def check_stream(cfg: RunConfig, controller_cls: type[Controller], dataset: Dataset) -> None:
    """``--stream`` needs a controller that takes it and data with a recorded time order."""
    if not cfg.stream:
        return
    if not controller_cls.streams:
        raise ConfigError(
            f"controller {cfg.controller!r} does not take --stream (the train split read once "
            "in time order); drop --stream, or use a controller that does (esapn)"
        )
    if not dataset.schema.meta.get("order_by"):
        raise ConfigError(
            f"--stream needs data with a recorded time order, and {cfg.data} has none; "
            "prepare it with `embsearch data prepare ... --order-by COLUMN`"
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
    warn: Callable[[str], None] | None = None,
    storage: str | None = None,
    resume: bool = False,
) -> list[RunResult]:
    """Search, write each plan as soon as it is chosen, then train it (unless its controller
    attached weights, or Ctrl-C cut the search short) and add its weights.
    ``warn`` (default :func:`warnings.warn`) hears of a budget that constrains nothing.

    ``out`` is refused before any compute if it is a symbolic link, a file, a directory
    holding files, not writable, or being written by another process. ``storage``: an
    Optuna RDB URL for the trials (default the run's journal file). ``resume``: ``out`` is a
    killed run to continue (``cfg`` must be its own; :mod:`embsearch.run_state`)."""
    warn = warn or (lambda msg: warnings.warn(msg, UserWarning, stacklevel=3))
    saved, info = read_run(out) if resume else ({}, None)
    out = Path(out) if resume else check_out_dir(out)
    if storage is not None and not resume:
        from embsearch.trial_store import open_store

        open_store(storage, out, "check")  # a URL that cannot be opened: refused before compute
    cfg.validate()
    # complete and checked (unknown key, wrong type or range: one line), recorded in config.json
    cfg = replace(cfg, backbone_params=backbone_params(cfg.backbone, cfg.backbone_params))
    controller_cls = get_controller(cfg.controller)
    controller = controller_cls(**controller_params(cfg, controller_cls))
    controller.check_options(width=cfg.width, candidates=cfg.candidates, projection=cfg.projection)
    check_executor(cfg, controller_cls)  # before any compute: e.g. --jobs with serial
    dataset = load_dataset(cfg)
    check_stream(cfg, controller_cls, dataset)
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
                f"table, {format_bytes(full)}, so it constrains nothing: this run trains and tests "
                f"the full-size baseline (reused by `retrain --with-baseline`); for a search give "
                f"a smaller --budget (e.g. 25%) or a larger --width"
            )
    ctx = make_context(cfg, dataset, space, budgets, progress)
    from embsearch.backbones import make_backbone
    from embsearch.testing import check_backbone

    make_backbone(cfg.backbone, space.num_fields, space.width, params=cfg.backbone_params)
    with torch.random.fork_rng(devices=[]):  # conformance before any training; RNG untouched
        check_backbone(cfg.backbone, space.num_fields, space.width, cfg.backbone_params)
    controller.check_space(ctx)
    if info is not None:
        check_same_run(out, cfg, saved, info, dataset.fingerprint(), controller_cls.family)

    ctx.executor = open_executor(cfg)  # workers, or the Ray cluster: refused here if unreachable
    claimed = lock_dir(out, flag="--resume") if info is not None else claim_dir(out)
    with claimed, closing_executor(ctx):
        if info is not None:
            ctx.store = resume_store(out, info)
        else:
            ctx.store = start_run(out, cfg, dataset.fingerprint(), storage)
        try:
            t0 = time.perf_counter()
            plans = controller.search_budgets(ctx)
            search_seconds = time.perf_counter() - t0
            close_executor(ctx)  # its workers are not needed for the final training
            if len(plans) != len(budgets):
                raise RuntimeError(
                    f"controller {cfg.controller} returned {len(plans)} plans for {len(budgets)} budgets"
                )
            for budget, plan in zip(budgets, plans):
                if plan.table_bytes > budget:
                    raise RuntimeError(
                        f"controller {cfg.controller} broke the budget: {plan.table_bytes} > {budget} B"
                    )
                if plan.fields and all(d == 0 for f in plan.fields for d in f.dims):
                    raise ConfigError(
                        f"controller {cfg.controller} returned a plan for {format_bytes(budget)} in "
                        f"which {NO_EMBEDDING}; nothing was written: give a larger --budget, or "
                        f"candidates with a dim > 0"
                    )
        except EmbsearchError:  # refused before any plan was written: a fresh run leaves nothing
            if info is None:
                discard_start(out)
            raise
        fronts = [getattr(controller, "front_plans", lambda b: [])(b) for b in budgets]
        return _write_runs(cfg, ctx, out, specs, budgets, plans, search_seconds, warn, fronts)


def _write_runs(
    cfg: RunConfig,
    ctx: SearchContext,
    out: Path,
    specs: list[Any],
    budgets: list[int],
    plans: list[Plan],
    search_seconds: float,
    warn: Callable[[str], None],
    fronts: list[list[Plan]] | None = None,
) -> list[RunResult]:
    """Write every chosen plan (untrained) with its config and history first, so a kill
    during the final training loses no search; then train each plan and add its weights.
    Ctrl-C during a training says (``warn``) where the untrained plans are kept."""
    subs = [out if len(plans) == 1 else out / f"budget-{s.label}" for s in specs]
    records = []
    for spec, budget, plan, sub in zip(specs, budgets, plans, subs):
        sub.mkdir(exist_ok=True)
        write_json(sub / "config.json", cfg.to_json())
        record = {
            "controller": cfg.controller,
            "budget": spec.text,
            "budget_bytes": budget,
            "search_seconds": search_seconds,
            "train_seconds": None,
            "history": _jsonable(ctx.history),
        }
        write_json(sub / "search.json", record)
        records.append(record)
        plan.extra["trained"] = False
        with torch.random.fork_rng(devices=[]):  # the global generator stays as it was
            plan.extra["backbone_bytes"] = dense_bytes(ctx.plan_backbone(plan))
        if plan.weights is not None:  # served by its controller (e.g. RULE): no training
            _save_weights(sub, cpu_weights(plan.weights))
            plan.extra["trained"] = True
        plan.save(sub / "plan.json")
    for sub, front in zip(subs, fronts or []):
        _write_front(sub, cfg, front)
    if len(plans) > 1:
        write_json(
            out / "search.json",
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
    for plan, sub, record in zip(plans, subs, records):
        if plan.extra["trained"] or plan.interrupted:  # Ctrl-C: no retraining
            continue
        t1 = time.perf_counter()
        try:
            model, result = ctx.train_plan(plan, desc=f"train {plan.controller} plan")
        except KeyboardInterrupt:
            left = [str(d) for p, d in zip(plans, subs) if not p.extra["trained"]]
            warn(
                f"interrupted during the final training: the search's plan is saved untrained "
                f"in {', '.join(left)}; `embsearch retrain RUN_DIR` trains it, then export takes it"
            )
            raise
        record_training(plan, result)
        hint = result.epochs_hint()
        if hint:
            ctx.log(hint)
        _save_weights(sub, cpu_weights(model.state_dict()))
        plan.save(sub / "plan.json")
        record["train_seconds"] = time.perf_counter() - t1
        record["training"] = {**result.stopping_record(), **result.timing_record()}
        if is_full_table(plan, cfg.width):  # the full-size baseline: tested once, reused by retrain
            record["baseline"] = test_and_store(cfg, ctx, model, plan, result)
            ctx.log(f"full-size baseline: test AUC {record['baseline']['test_auc']:.4f}")
        write_json(sub / "search.json", record)
    return [RunResult(plan, sub, search_seconds) for plan, sub in zip(plans, subs)]


def _write_front(sub: Path, cfg: RunConfig, front: list[Plan]) -> None:
    """A multi-objective controller's Pareto front (nsga2), best AUC first: ``front/<k>/``
    (plan.json untrained, config.json: ``embsearch retrain`` trains one) and front.json."""
    points = []
    for k, plan in enumerate(front):
        where = sub / "front" / f"{k:02d}"
        where.mkdir(parents=True, exist_ok=True)
        write_json(where / "config.json", cfg.to_json())
        plan.extra["trained"] = False
        plan.save(where / "plan.json")
        auc = plan.extra.get("inherited_val_auc")
        points.append(
            {"dir": f"front/{k:02d}", "inherited_val_auc": auc, "bytes": plan.table_bytes}
        )
    if points:
        points[0]["main"] = True  # the run's own plan
        write_json(
            sub / "front.json", {"objectives": ["val_auc max", "bytes min"], "points": points}
        )


def record_training(plan: Plan, result: Any) -> None:
    """Put a final training's validation metrics and stopping record into ``plan`` and mark
    it trained (its weights are saved beside it)."""
    plan.metrics = {"val_auc": result.val_auc, "val_logloss": result.val_logloss, **plan.metrics}
    plan.extra["training"] = result.stopping_record()
    plan.extra["trained"] = True


def _save_weights(run_dir: Path, state: dict[str, torch.Tensor]) -> None:
    write_file(run_dir / "model.pt", lambda tmp: torch.save(state, tmp))


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
