"""The shared benchmark protocol: search, retrain from scratch, test AUC, for any controllers.

For every dataset (``synthetic``, ``frappe``, ``talkingdata``, or ``synthetic-wide``: the
planted variant ``WIDE_PRESET`` where embedding width pays at convergence):

1. the full-size table (every field at the width, DeepFM by default) is trained once for
   all ``--epochs`` (no early stopping) and timed: the reference every plan is compared
   with;
2. for every controller (any registered name or ``package.module:Class``), in its default
   space: ``search_budgets`` over all budgets at once (timed: one search serves every
   budget for controllers that train one supernet), then each plan is retrained from
   scratch with the same training options (early stopping on validation AUC) or its
   attached weights are used, and evaluated on the test split.

Budgets are fractions of the full table (``10%,25%,50%`` by default). ``--resplit``
gives every seed its own random split of the real datasets (repeated random splits).
Results are written after every run to ``OUT/results.json`` and ``OUT/results.md``; a
controller that fails is recorded with its error and the run goes on. Prepared datasets
are cached under ``--data-dir`` (default ``OUT/data``). Frappe's validation and test files
are merged and re-split 8:1:1 (its train split is not available here), so its numbers are
not comparable with published Frappe results. Usage::

    python benchmarks/bench_protocol.py --datasets synthetic --controllers autodim,dnis \\
        --budgets 10%,25%,50% --epochs 2 --out /tmp/bench
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from embsearch.budget import format_bytes, parse_budget
from embsearch.cli import parse_param
from embsearch.context import SearchContext
from embsearch.controllers.registry import get_controller
from embsearch.data.dataset import Dataset
from embsearch.data.synthetic import WIDE_PRESET, make_synthetic
from embsearch.errors import ConfigError, EmbsearchError
from embsearch.plan import Plan
from embsearch.search_spaces import SPACES, FieldDimsSpace
from embsearch.train import TrainConfig, evaluate, resolve_device, seed_everything

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"  # ../shared beside the repo
FRAPPE = [SHARED / "frappe/frappe.validation.libfm.gz", SHARED / "frappe/frappe.test.libfm.gz"]
TALKINGDATA = SHARED / "talkingdata-adtracking-sample/train_sample.csv.gz"
DATASETS = ("synthetic", "frappe", "talkingdata", "synthetic-wide")


def load_dataset(
    name: str, data_dir: Path, rows: int | None, split_seed: int | None = None
) -> Dataset:
    """A dataset by name, prepared once and cached under ``data_dir``. ``split_seed``
    draws the real datasets' random 8:1:1 split with that seed (None: seed 0, cached
    under the plain name)."""
    if name in ("synthetic", "synthetic-wide"):
        preset = WIDE_PRESET if name == "synthetic-wide" else {}
        return make_synthetic(rows=rows, **preset) if rows else make_synthetic(**preset)
    if name not in DATASETS:
        raise SystemExit(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    tag = "" if split_seed is None else f"-split{split_seed}"
    out = data_dir / ((name if rows is None else f"{name}-{rows}rows") + tag)
    seed = 0 if split_seed is None else int(split_seed)
    if out.is_dir():
        return Dataset.load(out)
    from embsearch.data.prepare import prepare  # written alongside; imported only when needed

    data_dir.mkdir(parents=True, exist_ok=True)
    if name == "frappe":
        merged = data_dir / "frappe.all.libfm"
        with merged.open("wb") as dst:
            for part in FRAPPE:
                with gzip.open(part, "rb") as src:
                    shutil.copyfileobj(src, dst)
        return prepare(
            "libfm", [str(merged)], str(out), split=(0.8, 0.1, 0.1), rows=rows, seed=seed
        )
    return prepare(
        "csv",
        [str(TALKINGDATA)],
        str(out),
        label="is_attributed",
        drop=["attributed_time", "click_time"],
        rows=rows,
        seed=seed,
    )


def context(
    ds: Dataset, space_name: str, budgets: list[str], args: argparse.Namespace
) -> SearchContext:
    space = SPACES[space_name](ds.schema, width=args.width)
    resolved = sorted({space.resolve_budget(parse_budget(b)) for b in budgets})
    cfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        eval_every=args.eval_every,
        progress=False,
        lr_plateau_factor=float(args.backbone_params_.get("lr_plateau_factor", 0.1)),
    )
    return SearchContext(
        ds,
        space,
        resolved,
        backbone=args.backbone,
        backbone_params=args.backbone_params_,
        train=cfg,
        device=args.device_,
        seed=args.seed,
        log=lambda m: None,
    )


def budget_labels(ctx: SearchContext, budgets: list[str]) -> dict[int, str]:
    """Each budget's bytes in ``ctx``'s space -> the budget as given (``10%``)."""
    return {ctx.space.resolve_budget(parse_budget(b)): b for b in budgets}


def planted_stat(plan: Plan, ds: Dataset) -> str:
    """Synthetic only: table dims per id over the informative fields / over the noise fields."""
    meta = ds.schema.meta
    if "informative" not in meta:
        return ""

    def per_id(names: list[str]) -> float:
        fields = [f for f in plan.fields if f.name in names]
        return sum(g.rows * g.dim for f in fields for g in f.groups) / sum(f.rows for f in fields)

    return f"{per_id(meta['informative']):.1f}/{per_id(meta['noise']):.1f}"


def retrain_and_test(ctx: SearchContext, plan: Plan) -> dict[str, Any]:
    """Retrain ``plan`` from scratch (or load its weights), then test AUC and log loss."""
    t0 = time.perf_counter()
    if plan.weights is not None:
        model = ctx.build_model(plan)
        model.load_state_dict(plan.weights)
        val_auc = float("nan")
    else:
        model, result = ctx.train_plan(plan)
        val_auc = result.val_auc
    seconds = time.perf_counter() - t0
    auc, ll = evaluate(model, ctx.data.split("test"))
    return {"retrain_s": round(seconds, 2), "val_auc": val_auc, "test_auc": auc, "test_logloss": ll}


def run_full(ds_name: str, ds: Dataset, args: argparse.Namespace) -> dict[str, Any]:
    """The full table, trained for all ``--epochs`` (no early stopping; the best epoch's
    weights are tested): the "one full training for the same epochs" that searches are
    timed against."""
    ctx = context(ds, "field_dims", ["100%"], args)
    ctx.train = replace(ctx.train, patience=ctx.train.epochs + 1)
    space: FieldDimsSpace = ctx.space  # type: ignore[assignment]
    plan = space.to_plan(space.uniform(space.width), "full", space.full_table_bytes())
    row = {
        "dataset": ds_name,
        "controller": f"full (dim {space.width})",
        "budget": "100%",
        "search_s": 0.0,
    }
    return {
        **row,
        "bytes": plan.table_bytes,
        "budget_bytes": plan.table_bytes,
        **retrain_and_test(ctx, plan),
    }


def run_controller(
    ds_name: str, ds: Dataset, name: str, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Search all budgets at once, then retrain and test every plan."""
    params = args.params_.get(name, {})
    label = name + (f"[{','.join(f'{k}={v}' for k, v in params.items())}]" if params else "")
    base = {"dataset": ds_name, "controller": label}
    try:
        cls = get_controller(name)
        ctx = context(ds, args.space or cls.default_space, args.budgets, args)
        seed_everything(args.seed)
        t0 = time.perf_counter()
        plans = cls(**params).search_budgets(ctx)
        search_s = time.perf_counter() - t0
    except EmbsearchError as exc:
        return [{**base, "budget": ",".join(args.budgets), "error": str(exc)}]
    labels = budget_labels(ctx, args.budgets)
    rows = []
    for plan in plans:
        row = {
            **base,
            "budget": labels.get(plan.budget_bytes, str(plan.budget_bytes)),
            "space": plan.space,
        }
        row |= {"search_s": round(search_s, 2), "shared_by": len(plans), "bytes": plan.table_bytes}
        row |= {"budget_bytes": plan.budget_bytes, "planted": planted_stat(plan, ds)}
        row |= {"provenance": plan.extra.get("provenance")}
        row |= {"null_agreement": (plan.extra.get("signal") or {}).get("null_agreement")}
        row |= {"dims": plan.field_dims, **retrain_and_test(ctx, plan)}
        rows.append(row)
        print(
            f"  {label} {row['budget']}: test AUC {row['test_auc']:.4f} ({format_bytes(plan.table_bytes)})",
            flush=True,
        )
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    head = "| dataset | controller | budget | table bytes | search s | retrain s | test AUC | test logloss | planted inf/noise dims |"
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        if "error" in r:
            lines.append(
                f"| {r['dataset']} | {r['controller']} | {r['budget']} | error: {r['error']} | | | | | |"
            )
            continue
        shared = f" (x{r['shared_by']})" if r.get("shared_by", 1) > 1 else ""
        lines.append(
            f"| {r['dataset']} | {r['controller']} | {r['budget']} | {r['bytes']:,} | {r['search_s']:.1f}{shared} | "
            f"{r['retrain_s']:.1f} | {r['test_auc']:.4f} | {r['test_logloss']:.4f} | {r.get('planted', '')} |"
        )
    note = (
        "\nsearch s (xN): one `search_budgets` call for all N budgets (supernet controllers train once for all). "
        "planted: table dims per id over the informative / the noise fields (planted datasets only).\n"
    )
    return "\n".join(lines) + "\n" + note


