"""Merge per-seed ``bench_protocol.py`` passes into one directory per seed.

Each pass is a directory holding ``seed<N>/results.json``; for every seed, the rows of a
later pass replace the rows of the same (dataset, controller, budget) from earlier passes (rerun a
few controllers on a few datasets after a change without rerunning all). Every row keeps its own pass's
full-table training time as ``full_s``, which ``summarize_protocol.py`` uses for its ratios.

    python benchmarks/merge_protocol.py OUT PASS1 PASS2 ...   # later passes win
    python benchmarks/summarize_protocol.py OUT/seed0 OUT/seed1 ...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def merge(out: Path, passes: list[Path]) -> list[Path]:
    """Write ``out/seed<N>/results.json`` for every seed found in ``passes``; return the dirs."""
    seeds = sorted({d.name for run in passes for d in run.glob("seed*") if d.is_dir()})
    written = []
    for seed in seeds:
        rows: list[dict] = []
        meta: dict | None = None
        known_full: dict[str, float] = {}  # a --no-full pass uses an earlier pass's time
        for run in passes:
            f = run / seed / "results.json"
            if not f.exists():
                continue
            data = json.loads(f.read_text())
            meta = meta or data
            new = data["rows"]
            full = {r["dataset"]: r["retrain_s"] for r in new if r["controller"].startswith("full")}
            known_full.update(full)
            for r in new:
                if r.get("full_s") is None:
                    r["full_s"] = full.get(r["dataset"], known_full.get(r["dataset"]))
            keys = {(r["dataset"], r["controller"], r.get("budget")) for r in new}
            rerun = {(r["dataset"], r["controller"]) for r in new}
            rows = [
                r
                for r in rows
                if (r["dataset"], r["controller"], r.get("budget")) not in keys
                # a failed controller's row lists every budget: any rerun replaces it
                and not ("," in str(r.get("budget")) and (r["dataset"], r["controller"]) in rerun)
            ]
            rows += new
        if meta is None:
            continue
        d = out / seed
        d.mkdir(parents=True, exist_ok=True)
        (d / "results.json").write_text(json.dumps({**meta, "rows": rows}, indent=1, default=str))
        written.append(d)
    return written


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("out", help="output directory (one seed<N>/ per seed)")
    ap.add_argument("passes", nargs="+", help="pass directories, earliest first")
    args = ap.parse_args()
    for d in merge(Path(args.out), [Path(p) for p in args.passes]):
        print(d)


if __name__ == "__main__":
    main()
