"""OptEmbed's ``composed_min_gain`` evaluated offline (issue 21): which served plans change
when the uniform gate also asks the pick to beat uniform's plan by ``floor`` proxy AUC.

Reads OptEmbed's rows (each records the pick's and uniform's proxy AUC, the paired SE and
what the gate returned) and ``uniform``'s test AUC in the same space from the grid rows (same
split, seed and budget), and prints, per floor, the cells that change and the mean test AUC
per budget. A changed cell serves uniform's plan, whose retrained test AUC is the grid's
(the gate's uniform cells reproduce it exactly: frappe 10% seed 0, 25% seeds 1-2).

PYTHONPATH=. python benchmarks/optembed_min_gain_offline.py
"""

from __future__ import annotations

import argparse
import glob
import json
import statistics

DIR = "benchmarks/results/composed_spaces"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gate", default=f"{DIR}/frappe_optembed_gate.jsonl")
    ap.add_argument("--grid", default=f"{DIR}/frappe_grid*.jsonl")
    ap.add_argument("--floors", type=float, nargs="+", default=[0, 0.002, 0.005, 0.01, 0.1])
    args = ap.parse_args()
    gate = [json.loads(line) for line in open(args.gate)]
    uniform: dict[tuple, float] = {}
    for path in sorted(glob.glob(args.grid)):
        if "before" in path:  # an older code's rows
            continue
        for line in open(path):
            r = json.loads(line)
            if r["controller"] == "uniform" and "test_auc" in r:
                uniform[(r["space"], r["budget"], r["seed"])] = r["test_auc"]
    budgets = list(dict.fromkeys(r["budget"] for r in gate))
    for floor in args.floors:
        served: dict[str, list[float]] = {b: [] for b in budgets}
        for r in gate:
            m, key = r["uniform_margin"], (r["space"], r["budget"], r["seed"])
            gain = m["pick_val_auc"] - m["uniform_val_auc"]
            passes_se = gain > m["margin_se"] * m["difference_se"]
            keep = passes_se and gain >= floor
            auc = r["test_auc"] if keep == (m["returned"] == "pick") else uniform[key]
            if keep != (m["returned"] == "pick"):
                print(
                    f"floor {floor:g}: {r['budget']} seed {r['seed']} changes: gain {gain:+.4f} "
                    f"(SE {m['difference_se']:.4f}), test AUC {r['test_auc']:.4f} -> {auc:.4f}"
                )
            served[r["budget"]].append(auc)
        means = "  ".join(
            f"{b} {statistics.mean(v):.4f}+-{statistics.stdev(v):.4f}" for b, v in served.items()
        )
        print(f"floor {floor:g}: mean test AUC (seeds {len(served[budgets[0]])}) {means}")


if __name__ == "__main__":
    main()
