"""Summarise several ``bench_protocol.py`` runs (e.g. one per seed) into one markdown table.

For every (dataset, controller, budget): mean test AUC over the runs with its spread, the
mean difference from ``uniform`` at the same budget (paired by run) with its standard
error and the runs won, bytes used, and search time as a multiple of one full-table
training (median over runs: one busy moment on a shared machine skews a mean), alone and
with the retraining of that budget's plan added ("pipeline": the search is one call for
every budget, so this overstates a one-budget pipeline).

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
    lines = [
        "| dataset | controller | budget | test AUC (mean ± sd) | vs uniform (mean ± se, wins/runs) "
        "| bytes used | search / full training | pipeline / full training |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted(auc, key=lambda k: (k[0], k[1] != "full (dim 16)", k[1], k[2])):
        a = auc[key]
        sd = statistics.stdev(a) if len(a) > 1 else float("nan")
        d = delta.get(key, [])
        se = f" ± {statistics.stdev(d) / math.sqrt(len(d)):.4f}" if len(d) > 1 else ""
        vs = f"{statistics.mean(d):+.4f}{se} ({sum(x > 0 for x in d)}/{len(d)})" if d else ""
        # medians: robust to a busy moment
        rt = f"{statistics.median(ratio[key]):.2f}x" if ratio.get(key) else ""
        pl = f"{statistics.median(pipeline[key]):.2f}x" if pipeline.get(key) else ""
        sd_txt = "" if math.isnan(sd) else f" ± {sd:.4f}"
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {statistics.mean(a):.4f}{sd_txt} | {vs} | "
            f"{statistics.mean(used[key]):.0%} | {rt} | {pl} |"
        )
    for key, err in sorted(errors.items()):
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | error: {err} | | | | |")
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
