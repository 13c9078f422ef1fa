"""Benchmark ``prepare('criteo', ...)`` against a pandas baseline on a generated Criteo TSV.

Writes a synthetic Criteo-format file (plain text, ``label I1..I13 C1..C26``, Zipf-like
values, some empty cells) to a temporary directory, then times in the same run:

* **ours**: ``embsearch.data.prepare.prepare`` end to end: read (Arrow), bucketise the
  integers, dictionary-encode, random split, frequency ranking on train rows, and saving
  the dataset to disk;
* **baseline**: ``pandas.read_csv`` + the same integer bucketing + ``pd.factorize`` per
  column (no split, no ranking, no saving, so the baseline does strictly less work).

Each method runs ``--repeat`` times, interleaved; the best wall time is reported (with the
CPU time of that run), which keeps the comparison fair when other work shares the machine.
Prints a small table and one JSON line. Usage::

    python benchmarks/bench_prepare.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from embsearch.data.prepare import prepare
from embsearch.data.readers import CRITEO_CAT, CRITEO_INT

CARDINALITIES = [1460, 580, 1_000_000, 500_000, 300, 24, 12_000, 600, 3, 90_000, 5_000, 800_000, 3_000,
                 27, 10_000, 500_000, 10, 4_000, 2_000, 4, 700_000, 18, 15, 140_000, 100, 90_000]  # fmt: skip


def hex_strings(v: np.ndarray) -> pa.Array:
    """8-digit lowercase hex strings of uint32 values, built with numpy (no Python loop)."""
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    nibbles = (v[:, None] >> np.arange(28, -4, -4, dtype=np.uint64)) & np.uint64(15)
    raw = np.ascontiguousarray(digits[nibbles.astype(np.intp)]).view("S8").ravel()
    return pa.array(raw, pa.binary(8)).cast(pa.binary()).cast(pa.string())


def write_criteo(path: Path, rows: int, seed: int = 0, chunk: int = 500_000) -> None:
    """Write ``rows`` lines of Criteo-format TSV: values drawn with numpy, written by Arrow's
    CSV writer (tab-delimited, unquoted, nulls as empty cells)."""
    rng = np.random.default_rng(seed)
    vocab = [hex_strings(rng.integers(0, 2**32, size=c, dtype=np.uint64)) for c in CARDINALITIES]
    names = ["label", *CRITEO_INT, *CRITEO_CAT]
    opts = pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")
    with pacsv.CSVWriter(
        str(path),
        pa.schema([(n, pa.int64() if n[0] != "C" else pa.string()) for n in names]),
        write_options=opts,
    ) as w:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            cols = [pa.array((rng.random(n) < 0.25).astype(np.int64))]
            for j in range(13):  # long-tailed counts (I2 has -1), some missing
                v = np.floor(rng.lognormal(1.0 + 0.3 * j, 1.5, n)).astype(np.int64) - (j == 1)
                cols.append(pa.array(v, mask=rng.random(n) < 0.05 * (j % 4)))
            # heavy-headed ids; some fields have empty cells
            for j, card in enumerate(CARDINALITIES):
                idx = np.minimum((card * rng.random(n) ** 4).astype(np.int64), card - 1)
                s = vocab[j].take(pa.array(idx))
                if j % 5 == 2:
                    s = pc.if_else(pa.array(rng.random(n) < 0.1), "", s)
                cols.append(s)
            w.write_table(pa.table(cols, names=names))


def baseline(path: Path) -> tuple[list[int], np.ndarray]:
    """pandas.read_csv + criteo integer bucketing + pd.factorize per column."""
    names = ["label", *CRITEO_INT, *CRITEO_CAT]
    dtypes = {
        "label": np.int8,
        **dict.fromkeys(CRITEO_INT, np.float64),
        **dict.fromkeys(CRITEO_CAT, str),
    }
    df = pd.read_csv(path, sep="\t", header=None, names=names, dtype=dtypes)
    y = df["label"].to_numpy(np.float32)
    sizes = []
    for name in CRITEO_INT:
        x = df[name].to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            v = np.floor(x)
            big = np.abs(v) > 2
            b = np.floor(np.log(np.where(big, np.abs(v), 3.0)) ** 2)
            keys = np.where(big, np.sign(v) * (1000.0 + b), v)
        codes, uniques = pd.factorize(keys, use_na_sentinel=False)
        sizes.append(len(uniques))
    for name in CRITEO_CAT:
        codes, uniques = pd.factorize(df[name], use_na_sentinel=False)
        sizes.append(len(uniques))
    return sizes, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--repeat", type=int, default=3, help="runs of each method; the best is reported"
    )
    ap.add_argument(
        "--keep", type=str, default=None, help="reuse/keep the generated TSV at this path"
    )
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_prepare-"))
    try:
        tsv = Path(args.keep) if args.keep else tmp / "criteo.tsv"
        t = time.perf_counter()
        if not tsv.is_file():
            write_criteo(tsv, args.rows, args.seed)
        gen_s = time.perf_counter() - t
        mb = tsv.stat().st_size / 2**20

        ours, base = [], []
        for i in range(args.repeat):  # interleaved, best of N: robust to other load on the machine
            out = tmp / f"out{i}"
            w, c = time.perf_counter(), time.process_time()
            ds = prepare("criteo", [str(tsv)], str(out), warn=lambda m: None)
            ours.append((time.perf_counter() - w, time.process_time() - c))
            shutil.rmtree(out)
            w, c = time.perf_counter(), time.process_time()
            sizes, _ = baseline(tsv)
            base.append((time.perf_counter() - w, time.process_time() - c))
        ours_s, ours_cpu = min(ours)
        base_s, base_cpu = min(base)

        # sanity: ours keeps train-seen values only (+ OOV), never more than pandas finds overall
        assert all(c <= s + 1 for c, s in zip(ds.schema.cardinalities, sizes)), (
            "cardinality mismatch"
        )
        rows = sum(ds.schema.meta["rows_per_input"])
        assert rows == args.rows, (rows, args.rows)

        print(
            f"criteo TSV: {rows:,} rows, {mb:.0f} MiB (generated in {gen_s:.1f}s), {os.cpu_count()} CPUs"
        )
        print(f"best of {args.repeat}; load average at the end {os.getloadavg()[0]:.1f}")
        print(f"{'method':<40}{'wall s':>9}{'cpu s':>9}{'rows/s':>14}")
        print(
            f"{'ours: prepare(criteo) incl. save':<40}{ours_s:>9.2f}{ours_cpu:>9.2f}{rows / ours_s:>14,.0f}"
        )
        print(
            f"{'baseline: pandas read_csv+factorize':<40}{base_s:>9.2f}{base_cpu:>9.2f}{rows / base_s:>14,.0f}"
        )
        print(f"speedup: {base_s / ours_s:.2f}x wall, {base_cpu / ours_cpu:.2f}x cpu")
        print(
            json.dumps(
                {
                    "bench": "prepare_criteo",
                    "rows": rows,
                    "file_mib": round(mb, 1),
                    "ours_s": round(ours_s, 3),
                    "baseline_s": round(base_s, 3),
                    "ours_rows_per_s": round(rows / ours_s),
                    "baseline_rows_per_s": round(rows / base_s),
                    "speedup": round(base_s / ours_s, 2),
                    "ours_cpu_s": round(ours_cpu, 3),
                    "baseline_cpu_s": round(base_cpu, 3),
                    "speedup_cpu": round(base_cpu / ours_cpu, 2),
                    "repeat": args.repeat,
                    "all_ours_s": [round(w, 3) for w, _ in ours],
                    "all_baseline_s": [round(w, 3) for w, _ in base],
                    "loadavg": round(os.getloadavg()[0], 2),
                    "cpus": os.cpu_count(),
                    "pyarrow": pa.__version__,
                    "pandas": pd.__version__,
                    "numpy": np.__version__,
                    "python": platform.python_version(),
                }
            )
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
