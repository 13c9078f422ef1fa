"""RULE on the planted test fixture: what its served plan gives the informative fields, which
step chose it, and what its estimator learnt (issue 18, section 2).

The fixture of ``tests/test_evolutionary.py``: ``make_synthetic(rows=20_000,
cardinalities=(500,) * 12)``, the ``feature_dims`` space (4 frequency groups), a 40% budget,
2 epochs, RULE's defaults. Per seed, one JSON line: the served plan's mean dim per id and per
training lookup (each group's dim weighted by its ids' occurrences) over the informative and
the noise fields, its provenance and null agreement, and the estimator's
summed value of a field's blocks (mean over informative and noise fields, and the noise
fields' spread).

    python benchmarks/rule_planted.py --seeds 0,1,2,3,4 --out benchmarks/results/rule_planted.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from embsearch.context import SearchContext
from embsearch.controllers.rule import Rule
from embsearch.data.synthetic import make_synthetic
from embsearch.search_spaces import FeatureDimsSpace
from embsearch.train import TrainConfig


def run(seed: int) -> dict:
    ds = make_synthetic(rows=20_000, seed=0, cardinalities=(500,) * 12)
    space = FeatureDimsSpace(ds.schema, 16)
    budget = int(space.full_table_bytes() * 0.4)
    train = TrainConfig(epochs=2, batch_size=1024, progress=False)
    ctx = SearchContext(ds, space, [budget], train=train, seed=seed, log=lambda m: None)
    ctrl = Rule()
    plan = ctrl.search(ctx)
    meta, names = ds.schema.meta, ds.schema.names
    per_id = {f.name: sum(g.rows * g.dim for g in f.groups) / f.rows for f in plan.fields}
    per_lookup = {}
    for f, fp in zip(ds.schema.fields, plan.fields):
        counts = f.frequencies()
        starts = np.cumsum([0] + [g.rows for g in fp.groups])
        looked = [
            float(counts[a:b].sum()) * g.dim for a, b, g in zip(starts, starts[1:], fp.groups)
        ]
        per_lookup[f.name] = sum(looked) / float(counts.sum())
    value = dict(zip(names, ctrl.state.estimator.w.reshape(len(names), -1).sum(1)))
    noise_values = [float(value[n]) for n in meta["noise"]]
    return {
        "seed": seed,
        "dims_per_id_informative": float(np.mean([per_id[n] for n in meta["informative"]])),
        "dims_per_id_noise": float(np.mean([per_id[n] for n in meta["noise"]])),
        "dims_per_lookup_informative": float(np.mean([per_lookup[n] for n in meta["informative"]])),
        "dims_per_lookup_noise": float(np.mean([per_lookup[n] for n in meta["noise"]])),
        "provenance": plan.extra["provenance"],
        "null_agreement": plan.extra["signal"]["null_agreement"],
        "estimator_value_informative": float(np.mean([value[n] for n in meta["informative"]])),
        "estimator_value_noise": float(np.mean(noise_values)),
        "estimator_value_noise_sd": float(np.std(noise_values)),
        "served_val_auc": plan.metrics["val_auc"],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--out", default=None, help="append JSON lines here (default: stdout only)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    for seed in (int(s) for s in args.seeds.split(",")):
        line = json.dumps(run(seed))
        print(line, flush=True)
        if args.out:
            with Path(args.out).open("a") as fh:
                fh.write(line + "\n")


if __name__ == "__main__":
    main()
