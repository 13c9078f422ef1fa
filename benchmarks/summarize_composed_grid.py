"""Summarise ``bench_composed_grid.py``'s JSON lines (issue 21's benchmark): per dataset, the
test AUC mean ± sd over seeds for every (space, budget) as ``uniform / mde`` (then any other
controller, a row with controller parameters being one of its own: ``uniform[select=val]``),
the full table (``--full`` rows) beside them, and per budget whether the hybrid
(``field_dims+meta_table+precision``) at least matches the best feasible single axis
(``field_dims``, ``meta_table``, ``precision``).

The comparison takes, on each seed, the best of the controllers in the hybrid space
against the best feasible single-axis run (any space, any controller) of the same seed:
the paired difference's mean ± sd and the seeds it wins. That picks the best of six runs on
every seed against the best of two or three, which favours the single axes where one run's
test AUC is noisy (talkingdata: ~24 test positives a split), so two more columns compare what
a user would serve: each side's run of the best validation AUC on every seed, compared on test
AUC ("by val"), and fixed choices, the hybrid controller of the best mean against the single
(space, controller) of the best mean, seed by seed. "matches" is that last column's mean
difference >= 0 (the issue's table of means: the hybrid's best cell against the single axes'
best cell); "beats" is every seed won in the per-seed column. ``--plans`` also prints the hybrid's plan per seed
(kind, precision and dim of each field) at those budgets.

    python benchmarks/summarize_composed_grid.py benchmarks/results/composed_spaces/*.jsonl \\
        [--plans 10%]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path

HYBRID = "field_dims+meta_table+precision"
SINGLE = ("field_dims", "meta_table", "precision")
ORDER = (
    "field_dims",
    "meta_table",
    "precision",
    "field_dims+precision",
    "field_dims+meta_table",
    HYBRID,
)
BUDGETS = ("1%", "3%", "10%", "25%")


def dataset_name(data: str) -> str:
    """``frappe-split (embsearch data prepare ...)`` or ``/tmp/x/talkingdata-split1`` ->
    ``frappe-split`` / ``talkingdata`` (the seed's own split folded into the dataset)."""
    name = data.split(" (")[0].rstrip("/").split("/")[-1]
    return re.sub(r"-split\d+$", "", name)


def _ms(xs: list[float]) -> str:
    if not xs:
        return "–"
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.4f} ± {sd:.4f}"


def load(paths: list[str]) -> dict[str, dict[tuple[str, str, str, int], dict]]:
    """Rows by dataset, keyed (space, controller, budget, seed); a later file's row for the
    same key replaces an earlier one."""
    out: dict[str, dict[tuple[str, str, str, int], dict]] = defaultdict(dict)
    for p in paths:
        for line in Path(p).read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                key = (r["space"], controller_label(r), r["budget"], int(r["seed"]))
                out[dataset_name(r["data"])][key] = r
    return out


def controller_label(row: dict) -> str:
    """``uniform``, or with the row's controller parameters ``uniform[select=val]``: a run
    with parameters is a controller of its own, beside the plain one."""
    params = row.get("params") or {}
    if not params or row["space"] == "full":
        return row["controller"]
    return row["controller"] + "[" + ",".join(f"{k}={v}" for k, v in params.items()) + "]"


def controllers(rows: dict) -> list[str]:
    """The controllers of ``rows``: ``uniform``, ``mde``, then the rest by name."""
    names = {k[1] for k in rows}
    return [c for c in ("uniform", "mde") if c in names] + sorted(names - {"uniform", "mde"})


def _auc(rows: dict, space: str, ctrl: str, budget: str, seed: int) -> float | None:
    r = rows.get((space, ctrl, budget, seed))
    return None if r is None or "infeasible" in r else float(r["test_auc"])


