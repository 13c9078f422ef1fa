"""Choosing one of a few plans by training each (embsearch's extension: ``uniform``'s
``select="val"``, :mod:`.uniform`).

Each plan is trained from scratch with the run's recipe (seeded with the run's seed, as the
final training is, so a plan scores the same whatever the order it comes in), for at most
``epochs`` epochs with the recipe's early stopping, and scored by its best validation AUC;
the first of the highest is the challenger, so a caller lists the plan it prefers on a tie
first (the incumbent). A score is memoised under the caller's key (one training serves every
budget that proposes the same plan). Past the search's deadline (``--max-seconds``) the
plans not yet trained are skipped and the best so far is the challenger. One line of
progress per plan.

The challenger wins only when its validation AUC beats the incumbent's by more than
``margin_se`` standard errors of their paired difference (DeLong et al., Biometrics 1988, on
the validation rows both scored; :class:`~embsearch.train.metrics.PairedMargin`, the test
OptEmbed's uniform gate and RULE's step 5 run); otherwise the incumbent is returned.
On talkingdata's validation split of ~24 positives, the highest validation AUC alone chose by
noise. ``margin_se=0`` returns the highest validation AUC whatever its margin.

When ``epochs`` are the run's, a plan's training here is the final training the runner would
give it, so the winner's weights and validation metrics are handed back (the runner saves them
instead of training it again); a winner scored in an earlier call (the memo) has none.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from embsearch.context import SearchContext
from embsearch.plan import Plan
from embsearch.train.cpu_weights import cpu_weights
from embsearch.train.metrics import PairedMargin, paired_auc_difference
from embsearch.train.trainer import TrainResult, predict

Trained = tuple[dict[str, torch.Tensor], TrainResult]  # a model's weights (CPU) and its training


@dataclass
class SelectMemo:
    """What one search's selections share across budgets, by the caller's key: each plan's
    record (validation AUC and log loss, epochs run, training seconds) and, for the margin,
    its validation predictions."""

    records: dict[Hashable, dict[str, Any]] = field(default_factory=dict)
    predictions: dict[Hashable, np.ndarray] = field(default_factory=dict)


@dataclass
class Selection:
    """The selection's outcome: the winner's index, one record per proposal (its label, table
    bytes and memo record; ``skipped`` past the deadline), the margin test when one ran, and
    the winner's weights and training when it trained here for the run's epochs."""

    best: int
    records: list[dict[str, Any]]
    margin: dict[str, Any] | None = None
    trained: Trained | None = None


def select_by_validation(
    ctx: SearchContext,
    proposals: Sequence[tuple[str, Hashable, Plan]],
    epochs: int,
    memo: SelectMemo,
    deadline: float | None = None,
    controller: str = "uniform",
    margin_se: float = 0.0,
) -> Selection:
    """The proposal (``label``, memo key, plan) to return: the first of the highest
    validation AUC when it beats the first proposal by more than ``margin_se`` paired
    standard errors (module docstring), else the first."""
    final = int(epochs) == ctx.train.epochs
    incumbent: Trained | None = None  # the first proposal's training, if it ran here
    challenger: tuple[int, Trained] | None = None  # the best so far, if it trained here
    trial_ctx = replace(ctx, train=replace(ctx.train, epochs=int(epochs), progress=False))
    val = ctx.data.split("val")
    records: list[dict[str, Any]] = []
    best, best_auc = 0, -1.0
    for i, (label, key, plan) in enumerate(proposals):
        record: dict[str, Any] = {"setting": label, "table_bytes": plan.table_bytes}
        if key not in memo.records and deadline is not None and time.perf_counter() > deadline:
            records.append({**record, "skipped": "--max-seconds ran out"})
            continue
        if key not in memo.records:
            model, result = trial_ctx.train_plan(plan, desc=f"{controller} select: {label}")
            if margin_se > 0:
                memo.predictions[key] = predict(model, val, ctx.train.eval_batch_size)
            if final and (i == 0 or result.val_auc > best_auc):
                weights = (cpu_weights(model.state_dict(), copy=True), result)
                incumbent = weights if i == 0 else incumbent
                challenger = (i, weights)
            memo.records[key] = {
                "val_auc": float(result.val_auc),
                "val_logloss": float(result.val_logloss),
                "epochs_run": int(result.epochs_run),
                "train_seconds": round(float(result.seconds), 1),
            }
        record.update(memo.records[key])
        records.append(record)
        ctx.log(
            f"{controller} select: {label}: val AUC {record['val_auc']:.4f} "
            f"({i + 1}/{len(proposals)})"
        )
        if record["val_auc"] > best_auc:
            best, best_auc = i, record["val_auc"]
    margin = None
    if margin_se > 0 and best != 0 and "val_auc" in records[0]:
        margin = _margin(val.y.cpu().numpy(), proposals, records, best, memo, margin_se)
        if margin is not None:
            ctx.log(f"{controller} select: {_margin_line(margin)}")
            if margin["returned"] == "incumbent":
                best = 0
    if best == 0:
        return Selection(0, records, margin, incumbent)
    trained = challenger[1] if challenger is not None and challenger[0] == best else None
    return Selection(best, records, margin, trained)


def _margin(
    y: np.ndarray,
    proposals: Sequence[tuple[str, Hashable, Plan]],
    records: list[dict[str, Any]],
    best: int,
    memo: SelectMemo,
    margin_se: float,
) -> dict[str, Any] | None:
    """The paired test of proposal ``best`` against the first (``extra["select"]["margin"]``);
    None when either has no predictions (scored without the margin)."""
    ours, theirs = memo.predictions.get(proposals[best][1]), memo.predictions.get(proposals[0][1])
    if ours is None or theirs is None:
        return None
    se = paired_auc_difference(y, ours, theirs)[2]
    test = PairedMargin(records[best]["val_auc"], records[0]["val_auc"], se, margin_se)
    return {
        "challenger": records[best]["setting"],
        "incumbent": records[0]["setting"],
        "val_auc_gain": test.challenger_auc - test.incumbent_auc,
        "se": se if math.isfinite(se) else None,
        "margin_se": margin_se,
        "returned": "challenger" if test.challenger_wins else "incumbent",
    }


def _margin_line(margin: dict[str, Any]) -> str:
    """The margin test in one line of progress."""
    se = "an undefined SE" if margin["se"] is None else f"{margin['se']:.4f} SE"
    head = (
        f"{margin['challenger']} leads {margin['incumbent']} by {margin['val_auc_gain']:+.4f} "
        f"val AUC ({se}, margin {margin['margin_se']:g} SE): "
    )
    if margin["returned"] == "challenger":
        return head + f"{margin['challenger']} wins"
    return head + f"within the margin, {margin['incumbent']} kept"
