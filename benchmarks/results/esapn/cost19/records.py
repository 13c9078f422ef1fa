"""Run ESAPN end to end (pass + plan + null signal) on several settings; dump what the
search produced, to compare old and new code bit for bit."""
import hashlib, json, sys
import numpy as np
import torch
sys.path.insert(0, "/work/main/benchmarks")
from bench_esapn import prepared
from pathlib import Path
from embsearch.context import SearchContext
from embsearch.controllers.esapn import ESAPN
from embsearch.data.synthetic import make_synthetic
from embsearch.search_spaces import FeatureDimsSpace
from embsearch.train import TrainConfig
torch.set_num_threads(1)
import embsearch; print(embsearch.__file__, file=sys.stderr)

def h(t):
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]

def run(tag, ds, fractions, stream, seed, **params):
    space = FeatureDimsSpace(ds.schema, 16)
    budgets = [int(space.full_table_bytes() * f) for f in fractions]
    cfg = TrainConfig(epochs=1, batch_size=4096, progress=False)
    ctx = SearchContext(ds, space, budgets, train=cfg, seed=seed, log=lambda m: None, stream=stream)
    es = ESAPN(**params)
    plans = es.search_budgets(ctx)
    out = []
    for b, plan in zip(budgets, plans):
        rec = dict(plan.extra["pass"]); rec.pop("seconds"); rec.pop("cpu_seconds")
        w = es.state.walks[b]
        out.append({"tag": tag, "budget": b, "pass": rec,
                    "dims": {f.name: [g.dim for g in f.groups] for f in plan.fields},
                    "signal": plan.extra["signal"], "means": plan.extra["dims_per_field_mean"],
                    "size": h(w.size), "losses": h(w.losses), "gain": h(w.gain_sum), "price": w.price,
                    "model": h(torch.cat([p.detach().flatten() for p in es.state.supernet.parameters()]))})
    return out

which = sys.argv[2].split(",") if len(sys.argv) > 2 else ["planted", "frappe", "synthetic", "talkingdata", "avg"]
res = []
for seed in (0, 1, 2):
    if "planted" in which:
        ds = make_synthetic(rows=20_000, seed=0, cardinalities=(500,) * 12)
        res += run(f"planted s{seed}", ds, [0.4], False, seed, epochs=3, fill=False)
for seed in (0, 1):
    for name in ("frappe", "synthetic", "talkingdata"):
        if name in which:
            res += run(f"{name} stream s{seed}", prepared(name, Path("/tmp/e/data")), [0.10, 0.25], True, seed)
    if "avg" in which:
        res += run(f"frappe average s{seed}", prepared("frappe", Path("/tmp/e/data")), [0.25], True, seed, reward_base="average")
        res += run(f"frappe shuffled s{seed}", prepared("frappe", Path("/tmp/e/data")), [0.25], False, seed, epochs=2)
Path(sys.argv[1]).write_text(json.dumps(res, indent=1))