def table(name: str, rows: dict) -> None:
    seeds = sorted({k[3] for k in rows})
    budgets = [b for b in BUDGETS if any(k[2] == b for k in rows)]
    full = [r["test_auc"] for k, r in rows.items() if k[0] == "full" and "test_auc" in r]
    ctrls = controllers(rows)
    print(
        f"\n### {name}: seeds {', '.join(map(str, seeds))}; full table {_ms(full)} (n={len(full)})"
        f"; cells {' / '.join(ctrls)}\n"
    )
    print("| space | " + " | ".join(budgets) + " |")
    print("|---|" + "---|" * len(budgets))
    for space in ORDER:
        if not any(k[0] == space for k in rows):
            continue
        cells = []
        for b in budgets:
            parts, n = [], 0
            for ctrl in ctrls:
                aucs = [a for s in seeds if (a := _auc(rows, space, ctrl, b, s)) is not None]
                ran = [s for s in seeds if (space, ctrl, b, s) in rows]
                n = max(n, len(aucs))
                parts.append(_ms(aucs) if aucs else ("infeasible" if ran else "–"))
            cell = " / ".join(parts)
            every = " / ".join(["infeasible"] * len(ctrls))
            cells.append("infeasible" if cell == every else f"{cell} ({n})")
        label = "all three (hybrid)" if space == HYBRID else space
        print(f"| {label} | " + " | ".join(cells) + " |")
    print(
        "\n| budget | best single axis (mean) | hybrid, better controller (mean) "
        "| hybrid − best single, per seed (wins) | matches | hybrid − full "
        "| by val (wins) | best-mean hybrid − best-mean single, paired (wins) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for b in budgets:
        diffs, hyb, single, gap = [], [], [], []
        for s in seeds:
            h = [float(r["test_auc"]) for r in _runs(rows, (HYBRID,), b, s)]
            o = [float(r["test_auc"]) for r in _runs(rows, SINGLE, b, s)]
            f = [r["test_auc"] for k, r in rows.items() if k[0] == "full" and k[3] == s]
            if h:
                hyb.append(max(h))
                if f:
                    gap.append(max(h) - f[0])
            if h and o:
                single.append(max(o))
                diffs.append(max(h) - max(o))
        best = _best_single(rows, b, seeds)
        verdict = "–"
        if diffs:
            wins = sum(d > 0 for d in diffs)
            fixed = _fixed_diffs(rows, b, seeds)
            verdict = "yes" if fixed and statistics.mean(fixed[1]) >= 0 else "no"
            verdict += f", beats on {wins}/{len(diffs)}"
        elif hyb:
            verdict = "yes (no single axis feasible)"
        d = f"{_ms(diffs)} ({sum(x > 0 for x in diffs)}/{len(diffs)})" if diffs else "–"
        print(
            f"| {b} | {best} | {_ms(hyb)} | {d} | {verdict} | {_ms(gap)} "
            f"| {_by_val(rows, b, seeds)} | {_fixed(rows, b, seeds)} |"
        )


def _best_single(rows: dict, budget: str, seeds: list[int]) -> str:
    best = _best_mean(rows, SINGLE, budget, seeds)
    return f"{best[1]} {best[2]} {_ms(best[3])}" if best else "none feasible"


def _best_mean(
    rows: dict, spaces: tuple[str, ...], budget: str, seeds: list[int]
) -> tuple[float, str, str, list[float]] | None:
    """The (space, controller) among ``spaces`` of the best mean test AUC over the seeds it
    ran on: (mean, space, controller, its AUCs), or None."""
    best: tuple[float, str, str, list[float]] | None = None
    for sp in spaces:
        for c in controllers(rows):
            aucs = [a for s in seeds if (a := _auc(rows, sp, c, budget, s)) is not None]
            if aucs and (best is None or statistics.mean(aucs) > best[0]):
                best = (statistics.mean(aucs), sp, c, aucs)
    return best


def _by_val(rows: dict, budget: str, seeds: list[int]) -> str:
    """Per seed, the test AUC of the hybrid's run of best validation AUC minus that of the
    single axes' run of best validation AUC (module docstring)."""
    diffs = []
    for s in seeds:
        h, o = _runs(rows, (HYBRID,), budget, s), _runs(rows, SINGLE, budget, s)
        if h and o and all("val_auc" in r for r in h + o):
            diffs.append(_best_val(h)["test_auc"] - _best_val(o)["test_auc"])
    if not diffs:
        return "–"
    return f"{_ms(diffs)} ({sum(d > 0 for d in diffs)}/{len(diffs)})"


def _runs(rows: dict, spaces: tuple[str, ...], budget: str, seed: int) -> list[dict]:
    """The feasible runs of ``spaces`` (any controller) at ``budget`` on ``seed``."""
    return [
        r
        for sp in spaces
        for c in controllers(rows)
        if (r := rows.get((sp, c, budget, seed))) is not None and "test_auc" in r
    ]


def _best_val(runs: list[dict]) -> dict:
    return max(runs, key=lambda r: r["val_auc"])


def _fixed(rows: dict, budget: str, seeds: list[int]) -> str:
    """The last column (module docstring): best-mean hybrid controller minus the best-mean
    single (space, controller), on the seeds where both ran."""
    fixed = _fixed_diffs(rows, budget, seeds)
    if fixed is None:
        return "–"
    label, diffs = fixed
    return f"{label}: {_ms(diffs)} ({sum(d > 0 for d in diffs)}/{len(diffs)})"


def _fixed_diffs(rows: dict, budget: str, seeds: list[int]) -> tuple[str, list[float]] | None:
    """``_fixed``'s pair, labelled, and its per-seed differences; None where either side has
    no run or they share no seed."""
    h, o = _best_mean(rows, (HYBRID,), budget, seeds), _best_mean(rows, SINGLE, budget, seeds)
    if h is None or o is None:
        return None
    diffs = [
        a - b
        for s in seeds
        if (a := _auc(rows, HYBRID, h[2], budget, s)) is not None
        and (b := _auc(rows, o[1], o[2], budget, s)) is not None
    ]
    return (f"{h[2]} − {o[1]} {o[2]}", diffs) if diffs else None


def plans(name: str, rows: dict, budgets: list[str]) -> None:
    print(f"\n{name}: the hybrid's plans")
    for (space, ctrl, b, s), r in sorted(
        rows.items(), key=lambda kv: (kv[0][2], kv[0][1], kv[0][3])
    ):
        if space != HYBRID or b not in budgets or "blocks" not in r:
            continue
        blocks = ", ".join(f"{f}:{_block(v)}" for f, v in r["blocks"].items())
        share = r["table_bytes"] / r["budget_bytes"]
        print(f"  {b} {ctrl} seed {s}: AUC {r['test_auc']:.4f}, {share:.0%} of budget; {blocks}")


def _block(v: dict) -> str:
    """``full/fp16/d3``, ``hash m=57/fp32/d16``: the kind with its sizes, precision, dim."""
    sizes = " ".join(
        f"{k}={x}" for k, x in v.items() if k not in ("kind", "precision", "dim", "hash")
    )
    return f"{v['kind']}{' ' + sizes if sizes else ''}/{v['precision']}/d{v['dim']}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--plans", nargs="*", default=[], metavar="BUDGET")
    args = ap.parse_args()
    for name, rows in sorted(load(args.paths).items()):
        table(name, rows)
        if args.plans:
            plans(name, rows, args.plans)


if __name__ == "__main__":
    main()
