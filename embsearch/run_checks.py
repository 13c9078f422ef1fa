"""Checks that a run directory, and the dataset its config.json names, are what ``retrain``
and ``export`` need: each refusal says in one line what the path is instead (a file, an
export directory, a budget folder written under another name) or which data it expected."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embsearch.budget import BudgetSpec
from embsearch.data.dataset import SPLITS
from embsearch.data.schema import Schema
from embsearch.data.synthetic import make_synthetic
from embsearch.errors import DataError, RunDirError
from embsearch.plan import Plan
from embsearch.run_config import RunConfig


def check_run_dir(run_dir: Path) -> None:
    """Refuse, in one line that says what ``run_dir`` is, anything but a finished run directory."""
    if run_dir.is_file():
        where = (
            f"its folder {run_dir.parent}"
            if run_dir.name == "plan.json"
            else "the directory `embsearch search --out` wrote"
        )
        raise RunDirError(f"{run_dir} is a file, not a run directory; give {where}")
    if not run_dir.is_dir():
        raise RunDirError(f"run directory {run_dir} does not exist{_budget_dir_hint(run_dir)}")
    if not (run_dir / "plan.json").is_file():
        subs = sorted(p.name for p in run_dir.glob("budget-*") if (p / "plan.json").is_file())
        if subs:
            raise RunDirError(
                f"{run_dir} holds one run per budget; pick one, e.g. {run_dir / subs[0]}"
            )
        raise RunDirError(
            f"{run_dir} holds no plan.json; is it a run directory from `embsearch search`?"
        )
    if not (run_dir / "config.json").is_file():
        if (run_dir / "weights.safetensors").is_file():
            raise RunDirError(
                f"{run_dir} is an export directory (from `embsearch export`), not a run "
                "directory; give the run directory `embsearch search --out` wrote"
            )
        raise RunDirError(
            f"{run_dir} lacks config.json; the run did not finish, run the search again"
        )


def _budget_dir_hint(run_dir: Path) -> str:
    """For a missing ``RUN/budget-25%``: the folder the search wrote for it (``budget-25pct``)."""
    if not run_dir.name.startswith("budget-") or not run_dir.parent.is_dir():
        return ""
    label = BudgetSpec(run_dir.name.removeprefix("budget-")).label
    folder = run_dir.parent / f"budget-{label}"
    if folder.is_dir():
        return f"; budget {run_dir.name.removeprefix('budget-')}'s run is in {folder}"
    subs = sorted(p.name for p in run_dir.parent.glob("budget-*") if p.is_dir())
    return f"; {run_dir.parent} holds {', '.join(subs)}" if subs else ""


def data_fingerprint(data: str, synthetic_rows: int = 60_000) -> str:
    """The fingerprint (:meth:`Dataset.fingerprint`) of ``data`` ('synthetic' or a prepared
    directory), read from its schema and array headers only (the arrays are not read)."""
    if data == "synthetic":
        return make_synthetic(rows=synthetic_rows, seed=0).fingerprint()
    directory = Path(data)
    schema = Schema.load(directory)
    sizes = []
    for name in SPLITS:
        path = directory / f"{name}_y.npy"
        try:
            sizes.append(str(np.load(path, mmap_mode="r").shape[0]))
        except (OSError, ValueError, IndexError):
            raise DataError(
                f"{directory} lacks a readable {path.name}; re-run `embsearch data prepare`"
            ) from None
    return f"{schema.fingerprint()}-{'-'.join(sizes)}"


def check_run_data(cfg: RunConfig, plan: Plan, run_dir: str | Path) -> None:
    """Refuse a run whose dataset is gone or is not the one its plan was searched on (the
    directory was prepared again, or replaced by another with the same field sizes)."""
    if cfg.data != "synthetic" and not Path(cfg.data).is_dir():
        raise RunDirError(
            f"the data directory of {run_dir}, {cfg.data} (in its config.json), does not exist; "
            "restore it there (or prepare it again with the same options)"
        )
    if not plan.data_fingerprint:  # a plan built in code, without a dataset
        return
    have = data_fingerprint(cfg.data, cfg.synthetic_rows)
    if have != plan.data_fingerprint:
        raise RunDirError(
            f"{cfg.data} holds data with fingerprint {have}, but the plan in {run_dir} was "
            f"searched on data with fingerprint {plan.data_fingerprint}: the dataset was "
            "prepared again or replaced since; use the dataset of the search, or search again"
        )
