"""Lookup throughput of each table kind against the full table (issue 21, Benchmarks).

One field of ``--rows`` ids at ``--dim`` 16, batches of ``--batch`` ids drawn from a Zipf-like
law over the frequency-ranked ids (a power 1.1, as CTR ids are). Each kind (``blocks.py``)
at its issue-21 sizes: ``full`` at fp32, fp16, int8 and the column-wise int8c and int4c
(their ``train`` is quantisation-aware, the default); ``hash`` and ``memcom`` with m =
rows / 10; ``qr`` with c = ceil(sqrt(rows)) (concat, add and mult); ``pruned`` keeping half.
``lookup``: eval-mode forward under ``torch.no_grad`` (fp16 and int8 round the gathered rows,
as the stored table gives them); ``packed``: the same after loading the exported tensors
(fp16 rows, int8/int8c/int4c codes dequantised on lookup); ``train``: forward + backward. Each figure is
the median of ``--repeats`` timings of ``--steps`` batches, in million ids per CPU second
(process time, one thread: the 2-core machine is shared, so wall time measures the load); the
repeats go round-robin over the kinds (load from other processes spreads over all of them),
and every timing is kept under ``*_all``.

    nice -n 10 python benchmarks/bench_table_kinds.py --rows 1000000 \\
        --out benchmarks/results/table_kinds/rows1M.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from embsearch.blocks import BlockSpec
from embsearch.embeddings.tables import make_table


def kinds(rows: int, dim: int) -> dict[str, BlockSpec]:
    c = max(2, math.ceil(math.sqrt(rows)))
    m = max(2, rows // 10)
    return {
        "full fp32": BlockSpec("full", rows, dim),
        "full fp16": BlockSpec("full", rows, dim, "fp16"),
        "full int8": BlockSpec("full", rows, dim, "int8"),
        "full int8c": BlockSpec("full", rows, dim, "int8c"),
        "full int4c": BlockSpec("full", rows, dim, "int4c"),
        "hash m=rows/10": BlockSpec("hash", rows, dim, m=m, a=2654435761 % (2**31 - 1), b=97),
        "qr concat c=sqrt": BlockSpec("qr", rows, dim, c=c, op="concat"),
        "qr add c=sqrt": BlockSpec("qr", rows, dim, c=c, op="add"),
        "qr mult c=sqrt": BlockSpec("qr", rows, dim, c=c, op="mult"),
        "memcom m=rows/10": BlockSpec("memcom", rows, dim, m=m),
        "pruned kept=rows/2": BlockSpec("pruned", rows, dim, kept=rows // 2),
    }


def zipf_ids(rows: int, n: int, gen: torch.Generator) -> torch.Tensor:
    weights = torch.arange(1, rows + 1, dtype=torch.float64).pow(-1.1)
    return torch.multinomial(weights, n, replacement=True, generator=gen)


def _rate(fn, batches: list[torch.Tensor]) -> float:
    """Million ids per CPU second of one pass of ``fn`` over ``batches`` (process time: with
    one thread, what the pass costs, whatever other processes take of the machine)."""
    t0 = time.process_time()
    for ids in batches:
        fn(ids)
    return sum(len(b) for b in batches) / (time.process_time() - t0) / 1e6


def modes(spec: BlockSpec) -> dict:
    """The three timed calls of one kind: train step, eval lookup, lookup after loading."""
    table = make_table(spec)
    packed = make_table(spec)
    packed.load("b", table.export("b"))
    packed.eval()

    def train(ids: torch.Tensor) -> None:
        if not table.training:  # once a pass (Rows.train restarts a QAT table's column range)
            table.train()
        table.zero_grad(set_to_none=True)
        table(ids).sum().backward()

    def lookup(ids: torch.Tensor) -> None:
        if table.training:  # once a pass (int8c/int4c then compute their column range once)
            table.eval()
        with torch.no_grad():
            table(ids)

    def packed_lookup(ids: torch.Tensor) -> None:
        with torch.no_grad():
            packed(ids)

    return {"train": train, "lookup": lookup, "packed_lookup": packed_lookup}


def bench_all(specs: dict[str, BlockSpec], batches: list[torch.Tensor], repeats: int) -> dict:
    """Median rates per kind and mode; repeats run round-robin over the kinds, so a burst of
    load from other processes spreads over all of them rather than one."""
    calls = {name: modes(spec) for name, spec in specs.items()}
    rates: dict[str, dict[str, list[float]]] = {n: {m: [] for m in c} for n, c in calls.items()}
    for c in calls.values():  # warm-up pass
        for fn in c.values():
            _rate(fn, batches[:2])
    for _ in range(repeats):
        for name, c in calls.items():
            for mode, fn in c.items():
                rates[name][mode].append(_rate(fn, batches))
    return {
        name: {
            "bytes": specs[name].bytes(),
            **{f"{m}_Mids_s": round(statistics.median(r), 3) for m, r in per.items()},
            **{f"{m}_Mids_s_all": [round(x, 3) for x in r] for m, r in per.items()},
        }
        for name, per in rates.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    batches = [zipf_ids(args.rows, args.batch, gen) for _ in range(args.steps)]
    load = os.getloadavg()[0]
    results = bench_all(kinds(args.rows, args.dim), batches, args.repeats)
    for name, r in results.items():
        print(name, {k: v for k, v in r.items() if not k.endswith("_all")}, flush=True)
    full = results["full fp32"]
    for r in results.values():
        for key in ("train_Mids_s", "lookup_Mids_s", "packed_lookup_Mids_s"):
            r[key.replace("_Mids_s", "_vs_full")] = round(r[key] / full[key], 3)
        r["bytes_vs_full"] = round(r["bytes"] / full["bytes"], 4)
    record = {
        "args": vars(args),
        "machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__},
        "threads": torch.get_num_threads(),
        "load_average_1min": [round(load, 2), round(os.getloadavg()[0], 2)],  # before, after
        "results": results,
    }
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, allow_nan=False) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    main()
