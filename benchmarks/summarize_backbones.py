"""Markdown tables of the backbone benchmark (BENCHMARKS.md "Backbones"): embsearch's
defaults per backbone (``bench_backbones.py`` results) beside FuxiCTR's BARS configs
(``fuxictr_reference.py`` results) on the same split.

    python benchmarks/summarize_backbones.py benchmarks/results/backbones/frappe.jsonl \\
        benchmarks/results/fuxictr/frappe.jsonl
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict

FUXI_NAMES = {
    "DeepFM": "deepfm",
    "DNN": "dnn",
    "FM": "fm",
    "DCNv2": "dcnv2",
    "WideDeep": "widedeep",
}


def _rows(path: str) -> list[dict]:
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def main(ours_path: str, fuxi_path: str | None = None) -> None:
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in _rows(ours_path):
        groups[(r["backbone"], r["label"])].append(r)
    fuxi: dict[str, list[dict]] = defaultdict(list)
    if fuxi_path:
        for r in _rows(fuxi_path):
            if not any("patience" in d for d in r.get("deviations_from_bars") or []):
                fuxi[FUXI_NAMES.get(r["model"], r["model"])].append(r)
    print("| backbone | run | seeds | test AUC | test logloss | epochs | samples/s |")
    print("|---|---|---|---|---|---|---|")
    for backbone in ("deepfm", "dnn", "fm", "lr", "dcnv2", "widedeep"):
        for (b, label), rs in sorted(groups.items()):
            if b != backbone:
                continue
            print(
                f"| {b} | embsearch {label} | {len(rs)} | {_mean_sd([r['test_auc'] for r in rs])}"
                f" | {_mean_sd([r['test_logloss'] for r in rs])}"
                f" | {statistics.mean(r['epochs_run'] for r in rs):.0f}"
                f" | {statistics.median(r['samples_per_s'] for r in rs):,.0f} |"
            )
        if fuxi.get(backbone):
            rs = fuxi[backbone]
            print(
                f"| {backbone} | FuxiCTR BARS config | {len(rs)} |"
                f" {_mean_sd([r['test_auc'] for r in rs])}"
                f" | {_mean_sd([r['test_logloss'] for r in rs])}"
                f" | {statistics.mean(r['epochs_run'] for r in rs):.0f}"
                f" | {statistics.median(r['train_samples_per_s'] for r in rs):,.0f} |"
            )


if __name__ == "__main__":
    main(*sys.argv[1:3])
