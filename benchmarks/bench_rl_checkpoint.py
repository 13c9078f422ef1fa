"""What the RL controllers' resume checkpoints (issue 22 item 4) cost on a prepared dataset:

- ``esapn``: one pass (``--param epochs=1``) checkpointed before every batch (``SECONDS`` and
  ``OVERHEAD`` set to 0), so each write is timed: seconds and bytes of ``passes.pt`` per
  checkpoint against the pass's seconds per batch; at the defaults (a checkpoint 60 s after
  the last, or 20x its own cost) the share of the pass is ``write / 60 s``;
- ``nis``: one supernet epoch with its policies (``supernet_epochs=1``, 2 updates of step 6):
  the per-epoch checkpoint's seconds and bytes, and the bytes of its hooks' state (the
  policies, their Adam states, generators and rewards) within it.

One torch thread, the searches run in this process (``embsearch search``). Usage::

    python benchmarks/bench_rl_checkpoint.py --data /tmp/frappe \\
        --out benchmarks/results/rlresume18/checkpoint_frappe.json

(``/tmp/frappe``: prepared as in benchmarks/bench_checkpoint.py's docstring.)
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import embsearch.controllers.esapn_resume as er
import embsearch.controllers.weight_sharing as ws
from embsearch.cli import main


def timed(record: list[dict[str, Any]], fn: Any, path_of: Any) -> Any:
    """``fn`` wrapped: each call's seconds and the bytes of the file it wrote."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        record.append({"seconds": time.perf_counter() - t0, "bytes": path_of(*args).stat().st_size})
        return out

    return wrapper


def summary(writes: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "writes": len(writes),
        "median_seconds": statistics.median(w["seconds"] for w in writes),
        "max_seconds": max(w["seconds"] for w in writes),
        "bytes": writes[-1]["bytes"],
    }


def esapn(data: str, budget: str, run: Path) -> dict[str, Any]:
    writes: list[dict[str, Any]] = []
    defaults = er.SECONDS, er.OVERHEAD
    er.SECONDS = er.OVERHEAD = 0
    real = er.PassInProgress.save
    er.PassInProgress.save = timed(  # type: ignore[method-assign]
        writes, real, lambda self, *a: self.passes.ctx.store.run_dir / er.PASSES_NAME
    )
    try:
        argv = ["search", "--data", data, "--budget", budget, "--controller", "esapn"]
        argv += ["--param", "epochs=1", "--epochs", "1", "--threads", "1", "--quiet"]
        assert main([*argv, "--out", str(run)]) == 0
    finally:
        er.PassInProgress.save = real  # type: ignore[method-assign]
        er.SECONDS, er.OVERHEAD = defaults
    history = json.loads((run / "search.json").read_text())["history"]
    (pass_,) = [e for e in history if e["event"] == "esapn pass"]
    per_batch = pass_["seconds"] / pass_["batches"]
    out = summary(writes)
    out.update(
        pass_seconds=pass_["seconds"],
        batches=pass_["batches"],
        seconds_per_batch=per_batch,
        share_at_defaults=out["median_seconds"] / max(er.SECONDS, 1e-9),
    )
    return out


def nis(data: str, budget: str, run: Path) -> dict[str, Any]:
    writes: list[dict[str, Any]] = []
    hooks: list[int] = []
    real = ws.save_checkpoint

    def save(path: Path, state: Any, model: Any, generator: Any, hook_state: Any = None) -> None:
        real(path, state, model, generator, hook_state)
        buf = io.BytesIO()
        torch.save(hook_state.state_dict(), buf)
        hooks.append(buf.tell())

    ws.save_checkpoint = timed(writes, save, lambda path, *a: path)  # type: ignore[assignment]
    try:
        argv = ["search", "--data", data, "--budget", budget, "--controller", "nis"]
        argv += ["--param", "supernet_epochs=1", "--param", "search_updates=2"]
        argv += ["--epochs", "1", "--threads", "1", "--quiet"]
        assert main([*argv, "--out", str(run)]) == 0
    finally:
        ws.save_checkpoint = real
    history = json.loads((run / "search.json").read_text())["history"]
    (sup,) = [e for e in history if e["event"] == "supernet"]
    return {**summary(writes), "hook_state_bytes": hooks[-1], "supernet_seconds": sup["seconds"]}


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--budget", default="25%")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="rl-ckpt-"))
    result = {
        "data": args.data,
        "budget": args.budget,
        "esapn": esapn(args.data, args.budget, tmp / "esapn"),
        "nis": nis(args.data, args.budget, tmp / "nis"),
        "note": "shared 2-core machine under load; one torch thread",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    run()
