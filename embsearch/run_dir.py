"""Reading a run directory back: its config, plan and trained weights.

A run directory (written by :func:`embsearch.search.run_search`) holds ``config.json``,
``plan.json``, ``search.json`` and, once the plan is trained, ``model.pt``. ``retrain`` and
``export`` read it here, so neither needs the search runner; :class:`RunResult` is what the
runner returns for each directory it wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from embsearch._atomic import read_json
from embsearch.errors import RunDirError
from embsearch.out_dir import held_by
from embsearch.plan import Plan
from embsearch.run_checks import check_run_data, check_run_dir
from embsearch.run_config import RunConfig


@dataclass
class RunResult:
    """One run directory a search wrote: its plan, where it is and the search's seconds."""

    plan: Plan
    run_dir: Path
    seconds: float


def load_run(
    run_dir: str | Path, *, weights: bool = True
) -> tuple[RunConfig, Plan, dict[str, torch.Tensor]]:
    """Read a single-plan run directory (``weights=False``: its trained weights are not needed).

    The run's dataset must be the one the plan was searched on: its fingerprint is checked
    against the plan's ``data_fingerprint`` (a mismatch names both)."""
    run_dir = Path(run_dir)
    pid = held_by(run_dir)
    if pid is not None:
        raise RunDirError(
            f"{run_dir} is still being written by another embsearch process "
            f"({'pid ' + str(pid) if pid else 'pid unknown'}); wait for it to finish"
        )
    check_run_dir(run_dir)
    if weights and not (run_dir / "model.pt").is_file():
        raise RunDirError(
            f"{run_dir} has a plan but no trained weights (the search was interrupted, or stopped "
            f"during its final training); `embsearch retrain {run_dir}` trains it and saves the "
            "weights, or run the search again"
        )
    cfg = RunConfig.from_mapping(read_json(run_dir / "config.json"), str(run_dir / "config.json"))
    plan = Plan.load(run_dir / "plan.json")
    check_run_data(cfg, plan, run_dir)
    return cfg, plan, load_weights(run_dir) if weights else {}


def load_weights(run_dir: str | Path) -> dict[str, torch.Tensor]:
    """The trained weights ``RUN_DIR/model.pt`` (one line for a damaged file)."""
    run_dir = Path(run_dir)
    try:
        return torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)
    except Exception:  # torch raises several types (and long advice) for a damaged file
        raise RunDirError(
            f"{run_dir / 'model.pt'} cannot be read: it is damaged or was not written by "
            f"embsearch; `embsearch retrain {run_dir}` trains the plan again"
        ) from None
