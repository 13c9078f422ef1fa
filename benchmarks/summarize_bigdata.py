"""Markdown tables of ``bench_bigdata.py`` and ``bench_chunked.py`` results (issue 22 item 6).

Usage::

    python benchmarks/summarize_bigdata.py benchmarks/results/bigdata/*.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(paths: list[str]) -> None:
    rows = [json.loads(line) for p in paths for line in Path(p).read_text().splitlines() if line]
    runs = [r for r in rows if r.get("step") in ("prepare", "search")]
    print(
        "| code | step | rows | max RSS MiB | peak anon MiB | peak file MiB | rows/s or samples/s |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in sorted(runs, key=lambda r: (r["step"], r["label"], r["rows"])):
        speed = r.get("rows_per_s") if r["step"] == "prepare" else r.get("samples_per_s")
        print(
            f"| {r['label']} | {r['step']} | {r['rows']:,} | {r['maxrss_mib']:.0f} | "
            f"{r['peak_anon_mib']:.0f} | {r['peak_file_mib']:.0f} | {speed:,} |"
        )
    tp = [r for r in rows if r.get("bench") == "chunked_throughput"]
    if tp:
        print()
        print(
            "| train rows | chunk rows | resident samples/s | chunked samples/s | chunked/resident (best) | same weights |"
        )
        print("|---:|---:|---|---|---:|---|")
        for r in tp:
            s = r["samples_per_s"]
            print(
                f"| {r['train_rows']:,} | {r['chunk_rows']:,} | {s['resident']} | {s['chunked']} | "
                f"{r['chunked_vs_resident_best']:.2f} | {r['same_weights']} |"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
