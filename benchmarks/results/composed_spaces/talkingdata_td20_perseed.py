"""td20 (issue 21): talkingdata's grid seed by seed, and the hybrid against the single axes with
each side's run chosen by validation AUC instead of by test AUC.

``summarize_composed_grid.py`` pairs the best *test* AUC of the hybrid's two runs against the
best of the single axes' six on every seed, which favours the side with more runs when one
run's test AUC is noisy (talkingdata: 20-27 test positives a split). Here each side keeps the
run of highest ``val_auc`` (what a user without the test split would serve) and the two are
compared on test AUC; also printed, the Hanley-McNeil SE of a test AUC of 0.95 with 24 positives
in 10,000 rows. Later files' rows replace earlier ones (same key as the summary).

    python benchmarks/results/composed_spaces/talkingdata_td20_perseed.py FILE...
"""

from __future__ import annotations

import json
import math
import statistics
import sys

HYBRID = "field_dims+meta_table+precision"
SINGLE = ("field_dims", "meta_table", "precision")
CTRL = ("uniform", "mde")


def hanley_mcneil(auc: float, n_pos: int, n_neg: int) -> float:
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    v = auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)
    return math.sqrt(v / (n_pos * n_neg))


def main(paths: list[str]) -> None:
    rows: dict[tuple[str, str, str, int], dict] = {}
    for p in paths:
        for line in open(p):
            if line.strip():
                r = json.loads(line)
                if "talkingdata" in r["data"]:
                    rows[(r["space"], r["controller"], r["budget"], int(r["seed"]))] = r
    seeds = sorted({k[3] for k in rows})
    cols = [(s, c) for s in (*SINGLE, HYBRID) for c in CTRL]
    print(
        f"Hanley-McNeil SE of a test AUC of 0.95, 24 of 10,000 positive: "
        f"{hanley_mcneil(0.95, 24, 9976):.4f}"
    )
    for b in ("1%", "3%", "10%", "25%"):
        print(f"\n## {b}: test AUC (val AUC) per run; H = hybrid")
        print(
            "| seed | full | "
            + " | ".join(f"{s.split('+')[0] if s != HYBRID else 'H'} {c}" for s, c in cols)
            + " | H − single by test | H − single by val |"
        )
        print("|---" * (len(cols) + 4) + "|")
        by_test, by_val = [], []
        for seed in seeds:
            full = rows.get(("full", "uniform", "100%", seed), {}).get("test_auc")
            cells, ok = [], {}
            for s, c in cols:
                r = rows.get((s, c, b, seed))
                if r is None or "infeasible" in r:
                    cells.append("–")
                else:
                    ok[(s, c)] = r
                    cells.append(f"{r['test_auc']:.4f} ({r['val_auc']:.4f})")
            h = [r for (s, _), r in ok.items() if s == HYBRID]
            o = [r for (s, _), r in ok.items() if s in SINGLE]
            dt = dv = None
            if h and o:
                dt = max(r["test_auc"] for r in h) - max(r["test_auc"] for r in o)
                hv, ov = max(h, key=lambda r: r["val_auc"]), max(o, key=lambda r: r["val_auc"])
                dv = hv["test_auc"] - ov["test_auc"]
                by_test.append(dt)
                by_val.append(dv)
            f = "–" if full is None else f"{full:.4f}"
            fmt = lambda d: "–" if d is None else f"{d:+.4f}"  # noqa: E731
            print(f"| {seed} | {f} | " + " | ".join(cells) + f" | {fmt(dt)} | {fmt(dv)} |")
        for name, d in (
            ("by test (best of runs)", by_test),
            ("by val (run of best val AUC)", by_val),
        ):
            if len(d) > 1:
                print(
                    f"{b} hybrid − single, {name}: {statistics.mean(d):+.4f} ± "
                    f"{statistics.stdev(d):.4f} (wins {sum(x > 0 for x in d)}/{len(d)}, "
                    f"ties {sum(x == 0 for x in d)})"
                )


if __name__ == "__main__":
    main(sys.argv[1:])