def write(out: Path, rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    config = {k: v for k, v in vars(args).items() if k != "device_"}
    meta = {
        "config": config,
        "torch": torch.__version__,
        "device": str(args.device_),
        "host": platform.node(),
    }
    (out / "results.json").write_text(
        json.dumps({**meta, "rows": rows}, indent=2, default=str) + "\n"
    )
    (out / "results.md").write_text(markdown(rows))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--datasets",
        default="synthetic,frappe,talkingdata",
        help="comma list of " + ", ".join(DATASETS),
    )
    p.add_argument(
        "--controllers", default="autodim,autoemb,dnis", help="comma list of controller names"
    )
    p.add_argument(
        "--budgets",
        default="10%,25%,50%",
        help="comma list of budgets (fractions of the full table)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=20,
        help="epochs of every training (search and retrain; retraining stops early after 2 "
        "epochs without a better validation AUC). 20 reaches convergence on the three "
        "datasets at batch 4096; fewer compare plans early in training (BENCHMARKS.md)",
    )
    p.add_argument("--out", required=True, help="output directory (results.json, results.md)")
    p.add_argument("--data-dir", default=None, help="cache of prepared datasets (default OUT/data)")
    p.add_argument(
        "--rows", type=int, default=None, help="rows per dataset (default: all; synthetic 60000)"
    )
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate of every training")
    p.add_argument(
        "--eval-every",
        type=int,
        default=0,
        help="also validate every this many steps in every training (0: once an epoch)",
    )
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--backbone", default="deepfm")
    p.add_argument(
        "--backbone-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a backbone parameter (JSON value) for every training; repeatable (default: the "
        "backbone's declared recipe)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument(
        "--space", default=None, help="search space for every controller (default: its own)"
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="CONTROLLER.KEY=VALUE",
        help="a controller parameter (JSON value), e.g. rule.retrain=true; repeatable. Its "
        "rows are labelled with it, e.g. rule[retrain=True]",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-full", action="store_true", help="skip the full-table reference")
    p.add_argument(
        "--resplit",
        action="store_true",
        help="draw frappe's and talkingdata's 8:1:1 split with --seed too (repeated random "
        "splits: talkingdata has 227 positives, so one fixed test split is mostly noise)",
    )
    args = p.parse_args(argv)
    args.datasets = [d for d in args.datasets.split(",") if d]
    args.controllers = [c for c in args.controllers.split(",") if c]
    args.budgets = [b for b in args.budgets.split(",") if b]
    args.backbone_params_ = dict(parse_param(t, "--backbone-param") for t in args.backbone_param)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.params_ = {}
    for text in args.param:
        try:
            key, value = parse_param(text)  # as `embsearch search --param` (JSON, else text)
        except ConfigError:
            key = ""
        ctrl, dot, name = key.partition(".")
        if not (dot and ctrl and name):
            p.error(f"--param {text!r}: write CONTROLLER.KEY=VALUE, e.g. rule.retrain=true")
        args.params_.setdefault(ctrl, {})[name] = value
    args.device_ = resolve_device(args.device)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # torch imports its compiler stack on the first optimizer: pay that once here, so the
    # first timed training (the full table) is not charged ~3 s that later runs skip.
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], fused=True)
    seed_everything(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data_dir = Path(args.data_dir) if args.data_dir else out / "data"
    rows: list[dict[str, Any]] = []
    for ds_name in args.datasets:
        ds = load_dataset(ds_name, data_dir, args.rows, args.seed if args.resplit else None)
        print(f"{ds_name}: {len(ds.train)} train rows, {ds.schema.num_fields} fields", flush=True)
        if not args.no_full:
            rows.append(run_full(ds_name, ds, args))
            print(
                f"  full: test AUC {rows[-1]['test_auc']:.4f} in {rows[-1]['retrain_s']:.1f} s",
                flush=True,
            )
            write(out, rows, args)
        for name in args.controllers:
            rows += run_controller(ds_name, ds, name, args)
            write(out, rows, args)
    print(markdown(rows))


if __name__ == "__main__":
    main()
