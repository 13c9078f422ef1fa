"""AutoIAS beside uniform (issue 23, item 3): its search's cost against one full training,
and the test AUC of its retrained plans, with the protocol's steps (``bench_protocol.py``).

Rows, for one dataset and seed:

- ``full (dim 16)``: the full-size table, DeepFM, trained for all ``--epochs`` and timed:
  the "one full training" the search is measured against;
- ``uniform``: the protocol's uniform plans, DeepFM;
- ``uniform[autoias net]``: the same plans in front of the ``autoias`` backbone's default
  network (every field pair's inner product, MLP 256-128): uniform dims, no searched network;
- ``autoias``: AutoIAS's plans (dims and network searched), retrained with the ``autoias``
  backbone.

``--data`` is ``synthetic`` (the protocol's planted data, 60,000 rows) or a prepared
directory (e.g. the frappe split of ``../shared/data/frappe-split``). Usage::

    python benchmarks/bench_autoias.py --data synthetic --budgets 10%,25% --epochs 10 \\
        --seed 0 --threads 1 --out benchmarks/results/autoias/synthetic-s0
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from bench_protocol import markdown, parse_args, run_controller, run_full  # noqa: E402

from embsearch.data.dataset import Dataset  # noqa: E402
from embsearch.data.synthetic import make_synthetic  # noqa: E402
from embsearch.train import seed_everything  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="synthetic or a prepared dataset directory")
    known, rest = ap.parse_known_args(argv)
    args = parse_args(["--datasets", "synthetic", "--controllers", "uniform,autoias", *rest])
    name = "synthetic" if known.data == "synthetic" else Path(known.data).name
    ds = make_synthetic() if known.data == "synthetic" else Dataset.load(known.data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], fused=True)  # as bench_protocol
    seed_everything(args.seed)

    def save() -> None:
        meta = {"config": {k: v for k, v in vars(args).items() if k != "device_"}}
        meta["config"]["data"] = known.data
        (out / "results.json").write_text(json.dumps({**meta, "rows": rows}, indent=2, default=str))
        (out / "results.md").write_text(markdown(rows) + ratio_note(rows))

    rows.append(run_full(name, ds, args))
    save()
    rows.extend(run_controller(name, ds, "uniform", args))
    save()
    net = argparse.Namespace(**{**vars(args), "backbone": "autoias"})
    for row in run_controller(name, ds, "uniform", net):
        rows.append({**row, "controller": "uniform[autoias net]"})
    save()
    searched = run_controller(name, ds, "autoias", net)
    rows.extend(searched)
    save()


def ratio_note(rows: list[dict]) -> str:
    """The search's seconds over the full training's (the issue's target: at most 4)."""
    full = next((r for r in rows if r["controller"].startswith("full")), None)
    search = next((r for r in rows if r["controller"] == "autoias" and "search_s" in r), None)
    if not full or not search:
        return ""
    ratio = search["search_s"] / max(full["retrain_s"], 1e-9)
    return (
        f"\nautoias search {search['search_s']:.1f} s for {search['shared_by']} budgets = "
        f"{ratio:.2f}x one full training ({full['retrain_s']:.1f} s).\n"
    )


if __name__ == "__main__":
    main()
