"""OptEmbed's uniform gate in composed spaces checked against retraining (issue 21): per cell
(dataset, space, budget, seed) the pick's proxy gain over uniform's plan, its paired SE, what
the gate returned, and the retrained test AUC of *both* plans; then, per gate rule, how many
cells it decides right and the mean test AUC it serves.

Rows come from ``bench_composed_grid.py``: OptEmbed's default rows carry the gate's figures
(``uniform_margin``: pick / uniform proxy AUC, SE, returned); the pick's test AUC is an OptEmbed
row served by the evolution (``provenance`` "evolution", e.g. ``--param uniform_margin=0``);
uniform's is a ``uniform`` row in the same space or an OptEmbed row the gate served uniform's
plan in. Later files' rows replace earlier ones for the same cell and role. Full-table rows
(``space`` "full", ``--full``) of the cells' seeds add each rule's mean served minus the full
table's test AUC (same seed), and a per-budget line: uniform, the pick, what the gate served,
the full table.

    python benchmarks/summarize_optembed_gate.py benchmarks/results/composed_spaces/\\
        {frappe_optembed_gate,frappe_optembed_gate18,frappe_grid,frappe_grid_seed1,\\
        frappe_grid_seed2,frappe_optembed_pick19,talkingdata_optembed_gate19,\\
        talkingdata_optembed_pick19}.jsonl

Every dataset is summarised apart.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Rule = Callable[[float, float], bool]  # (gain, SE) -> serve the pick


def rules(margin_se: float) -> dict[str, Rule]:
    """The gate rules compared: no gate (``uniform_margin=0``), the SE margin alone, with the ``composed_min_gain`` floor
    (today's default 0.005 and others), and larger SE margins instead of a floor."""
    out: dict[str, Rule] = {
        "the pick always": lambda g, s: True,
        "uniform always": lambda g, s: False,
    }
    out[f"{margin_se:g} SE"] = lambda g, s: g > margin_se * s
    for floor in (0.002, 0.005, 0.01, 0.03):
        out[f"{margin_se:g} SE + {floor:g}"] = lambda g, s, f=floor: g > margin_se * s and g >= f
    for k in (3.0, 4.0, 6.0, 10.0):
        out[f"{k:g} SE"] = lambda g, s, k=k: g > k * s
    return out


def dataset_name(data: str) -> str:
    name = data.split(" (")[0].rstrip("/").split("/")[-1]
    return re.sub(r"-split\d+$", "", name)


@dataclass
class Cell:
    """One (dataset, space, budget, seed): the gate's figures and both plans' test AUCs."""

    gain: float | None = None  # pick's proxy AUC minus uniform's
    se: float | None = None  # the paired SE of that difference
    margin_se: float | None = None
    returned: str | None = None
    pick: float | None = None
    uniform: float | None = None
    full: float | None = None  # the full table's test AUC, same dataset and seed

    @property
    def complete(self) -> bool:
        return None not in (self.gain, self.se, self.pick, self.uniform)


def load(paths: list[str]) -> dict[tuple, Cell]:
    """The cells of every row file (module docstring)."""
    cells: dict[tuple, Cell] = {}
    full: dict[tuple, float] = {}
    for p in paths:
        for line in Path(p).read_text().splitlines():
            r = json.loads(line) if line.strip() else {}
            if "test_auc" in r and r.get("space") == "full":
                full[(dataset_name(r["data"]), r["seed"])] = r["test_auc"]
            if "test_auc" not in r or r.get("space") == "full":
                continue
            key = (dataset_name(r["data"]), r["space"], r["budget"], r["seed"])
            cell = cells.setdefault(key, Cell())
            m = r.get("uniform_margin")
            if r["controller"] == "optembed" and m:
                cell.gain = m["pick_val_auc"] - m["uniform_val_auc"]
                cell.se, cell.margin_se, cell.returned = (
                    m["difference_se"],
                    m["margin_se"],
                    m["returned"],
                )
            if r["controller"] == "uniform" or r.get("provenance") == "uniform gate":
                cell.uniform = r["test_auc"]
            elif r["controller"] == "optembed" and r.get("provenance") == "evolution":
                cell.pick = r["test_auc"]
    for key, cell in cells.items():
        cell.full = full.get((key[0], key[3]))
    return cells


def summarise(cells: dict[tuple, Cell]) -> None:
    """The per-cell table, then one line per rule of :func:`rules`."""
    full = {k: c for k, c in cells.items() if c.complete}
    print("| cell | proxy gain | SE | gain/SE | returned | pick test | uniform test | better |")
    print("|---|---|---|---|---|---|---|---|")
    for key in sorted(full, key=lambda k: (k[1], float(k[2].rstrip("%")), k[3])):
        c = full[key]
        assert c.gain is not None and c.se and c.pick is not None and c.uniform is not None
        print(
            f"| {key[1]} {key[2]} s{key[3]} | {c.gain:+.4f} | {c.se:.4f} | {c.gain / c.se:.1f} | "
            f"{c.returned} | {c.pick:.4f} | {c.uniform:.4f} | "
            f"{'pick' if c.pick > c.uniform else 'uniform'} |"
        )
    missing = sorted(k for k, c in cells.items() if c.gain is not None and not c.complete)
    if missing:
        print(f"(not both plans retrained: {missing})")
    if not full:
        return
    best = {k: max(c.pick, c.uniform) for k, c in full.items()}  # type: ignore[type-var]
    print(
        f"\n{len(full)} cells; the better plan of each: mean {statistics.mean(best.values()):.4f}"
    )
    ref = {k: c.full for k, c in full.items() if c.full is not None}
    if ref:
        print(f"full table on {len(ref)} of them: mean {statistics.mean(ref.values()):.4f}")
    print("| rule | picks served | right | mean test AUC | regret (sum) | served − full |")
    print("|---|---|---|---|---|---|")
    margin_se = statistics.mode(c.margin_se for c in full.values())
    for name, rule in rules(float(margin_se or 0)).items():
        served = {k: c.pick if rule(c.gain, c.se) else c.uniform for k, c in full.items()}  # type: ignore[arg-type]
        picks = sum(rule(c.gain, c.se) for c in full.values())  # type: ignore[arg-type]
        right = sum(served[k] == best[k] for k in full)
        regret = sum(best[k] - served[k] for k in full)  # type: ignore[operator]
        mean = statistics.mean(served.values())  # type: ignore[type-var]
        vs = _mean_sd([served[k] - ref[k] for k in ref], signed=True) if ref else "-"  # type: ignore[operator]
        print(
            f"| {name} | {picks}/{len(full)} | {right}/{len(full)} | {mean:.4f} | {regret:.4f} "
            f"| {vs} |"
        )
    by_budget(full)


def by_budget(full: dict[tuple, Cell]) -> None:
    """Per space and budget, the mean test AUC of uniform's plan, the pick, what the gate
    served (the rows' ``returned``) and the full table (same seeds)."""
    print("\n| space budget | cells | uniform | pick | the gate served | full table |")
    print("|---|---|---|---|---|---|")
    for sb in sorted({k[1:3] for k in full}, key=lambda s: (s[0], float(s[1].rstrip("%")))):
        cs = [c for k, c in full.items() if k[1:3] == sb]
        served = [c.pick if c.returned == "pick" else c.uniform for c in cs]
        refs = [c.full for c in cs if c.full is not None]
        print(
            f"| {sb[0]} {sb[1]} | {len(cs)} | {_mean_sd([c.uniform for c in cs])} | "  # type: ignore[misc]
            f"{_mean_sd([c.pick for c in cs])} | {_mean_sd(served)} | "  # type: ignore[misc]
            f"{_mean_sd(refs) if refs else '-'} |"  # type: ignore[arg-type]
        )


def _mean_sd(xs: list[float], signed: bool = False) -> str:
    """``mean ± sd`` (the sd over more than one value), with a sign when ``signed``."""
    sd = f" ± {statistics.stdev(xs):.4f}" if len(xs) > 1 else ""
    return f"{statistics.mean(xs):{'+' if signed else ''}.4f}{sd}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", help="row files (bench_composed_grid.py's JSON lines)")
    args = ap.parse_args()
    cells = load(args.files)
    for name in sorted({k[0] for k in cells}):
        print(f"\n### {name}\n")
        summarise({k: c for k, c in cells.items() if k[0] == name})


if __name__ == "__main__":
    main()
