"""What ``embsearch search`` prints of each plan: its bytes and metrics, its dims, the whole
model's size, and the notes a user should see (what the controller noted, a validation
AUC below chance, what ``--max-seconds`` cut short, how much the learned signal decided, an
interrupted search). One reporter, so that every controller's plan reads the same."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from embsearch.blocks import BlockSpec
from embsearch.budget import format_bytes
from embsearch.constraints import parse_constraints
from embsearch.controllers._signal import summary_lines as signal_summary
from embsearch.plan import Plan


def plan_lines(plan: Plan, run_dir: Path) -> Iterator[str]:
    """The lines printed for one plan written to ``run_dir``."""
    p = plan
    metrics = "  ".join(metric(k, v) for k, v in p.metrics.items() if k != "null_reasons")
    used = f"{p.table_bytes / p.budget_bytes:.0%}" if p.budget_bytes else "-"
    yield (
        f"{run_dir}: {p.controller} plan {format_bytes(p.table_bytes)} of budget "
        f"{format_bytes(p.budget_bytes)} ({used} used)  {metrics}"
    )
    at = "" if p.precision == "fp32" else f" ({p.precision} rows)"
    yield f"  dims{at}: " + ", ".join(f"{f.name}={'/'.join(map(str, f.dims))}" for f in p.fields)
    if not p.dims_only:  # kinds, sizes or precisions other than full rows at the plan's
        yield "  blocks: " + ", ".join(
            f"{f.name}={'/'.join(block_label(p.block_spec(f, g)) for g in range(len(f.groups)))}"
            for f in p.fields
        )
    if p.extra.get("constraints"):  # the per-field constraints the search obeyed
        held = parse_constraints(p.extra["constraints"])
        yield "  constraints: " + " ".join(c.text(name) for name, c in held.items())
    if isinstance(p.extra.get("backbone_bytes"), int):
        dense = p.extra["backbone_bytes"]
        yield (
            f"  model: table {format_bytes(p.table_bytes)} + backbone (dense) "
            f"{format_bytes(dense)} = {format_bytes(p.table_bytes + dense)}"
        )
    for note in (*p.notes, low_auc_note(p.metrics), time_limit_note(p.extra)):
        if note:
            yield "  " + note
    for line in signal_summary(p.extra):  # did the learned signal decide the plan?
        yield "  " + line
    if p.interrupted:
        yield (
            f"  search interrupted: best plan so far, not trained; "
            f"`embsearch retrain {run_dir}` trains it"
        )


def block_label(spec: BlockSpec) -> str:
    """A block in a few characters: ``full``, ``hash m=20``, ``qr c=8`` ..., and its
    precision unless fp32 (``hash m=20 int8``)."""
    size = {"hash": f" m={spec.m}", "memcom": f" m={spec.m}", "qr": f" c={spec.c}"}
    size["pruned"] = f" kept={spec.kept}"
    label = spec.kind + size.get(spec.kind, "")
    return label if spec.precision == "fp32" else f"{label} {spec.precision}"


def time_limit_note(extra: dict[str, Any]) -> str | None:
    """What ``--max-seconds`` cut short in a plan's search (shown with ``--quiet`` too)."""
    supernet = extra.get("supernet") or {}
    search = extra.get("search") or {}
    cut = []
    if supernet.get("timed_out"):
        cut.append("supernet training")
    if search.get("stop_reason") == "time":
        n = search.get("evaluations", 0)
        cut.append(f"the search after {n} evaluation{'s' if n != 1 else ''}")
    if not cut:
        return None
    return (
        f"--max-seconds cut short {' and '.join(cut)}: this is the best plan found in time; "
        "raise --max-seconds for a fuller search"
    )


def metric(name: str, value: Any) -> str:
    """``val_auc 0.7123``; a metric that could not be computed (NaN, inf, null) is ``n/a``."""
    ok = isinstance(value, (int, float)) and math.isfinite(value)
    return f"{name} {value:.4f}" if ok else f"{name} n/a"


def low_auc_note(metrics: dict[str, Any]) -> str | None:
    """A remark on a validation AUC below 0.5 (worse than chance), or on none at all."""
    auc = metrics.get("val_auc")
    if not isinstance(auc, (int, float)) or not math.isfinite(auc):
        return (
            "no validation AUC: the validation split lacks a class (or training diverged); "
            "prepare the data again, `embsearch data prepare` checks the splits"
        )
    if auc < 0.5:
        return (
            f"val_auc {auc:.4f} is below 0.5, worse than chance: the model learnt nothing "
            "that holds on validation; try more --epochs, a lower --lr, or more data"
        )
    return None
