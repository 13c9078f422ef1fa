"""``data prepare`` in record batches against the in-memory path it replaced (issue 22 item
6: "throughput within 20% of the in-memory path").

The in-memory path is the code of ``--reference`` (default ``bf0a378``, the last commit
that read each file whole, encoded whole columns and saved the dataset from memory),
exported with ``git archive`` to a temporary directory. For each ``--rows`` N, a
Criteo-format TSV of N rows (``bench_prepare.write_criteo``, seed 0; kept in ``--dir``),
then ``--repeat`` rounds of ``prepare("criteo", ...)`` (what ``data prepare`` runs) with each code,
alternating which runs first, each in a fresh subprocess watched by
``bench_bigdata.watched`` (peak resident memory; the process's wall and CPU seconds),
``prepare`` itself timed inside it (``prepare_s``, ``prepare_cpu_s``: without the
interpreter's start and imports). Prints each run, the medians and the median of the
per-round ratios of ``prepare_s`` (streamed / in-memory; of CPU seconds too, steadier on a
shared machine), and
appends one JSON line per run and one summary line per N to ``--results``. The two
prepared directories of a round are compared file by file (``identical``). Usage::

    nice -n 5 python benchmarks/bench_prepare_paths.py --rows 1000000 8000000 --repeat 3 \\
        --results benchmarks/results/prepare/paths-DATE.jsonl
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_bigdata import watched  # noqa: E402
from bench_prepare import write_criteo  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: run in each subprocess: ``prepare`` timed in-process (the interpreter's start and its
#: imports, the same for both paths, are left out of ``prepare_s``)
TIMED = """import json, sys, time
from embsearch.data.prepare import prepare
t, c = time.perf_counter(), time.process_time()
prepare("criteo", [sys.argv[1]], sys.argv[2], warn=lambda m: None)
t, c = time.perf_counter() - t, time.process_time() - c
open(sys.argv[3], "w").write(json.dumps({"prepare_s": round(t, 3), "prepare_cpu_s": round(c, 3)}))
"""


def export(commit: str, dest: Path) -> None:
    """The ``embsearch`` package of ``commit`` under ``dest`` (``git archive``)."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "embsearch"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)


def same_files(a: Path, b: Path) -> bool:
    """Every file of ``a`` and ``b`` (recursively) present in both with the same bytes."""
    names_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    names_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return names_a == names_b and all(filecmp.cmp(a / n, b / n, shallow=False) for n in names_a)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 8_000_000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--reference", default="bf0a378", help="commit of the in-memory path")
    ap.add_argument("--dir", default="/tmp/bench_bigdata", help="TSVs and prepared data")
    ap.add_argument("--results", required=True, help="JSON lines are appended here")
    args = ap.parse_args()

    base = Path(args.dir)
    base.mkdir(parents=True, exist_ok=True)
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    dirty = subprocess.run(  # uncommitted changes to the code prepare runs
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "embsearch/data"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip

    def emit(rec: dict) -> None:
        print(json.dumps(rec), flush=True)
        with results.open("a") as fh:
            fh.write(json.dumps(rec) + "\n")

    with tempfile.TemporaryDirectory(prefix="bench_paths-") as tmp:
        ref = Path(tmp) / "reference"
        export(args.reference, ref)
        codes = {"streamed": str(ROOT), "in_memory": str(ref)}
        code_names = {
            "streamed": head + ("+uncommitted" if dirty else ""),
            "in_memory": args.reference,
        }
        for rows in args.rows:
            tsv = base / f"criteo_{rows}.tsv"
            if not tsv.is_file():
                write_criteo(tsv.with_suffix(".part"), rows, seed=0)
                tsv.with_suffix(".part").rename(tsv)
            runs: dict[str, list[dict]] = {k: [] for k in codes}
            ratios, cpu_ratios, identical = [], [], []
            for r in range(args.repeat):
                order = list(codes) if r % 2 == 0 else list(codes)[::-1]
                outs = {}
                for which in order:
                    out = Path(tmp) / f"out_{which}"
                    shutil.rmtree(out, ignore_errors=True)
                    env = dict(os.environ, PYTHONPATH=codes[which])
                    timing = Path(tmp) / "timing.json"
                    cmd = [sys.executable, "-c", TIMED, str(tsv), str(out), str(timing)]
                    m = watched(cmd, env, codes[which])
                    m.update(json.loads(timing.read_text()))
                    rec = {"bench": "prepare_paths", "path": which, "code": code_names[which],
                           "rows": rows, "round": r, **m, "rows_per_s": round(rows / m["prepare_s"]),
                           "loadavg": round(os.getloadavg()[0], 2)}  # fmt: skip
                    runs[which].append(rec)
                    outs[which] = out
                    emit(rec)
                new, old = runs["streamed"][-1], runs["in_memory"][-1]
                ratios.append(new["prepare_s"] / old["prepare_s"])
                cpu_ratios.append(new["prepare_cpu_s"] / old["prepare_cpu_s"])
                identical.append(same_files(outs["streamed"], outs["in_memory"]))
                for out in outs.values():
                    shutil.rmtree(out, ignore_errors=True)

            summary = {
                "bench": "prepare_paths_summary",
                "rows": rows,
                "file_mib": round(tsv.stat().st_size / 2**20, 1),
                "repeat": args.repeat,
                **{
                    f"{w}_{k}": round(statistics.median(x[k] for x in runs[w]), 2)
                    for w in codes
                    for k in ("prepare_s", "prepare_cpu_s", "wall_s", "maxrss_mib")
                },
                "ratios": [round(x, 3) for x in ratios],
                "median_ratio": round(statistics.median(ratios), 3),
                "cpu_ratios": [round(x, 3) for x in cpu_ratios],
                "median_cpu_ratio": round(statistics.median(cpu_ratios), 3),
                "identical": all(identical),
                "codes": code_names,
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
            }
            emit(summary)


if __name__ == "__main__":
    main()
