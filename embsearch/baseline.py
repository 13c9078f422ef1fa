"""The full-size baseline (every field at the width, one group, no projection): trained once
per dataset and recipe, tested, and reused by every ``retrain --with-baseline`` and by a
``--budget 100%`` run's own ``retrain`` (issue 19 item 6).

A baseline is keyed by what decides its model bit for bit: the data's fingerprint, the
backbone and its complete parameters, the width, the training options (epochs, batch size,
learning rate, validation cadence), the seed and the device type. Its record (test and
validation metrics, stopping, per-epoch times) is a JSON file in the cache directory:
``$EMBSEARCH_CACHE`` if set, else ``$XDG_CACHE_HOME/embsearch`` or ``~/.cache/embsearch``,
under ``baselines/``. Nothing but these records is written there; deleting the directory
only costs a retraining.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from embsearch._atomic import write_json
from embsearch.context import SearchContext
from embsearch.plan import Plan
from embsearch.run_config import RunConfig
from embsearch.train.trainer import TrainResult, evaluate

FORMAT = "embsearch.baseline/1"


def cache_dir() -> Path:
    """Where baseline records live (see the module docstring)."""
    root = os.environ.get("EMBSEARCH_CACHE")
    if root:
        return Path(root).expanduser() / "baselines"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "embsearch" / "baselines"


def baseline_key(cfg: RunConfig, ctx: SearchContext) -> str:
    """16 hex digits naming the full-size model this run's options train."""
    recipe = {
        "data": ctx.dataset.fingerprint(),
        "backbone": cfg.backbone,
        "backbone_params": ctx.backbone_params,
        "width": ctx.space.width,
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "eval_every": cfg.eval_every,
        "seed": cfg.seed,
        "device": ctx.device.type,
    }
    text = json.dumps(recipe, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def is_full_table(plan: Plan, width: int) -> bool:
    """Every field at the run's ``width`` in one group of ``full`` fp32 rows, the backbone
    that wide too (the full-size model, whatever controller chose it)."""
    return (
        plan.width == width
        and plan.precision == "fp32"
        and plan.dims_only
        and all(len(f.groups) == 1 and f.groups[0].dim == width for f in plan.fields)
    )


def load_baseline(key: str) -> dict[str, Any] | None:
    """The stored record for ``key``, or ``None`` (none yet, or unreadable: then retrained)."""
    path = cache_dir() / f"{key}.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(record, dict) and record.get("format") == FORMAT and record.get("key") == key
    return record if ok else None


def save_baseline(key: str, record: dict[str, Any]) -> Path | None:
    """Store ``record`` for ``key`` (atomically); ``None`` if the cache is not writable (the
    baseline then simply is not reused)."""
    path = cache_dir() / f"{key}.json"
    try:
        write_json(path, {"format": FORMAT, "key": key, **record})
    except OSError:
        return None
    return path


def baseline_record(
    result: TrainResult, table_bytes: int, test_auc: float, test_logloss: float
) -> dict[str, Any]:
    """The stored fields of a tested full-size training: test and validation metrics, bytes,
    time, stopping and per-epoch times."""
    return {
        "test_auc": test_auc,
        "test_logloss": test_logloss,
        "val_auc": result.val_auc,
        "table_bytes": table_bytes,
        "train_seconds": result.seconds,
        **result.stopping_record(),
        **result.timing_record(),
    }


def test_and_store(
    cfg: RunConfig, ctx: SearchContext, model: torch.nn.Module, plan: Plan, result: TrainResult
) -> dict[str, Any]:
    """A search whose plan is the full-size model (``--budget 100%``): test it, store it as
    this recipe's baseline and return what ``search.json`` records of it."""
    auc, ll = evaluate(model, ctx.data.split("test"))
    record = baseline_record(result, plan.table_bytes, auc, ll)
    key = baseline_key(cfg, ctx)
    stored = save_baseline(key, record)
    return {"key": key, "stored": None if stored is None else str(stored), **record}
