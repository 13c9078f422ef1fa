"""What the per-epoch supernet checkpoint (issue 22 item 4) costs: the black-box masked
supernet (width 16) trained for ``--epochs`` epochs on a prepared dataset, once without a
run directory (no checkpoint) and once with one (a checkpoint after every epoch, then
``supernet.pt``); seconds per checkpoint write, its bytes and the wall time of each
training. One torch thread. Usage::

    embsearch data prepare --format csv --input ../shared/data/frappe-split/frappe_{train,valid,test}.csv.gz \\
        --label label --out /tmp/frappe
    python benchmarks/bench_checkpoint.py --data /tmp/frappe \\
        --out benchmarks/results/resume17/checkpoint_frappe.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

import embsearch.controllers.weight_sharing as ws
from embsearch.controllers.black_box_scoring import make_supernet
from embsearch.controllers.tpe import TPE
from embsearch.data.dataset import Dataset
from embsearch.testing import make_test_context
from embsearch.trial_store import TrialStore


def one(ds: Dataset, epochs: int, kept: bool) -> dict[str, Any]:
    """Train once; with ``kept`` in a temporary run directory (checkpointed)."""
    ctx = make_test_context(TPE, ("10%",), dataset=ds, epochs=epochs)
    ctx = replace(ctx, train=replace(ctx.train, patience=epochs, batch_size=4096))
    run_dir = Path(tempfile.mkdtemp(prefix="ckpt-bench-"))
    ctx.store = TrialStore(None, "journal", "bench", False, run_dir) if kept else None  # type: ignore[arg-type]
    ctrl = TPE()
    ctrl.new_state()
    space = ctx.space.with_projection("pad")
    writes: list[tuple[float, int]] = []
    real = ws.save_checkpoint

    def timed(path, state, model, generator):  # noqa: ANN001, ANN202
        t = time.perf_counter()
        real(path, state, model, generator)
        writes.append((time.perf_counter() - t, path.stat().st_size))

    ws.save_checkpoint = timed
    try:
        t0 = time.perf_counter()
        model, summary = ws.train_weight_sharing_supernet(
            ctx, lambda: make_supernet(ctrl, ctx, space), epochs, None
        )
        wall = time.perf_counter() - t0
    finally:
        ws.save_checkpoint = real
    saved = run_dir / "supernet.pt"
    return {
        "wall_s": round(wall, 3),
        "epochs": summary["epochs_run"],
        "checkpoint_s": [round(w, 4) for w, _ in writes],
        "checkpoint_bytes": [b for _, b in writes],
        "supernet_pt_bytes": saved.stat().st_size if saved.is_file() else None,
        "table_params": sum(p.numel() for p in model.embedding.parameters()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a prepared dataset directory")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    ds = Dataset.load(args.data)
    result = {
        "data": args.data,
        "load_before": os.getloadavg()[0],
        "plain": one(ds, args.epochs, kept=False),
        "checkpointed": one(ds, args.epochs, kept=True),
        "load_after": os.getloadavg()[0],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
