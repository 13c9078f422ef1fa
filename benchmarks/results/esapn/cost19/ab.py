"""Old (HEAD's esapn_policy/probe/walk, from /tmp/esapn19/old) and new (the working
tree's) ESAPN passes alternating with a plain epoch in one process: CPU seconds."""
import importlib.util, json, sys, time
import numpy as np
import torch
sys.path.insert(0, "/work/main/benchmarks")
from bench_esapn import prepared, plain_epoch
from pathlib import Path
import embsearch.controllers.esapn as E
from embsearch.context import SearchContext
from embsearch.search_spaces import FeatureDimsSpace
from embsearch.train import TrainConfig
torch.set_num_threads(1)
OLD = Path("/tmp/esapn19/old/embsearch/controllers")

def load(name, alias):
    spec = importlib.util.spec_from_file_location(alias, OLD / f"{name}.py")
    mod = importlib.util.module_from_spec(spec); sys.modules[alias] = mod
    return spec, mod

# old modules, wired to each other
saved = {k: sys.modules[k] for k in ("embsearch.controllers.esapn_policy", "embsearch.controllers.esapn_probe", "embsearch.controllers.esapn_walk")}
old = {}
for name in ("esapn_policy", "esapn_probe", "esapn_walk"):
    spec, mod = load(name, f"embsearch.controllers.{name}")
    spec.loader.exec_module(mod); old[name] = mod
sys.modules.update(saved)
spec = importlib.util.spec_from_file_location("old_growing", OLD.parent / "embeddings/supernets/growing.py")
old_growing = importlib.util.module_from_spec(spec); spec.loader.exec_module(old_growing)
NEW = {"walk": E.walk, "Walk": E.Walk, "WalkSettings": E.WalkSettings, "SizePolicy": E.SizePolicy, "GrowingSupernet": E.GrowingSupernet}
OLDV = {"walk": old["esapn_walk"].walk, "Walk": old["esapn_walk"].Walk, "WalkSettings": old["esapn_walk"].WalkSettings, "SizePolicy": old["esapn_policy"].SizePolicy, "GrowingSupernet": old_growing.GrowingSupernet}
assert all(OLDV[k] is not NEW[k] for k in NEW)

def one_pass(ctx, variant):
    for k, v in variant.items():
        setattr(E, k, v)
    es = E.ESAPN(); es.null_candidate = lambda c, b: None
    rec = es.search(ctx).extra["pass"]
    return rec["cpu_seconds"], rec

reps = int(sys.argv[2]); out = Path(sys.argv[3])
rows = json.loads(out.read_text()) if out.exists() else []
for name in sys.argv[1].split(","):
    ds = prepared(name, Path("/tmp/e/data"))
    space = FeatureDimsSpace(ds.schema, 16)
    budget = int(space.full_table_bytes() * 0.10)
    cfg = TrainConfig(epochs=1, batch_size=4096, progress=False)
    ctx = SearchContext(ds, space, [budget], train=cfg, log=lambda m: None, stream=True)
    t = {"plain": [], "old": [], "new": []}
    for r in range(reps):
        order = ["plain", "old", "new"] if r % 2 == 0 else ["new", "old", "plain"]
        recs = {}
        for k in order:
            if k == "plain":
                t[k].append(round(plain_epoch(ctx, 500, cpu=True), 3))
            else:
                c, recs[k] = one_pass(ctx, OLDV if k == "old" else NEW); t[k].append(c)
        a, b = dict(recs["old"]), dict(recs["new"])
        for d in (a, b):
            d.pop("seconds"); d.pop("cpu_seconds")
        assert a == b, "old and new pass records differ"
    med = {k: float(np.median(v)) for k, v in t.items()}
    row = {"dataset": name, "reps": reps, "cpu_s": t, "old_ratio": round(med["old"] / med["plain"], 3),
           "new_ratio": round(med["new"] / med["plain"], 3),
           "per_rep_old": round(float(np.median(np.array(t["old"]) / np.array(t["plain"]))), 3),
           "per_rep_new": round(float(np.median(np.array(t["new"]) / np.array(t["plain"]))), 3)}
    rows.append(row); out.write_text(json.dumps(rows, indent=1))
    print(name, {k: row[k] for k in ("old_ratio", "new_ratio", "per_rep_old", "per_rep_new")}, flush=True)
