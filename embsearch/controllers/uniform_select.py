"""Choosing one of a few plans by training each (embsearch's extension: ``uniform``'s
``select="val"``, :mod:`.uniform`).

Each plan is trained from scratch with the run's recipe (seeded with the run's seed, as the
final training is, so a plan scores the same whatever the order it comes in), for at most
``epochs`` epochs with the recipe's early stopping, and scored by its best validation AUC;
the first of the highest wins, so a caller lists the plan it prefers on a tie first. A score
is memoised under the caller's key (one training serves every budget that proposes the same
plan). Past the search's deadline (``--max-seconds``) the plans not yet trained are skipped
and the best so far wins. One line of progress per plan.

When ``epochs`` are the run's, a plan's training here is the final training the runner would
give it, so the winner's weights and validation metrics are handed back (the runner saves them
instead of training it again); a winner scored in an earlier call (the memo) has none.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from dataclasses import replace
from typing import Any

import torch

from embsearch.context import SearchContext
from embsearch.plan import Plan
from embsearch.train.trainer import TrainResult

Trained = tuple[dict[str, torch.Tensor], TrainResult]  # a model's weights (CPU) and its training


def select_by_validation(
    ctx: SearchContext,
    proposals: Sequence[tuple[str, Hashable, Plan]],
    epochs: int,
    memo: dict[Hashable, dict[str, Any]],
    deadline: float | None = None,
    controller: str = "uniform",
) -> tuple[int, list[dict[str, Any]], Trained | None]:
    """The index of the proposal (``label``, memo key, plan) of the best validation AUC, one
    record per proposal (its label, table bytes, validation AUC and log loss, epochs run and
    training seconds; ``skipped`` past the deadline) and, when the winner trained here for
    the run's epochs, its weights and training result."""
    final = int(epochs) == ctx.train.epochs
    kept: tuple[int, Trained] | None = None  # the best so far, if it trained here
    trial_ctx = replace(ctx, train=replace(ctx.train, epochs=int(epochs), progress=False))
    records: list[dict[str, Any]] = []
    best, best_auc = 0, -1.0
    for i, (label, key, plan) in enumerate(proposals):
        record: dict[str, Any] = {"setting": label, "table_bytes": plan.table_bytes}
        if key not in memo and deadline is not None and time.perf_counter() > deadline:
            records.append({**record, "skipped": "--max-seconds ran out"})
            continue
        if key not in memo:
            model, result = trial_ctx.train_plan(plan, desc=f"{controller} select: {label}")
            if final and result.val_auc > best_auc:
                kept = (i, (_cpu_state(model), result))
            memo[key] = {
                "val_auc": float(result.val_auc),
                "val_logloss": float(result.val_logloss),
                "epochs_run": int(result.epochs_run),
                "train_seconds": round(float(result.seconds), 1),
            }
        record.update(memo[key])
        records.append(record)
        ctx.log(
            f"{controller} select: {label}: val AUC {record['val_auc']:.4f} "
            f"({i + 1}/{len(proposals)})"
        )
        if record["val_auc"] > best_auc:
            best, best_auc = i, record["val_auc"]
    return best, records, kept[1] if kept is not None and kept[0] == best else None


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
