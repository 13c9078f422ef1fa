"""Memory and speed of ``data prepare`` and of a one-epoch search as the data grows (issue 22
item 6: data larger than memory).

For each ``--rows`` N: a Criteo-format TSV of N rows (``bench_prepare.write_criteo``, kept
in ``--dir`` and reused), then in fresh subprocesses, each watched every 0.1 s through
``/proc/PID/status``:

* ``embsearch data prepare --format criteo`` (one file, seeded 80/10/10 split): wall
  seconds, rows/s, peak resident memory (``ru_maxrss`` from ``wait4``) and the peaks of its
  anonymous and file-backed parts (``RssAnon``, ``RssFile``: memory-mapped pages of the
  data are file-backed, evictable page cache);
* ``embsearch search --controller uniform --epochs 1 --threads 1`` on it: the same memory
  figures and the training samples/s recorded in the run's ``search.json``.

``--pythonpath DIR`` runs another checkout's code (the "before" measurement);
``--env KEY=VALUE`` sets a variable for the subprocesses (``EMBSEARCH_RESIDENT_BYTES=0``
forces the chunked, memory-mapped training path). One JSON line per (rows, step) is
appended to ``--results``. Usage::

    nice -n 10 python benchmarks/bench_bigdata.py --rows 2000000 8000000 --label after \\
        --results benchmarks/results/bigdata/after.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_prepare import write_criteo  # noqa: E402


def _status_kb(pid: int) -> dict[str, int]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "RssAnon", "RssFile"):
                    out[key] = int(rest.split()[0])
    except (OSError, ValueError):
        pass
    return out


def watched(cmd: list[str], env: dict[str, str], cwd: str | None = None) -> dict[str, float]:
    """Run ``cmd`` in ``cwd``; its wall seconds, exit code and memory peaks in MiB."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    peaks = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for k, v in _status_kb(proc.pid).items():
                peaks[k] = max(peaks[k], v)
            done.wait(0.1)

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    th.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err[-2000:]}")
    return {
        "wall_s": round(time.perf_counter() - t0, 2),
        "maxrss_mib": round(usage.ru_maxrss / 1024, 1),
        "peak_anon_mib": round(peaks["RssAnon"] / 1024, 1),
        "peak_file_mib": round(peaks["RssFile"] / 1024, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[2_000_000, 8_000_000])
    ap.add_argument("--dir", default="/tmp/bench_bigdata", help="TSVs and prepared data")
    ap.add_argument("--label", required=True, help="a name for this code state, e.g. before")
    ap.add_argument("--results", required=True, help="JSON lines are appended here")
    ap.add_argument("--pythonpath", default=None, help="import embsearch from this checkout")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the subprocesses")
    ap.add_argument("--skip-search", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the prepared data and the runs")
    args = ap.parse_args()

    env = dict(os.environ, OMP_NUM_THREADS="1")
    cwd = None
    if args.pythonpath:  # run there too: `python -m` puts the working directory first
        env["PYTHONPATH"] = cwd = args.pythonpath
    for kv in args.env:
        k, _, v = kv.partition("=")
        env[k] = v
    base = Path(args.dir)
    base.mkdir(parents=True, exist_ok=True)
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    py = [sys.executable, "-m", "embsearch"]
    for rows in args.rows:
        tsv = base / f"criteo_{rows}.tsv"
        if not tsv.is_file():
            write_criteo(tsv.with_suffix(".part"), rows, seed=0)
            tsv.with_suffix(".part").rename(tsv)
        data = base / f"prepared_{args.label}_{rows}"
        run = base / f"run_{args.label}_{rows}"
        for p in (data, run):
            shutil.rmtree(p, ignore_errors=True)
        common = {
            "label": args.label,
            "rows": rows,
            "file_mib": round(tsv.stat().st_size / 2**20, 1),
            "env": args.env,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        }
        m = watched([*py, "data", "prepare", "--format", "criteo", "--input", str(tsv),
                     "--out", str(data)], env, cwd)  # fmt: skip
        rec = {"step": "prepare", **common, **m, "rows_per_s": round(rows / m["wall_s"])}
        print(json.dumps(rec), flush=True)
        with results.open("a") as fh:
            fh.write(json.dumps(rec) + "\n")
        if not args.skip_search:
            m = watched([*py, "search", "--data", str(data), "--budget", "10%", "--controller",
                         "uniform", "--epochs", "1", "--threads", "1", "--quiet", "--out",
                         str(run)], env, cwd)  # fmt: skip
            record = json.loads((run / "search.json").read_text())
            rec = {
                "step": "search",
                **common,
                **m,
                "train_rows": int(rows * 0.8),
                "samples_per_s": _samples_per_s(record),
            }
            print(json.dumps(rec), flush=True)
            with results.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")
        if not args.keep:
            for p in (data, run):
                shutil.rmtree(p, ignore_errors=True)


def _samples_per_s(record: dict) -> float | None:
    """The training samples/s a run's ``search.json`` records (first found)."""
    stack = [record]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            if isinstance(cur.get("samples_per_s"), (int, float)):
                return cur["samples_per_s"]
            stack.extend(cur.values())
        elif isinstance(cur, list):
            stack.extend(cur)
    return None


if __name__ == "__main__":
    main()
