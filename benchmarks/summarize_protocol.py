"""Summarise several ``bench_protocol.py`` runs (e.g. one per seed) into one markdown table.

One row per (dataset, controller); for every budget: mean test AUC over the runs with its
spread, the mean difference from ``uniform`` at the same budget (paired by run) with its
standard error and the runs won, and the share of the budget used; then the search time as
a multiple of one full-table training (median over runs and budgets: one busy moment on a
shared machine skews a mean; the search is one call for every budget).

    python benchmarks/summarize_protocol.py /tmp/bench/seed0 /tmp/bench/seed1 /tmp/bench/seed2
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path


def _load(dirs: list[str]) -> list[list[dict]]:
    return [json.loads((Path(d) / "results.json").read_text())["rows"] for d in dirs]


def _fraction(budget: str) -> float:
    return float(budget.rstrip("%"))


def _mean_sd(values: list[float]) -> str:
    sd = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.4f}{sd}"


def summarise(runs: list[list[dict]]) -> str:
    auc: dict[tuple, list[float]] = defaultdict(list)
    delta: dict[tuple, list[float]] = defaultdict(list)
    ratio: dict[tuple, list[float]] = defaultdict(list)
    pipeline: dict[tuple, list[float]] = defaultdict(list)
    used: dict[tuple, list[float]] = defaultdict(list)
    errors: dict[tuple, str] = {}
    for rows in runs:
        full = {r["dataset"]: r for r in rows if r["controller"].startswith("full")}
        uni = {
            (r["dataset"], r["budget"]): r["test_auc"] for r in rows if r["controller"] == "uniform"
        }
        for r in rows:
            key = (r["dataset"], r["controller"], r["budget"])
            if "error" in r or r.get("test_auc") is None:
                errors[key] = str(r.get("error", "failed"))[:80]
                continue
            auc[key].append(r["test_auc"])
            used[key].append(r["bytes"] / r["budget_bytes"])
            if (r["dataset"], r["budget"]) in uni and r["controller"] != "uniform":
                delta[key].append(r["test_auc"] - uni[(r["dataset"], r["budget"])])
            if r["dataset"] in full and not r["controller"].startswith("full"):
                # a row merged from another run carries that run's full training time
                one = max(r.get("full_s") or full[r["dataset"]]["retrain_s"], 1e-9)
                ratio[key].append(r["search_s"] / one)
                pipeline[key].append((r["search_s"] + r["retrain_s"]) / one)
    budgets = sorted({k[2] for k in auc if k[1] != "full (dim 16)"}, key=_fraction)
    lines = [
        "| dataset | controller | " + " | ".join(budgets) + " | search / full training |",
        "|---|---|" + "---|" * (len(budgets) + 1),
    ]
    pairs = sorted({k[:2] for k in auc}, key=lambda k: (k[0], k[1] != "full (dim 16)", k[1]))
    for dataset, controller in pairs:
        if controller == "full (dim 16)":
            a = auc[(dataset, controller, "100%")]
            lines.append(f"| {dataset} | full table (dim 16) | {_mean_sd(a)} (all budgets) |")
            continue
        cells, ratios = [], []
        for b in budgets:
            key = (dataset, controller, b)
            if key in errors:
                cells.append(f"error: {errors[key]}")
                continue
            if key not in auc:
                cells.append("")
                continue
            d = delta.get(key, [])
            se = f" ± {statistics.stdev(d) / math.sqrt(len(d)):.4f}" if len(d) > 1 else ""
            vs = f"{statistics.mean(d):+.4f}{se}, {sum(x > 0 for x in d)}/{len(d)}; " if d else ""
            cells.append(f"{_mean_sd(auc[key])} ({vs}{statistics.mean(used[key]):.0%})")
            ratios += ratio.get(key, [])
        # medians: robust to a busy moment
        rt = f"{statistics.median(ratios):.2f}x" if ratios else ""
        lines.append(f"| {dataset} | {controller} | " + " | ".join(cells) + f" | {rt} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("dirs", nargs="+", help="output directories of bench_protocol.py runs")
    args = ap.parse_args()
    print(summarise(_load(args.dirs)))


if __name__ == "__main__":
    main()
