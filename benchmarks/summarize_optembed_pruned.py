"""Summarise ``bench_optembed_pruned.py``'s JSON lines: per dataset and budget, the share of
rows the thresholds prune, the bytes the credit saved, and the test AUC with the credit
(``prune_rows=true``) against without it (same seed): mean +- sd, and the paired difference's
mean +- its standard error with the wins.

    python benchmarks/summarize_optembed_pruned.py benchmarks/results/optembed_pruned/*.jsonl
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict


def _ms(xs: list[float], digits: int = 4) -> str:
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.{digits}f} ± {sd:.{digits}f}"


def main(paths: list[str]) -> None:
    rows = [json.loads(line) for p in paths for line in open(p) if line.strip()]
    runs: dict[tuple[str, str], dict[int, dict[bool, dict]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for r in rows:
        runs[(r["data"].rstrip("/").split("/")[-1], r["budget"])][r["seed"]][r["prune_rows"]] = r
    print(
        "| dataset | budget | seeds | rows pruned | fields stored pruned | bytes credited "
        "(share of budget) | bytes used, credit / none | test AUC, credit | test AUC, none | "
        "credit - none (wins) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (data, budget), by_seed in sorted(runs.items()):
        pairs = [(s[True], s[False]) for s in by_seed.values() if True in s and False in s]
        if not pairs:
            continue
        diffs = [a["test_auc"] - b["test_auc"] for a, b in pairs]
        se = statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else 0.0
        credited = [a["bytes_credited"] for a, _ in pairs]
        share = [a["bytes_credited"] / a["budget_bytes"] for a, _ in pairs]
        used = [a["table_bytes"] / a["budget_bytes"] for a, _ in pairs]
        used_none = [b["table_bytes"] / b["budget_bytes"] for _, b in pairs]
        print(
            f"| {data} | {budget} | {len(pairs)} "
            f"| {statistics.mean(a['pruned_rows_total'] for a, _ in pairs):.1%} "
            f"| {statistics.mean(len(a['pruned_fields']) for a, _ in pairs):.1f} "
            f"| {statistics.mean(credited):.0f} B ({statistics.mean(share):.1%}) "
            f"| {statistics.mean(used):.0%} / {statistics.mean(used_none):.0%} "
            f"| {_ms([a['test_auc'] for a, _ in pairs])} "
            f"| {_ms([b['test_auc'] for _, b in pairs])} "
            f"| {statistics.mean(diffs):+.4f} ± {se:.4f} ({sum(d > 0 for d in diffs)}/{len(diffs)}) |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
