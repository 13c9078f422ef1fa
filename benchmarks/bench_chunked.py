"""Training throughput from memory-mapped chunks against the in-memory path (issue 22 item 6).

On a prepared dataset (its first ``--rows`` train rows, memory-mapped), one epoch of the
search recipe's DeepFM (uniform ``--dim``, 1 by default: the uniform plan of
``bench_bigdata.py``'s 10% search; batch 4096, ``--threads 1``) is trained with the train
split held whole in memory (``DeviceSplit``) and fed in chunks (``ChunkedSplit``),
interleaved, ``--repeat`` times each; the samples/s of each run (validations left out),
the best (the least disturbed by other work on the machine, as in ``bench_prepare.py``)
and the median of each path are printed as one JSON line, appended to ``--results``.
Both paths train the same model (same batches), which the final weights confirm.
Usage::

    nice -n 10 python benchmarks/bench_chunked.py --data /tmp/bench_bigdata/prepared_x \\
        --rows 400000 --results benchmarks/results/bigdata/throughput.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from dataclasses import replace
from pathlib import Path

import torch

from embsearch.backbones import CTRModel, make_backbone
from embsearch.data.dataset import Dataset, Split
from embsearch.embeddings import MixedDimEmbedding
from embsearch.search_spaces import FieldDimsSpace
from embsearch.train import TrainConfig
from embsearch.train.device import seed_everything
from embsearch.train.trainer import DeviceData, train_model


def run(ds: Dataset, chunked: bool, chunk_rows: int, dim: int) -> tuple[float, float]:
    """One epoch; its training samples/s and the sum of its final weights."""
    g = seed_everything(0)
    space = FieldDimsSpace(ds.schema, 16)
    plan = space.to_plan(space.uniform(dim), "uniform", space.full_table_bytes())
    model = CTRModel(MixedDimEmbedding(plan), make_backbone("deepfm", space.num_fields, 16))
    data = DeviceData(
        ds, torch.device("cpu"), resident_bytes=0 if chunked else None, chunk_rows=chunk_rows
    )
    res = train_model(model, data, TrainConfig(epochs=1, progress=False), generator=g)
    assert data.chunked() == (["train", "val"] if chunked else []), data.chunked()
    total = sum(float(p.detach().double().sum()) for p in model.parameters())
    return res.timing_record()["samples_per_s"], total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a prepared dataset directory")
    ap.add_argument("--rows", type=int, default=400_000, help="train rows used (a prefix)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chunk-rows", type=int, default=1 << 17)
    ap.add_argument("--dim", type=int, default=1, help="uniform dim (1: the 10%% plan)")
    ap.add_argument("--results", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    full = Dataset.load(args.data)
    val = min(len(full.val), max(1, args.rows // 8))
    ds = replace(
        full,
        train=Split(full.train.x[: args.rows], full.train.y[: args.rows]),
        val=Split(full.val.x[:val], full.val.y[:val]),
    )
    out: dict[str, list[float]] = {"resident": [], "chunked": []}
    weights = set()
    for _ in range(args.repeat):
        for name in ("resident", "chunked"):
            sps, total = run(ds, name == "chunked", args.chunk_rows, args.dim)
            out[name].append(sps)
            weights.add(round(total, 6))
    med = {k: statistics.median(v) for k, v in out.items()}
    best = {k: max(v) for k, v in out.items()}
    rec = {
        "bench": "chunked_throughput",
        "data": str(args.data),
        "train_rows": len(ds.train),
        "fields": ds.schema.num_fields,
        "chunk_rows": args.chunk_rows,
        "dim": args.dim,
        "samples_per_s": out,
        "median": med,
        "best": best,
        "chunked_vs_resident_best": round(best["chunked"] / best["resident"], 3),
        "chunked_vs_resident_median": round(med["chunked"] / med["resident"], 3),
        "same_weights": len(weights) == 1,
        "threads": 1,
        "cpus": os.cpu_count(),
        "loadavg": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(rec))
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    with open(args.results, "a") as fh:
        fh.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
