"""Does the learned signal decide the plan? One markdown table from ``bench_protocol.py`` runs.

For every (dataset, learning controller, budget), over the runs given (e.g. one per seed):
the null agreement each plan recorded (``plan.extra["signal"]``: the share of (field, group)
cells the plan from an uninformative signal shares with it), which step chose each plan
(``plan.extra["provenance"]``, sample-based controllers), and the mean test AUC difference
from ``uniform`` at the same budget (paired by run). Issue 18's target on planted data:
null agreement below 0.5 for AutoDim, AutoEmb and DNIS, and the paper's own search step
choosing at least two of a search's three plans for OptEmbed and RULE.

    python benchmarks/summarize_signal.py benchmarks/results/signal/synthetic_s0.json ...
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

SHORT = {  # provenance, shortened for the table
    "evolution": "evo",
    "evolution (its pick is the uniform plan)": "evo=uniform",
    "uniform gate": "gate",
    "carried over from a smaller budget": "carried",
    "estimator sample": "sample",
}


def _counted(picks: list[str]) -> str:
    """``evo×2, gate`` from ``[evo, gate, evo]`` (first-seen order)."""
    counts = {p: picks.count(p) for p in dict.fromkeys(picks)}
    return ", ".join(p if n == 1 else f"{p}×{n}" for p, n in counts.items())


def summarise(runs: list[list[dict]]) -> str:
    shares: dict[tuple, list[str]] = defaultdict(list)
    chosen: dict[tuple, list[str]] = defaultdict(list)
    delta: dict[tuple, list[float]] = defaultdict(list)
    for rows in runs:
        uni = {
            (r["dataset"], r["budget"]): r["test_auc"] for r in rows if r["controller"] == "uniform"
        }
        for r in rows:
            if "error" in r or r["controller"] == "uniform" or r["controller"].startswith("full"):
                continue
            key = (r["dataset"], r["controller"], r["budget"])
            share = r.get("null_agreement")
            shares[key].append("n/a" if share is None else f"{share:.2f}")
            chosen[key].append(r.get("provenance") or "")
            if (r["dataset"], r["budget"]) in uni:
                delta[key].append(r["test_auc"] - uni[(r["dataset"], r["budget"])])
    budgets = sorted({k[2] for k in shares}, key=lambda b: float(b.rstrip("%")))
    lines = [
        "| dataset | controller | " + " | ".join(budgets) + " |",
        "|---|---|" + "---|" * len(budgets),
    ]
    for dataset, controller in sorted({k[:2] for k in shares}):
        cells = []
        for b in budgets:
            key = (dataset, controller, b)
            if key not in shares:
                cells.append("")
                continue
            d = delta.get(key)
            mean = f" ({statistics.fmean(d):+.4f})" if d else ""
            picks = [SHORT.get(c, c) for c in chosen[key] if c]
            by = f" {_counted(picks)}" if picks else ""
            cells.append(f"{'/'.join(shares[key])}{by}{mean}")
        lines.append(f"| {dataset} | {controller} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="+", help="results.json files written by bench_protocol.py")
    args = p.parse_args(argv)
    print(summarise([json.loads(Path(f).read_text())["rows"] for f in args.results]), end="")


if __name__ == "__main__":
    main()
