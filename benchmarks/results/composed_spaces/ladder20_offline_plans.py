"""ladder20: mde's plans under the rows-only ladder (before f9ca5e1) and the lexicographic one,
computed without training, for every cell of the composed grid; compared with the plans stored
in the grid's JSON lines (``blocks``). Only cells whose plan changed were retrained
(``*_ladder20_seed*.jsonl``).

    PYTHONPATH=. python benchmarks/results/composed_spaces/ladder20_offline_plans.py \\
        > benchmarks/results/composed_spaces/ladder20_offline_plans.txt
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from embsearch.blocks import BITS
from embsearch.budget import parse_budget
from embsearch.controllers import mde
from embsearch.errors import BudgetError
from embsearch.run_config import RunConfig
from embsearch.search import build_space, load_dataset, make_context

HERE = Path(__file__).parent
DATA = {  # the data of seeds 0, 1, ...
    "frappe": ["/tmp/grid18/frappe-split"] * 3,
    "talkingdata": [f"/tmp/p_data/talkingdata-split{s}" for s in range(3)],
    "synthetic1m": ["/tmp/grid18/synthetic-1m"],
}
FILES = {
    "frappe": "frappe_grid frappe_grid_seed1 frappe_grid_seed2 frappe_prec19_seed0 "
    "frappe_prec19_seed1 frappe_prec19_seed2",
    "talkingdata": "talkingdata_grid_seed0 talkingdata_grid_seed1 talkingdata_grid_seed2 "
    "talkingdata_prec19_seed0 talkingdata_prec19_seed1 talkingdata_prec19_seed2",
    "synthetic1m": "synthetic1m_grid_seed0 synthetic1m_prec19_seed0",
}
SPACES = ("precision", "field_dims+meta_table+precision", "field_dims+meta_table", "meta_table")
BUDGETS = ("1%", "3%", "10%", "25%")


def rows_only_ladder(space, f):  # mde._ladder before f9ca5e1
    rows = space.schema.fields[f].cardinality
    best = {}
    for keys in space.options(f):
        nbytes = space.field_cost(f, keys)
        opts = [space.option(f, g, k) for g, k in enumerate(keys)]
        rank = (
            sum(o.stored_rows(rows) for o in opts),
            sum(o.dim for o in opts),
            sum(BITS[o.precision] for o in opts),
        )
        if nbytes not in best or rank > best[nbytes][0]:
            best[nbytes] = (rank, keys)
    costs, most_rows = [], -1
    for c in sorted(best):
        if best[c][0][0] >= most_rows:
            costs.append(c)
            most_rows = best[c][0][0]
    return np.asarray(costs, dtype=np.float64), [best[c][1] for c in costs]


def stored(name):
    out = {}
    for f in FILES[name].split():
        for line in (HERE / f"{f}.jsonl").read_text().splitlines():
            r = json.loads(line)
            if r.get("controller") == "mde" and "space" in r:
                out[(r["space"], r["budget"], r["seed"])] = (f, r.get("blocks"), r.get("test_auc"))
    return out


def blocks_of(plan):
    specs = [plan.block_spec(f, 0) for f in plan.fields]
    return {f.name: {**b.to_json(), "dim": b.dim} for f, b in zip(plan.fields, specs)}


def short(blocks):
    return " ".join(
        f"{k}:{v['kind']}{v.get('m') or v.get('c') or ''}/{v['precision']}/d{v['dim']}"
        for k, v in (blocks or {}).items()
    )


def main():
    lexicographic = mde._ladder
    for name, paths in DATA.items():
        old_rows = stored(name)
        for seed, path in enumerate(paths):
            ds = load_dataset(RunConfig(data=path))
            for space_name in SPACES:
                for b in BUDGETS:
                    cfg = RunConfig(data=path, budgets=[b], controller="mde", space=space_name)
                    space = build_space(cfg, ds, "field_dims")
                    try:
                        budget = space.resolve_budget(parse_budget(b))
                    except BudgetError:
                        print(f"{name} s{seed} {space_name} {b}: infeasible")
                        continue
                    ctx = make_context(cfg, ds, space, [budget], progress=False)
                    plans = {}
                    for tag, ladder in (("old", rows_only_ladder), ("new", lexicographic)):
                        mde._ladder = ladder
                        plans[tag] = blocks_of(mde.MDE().search(ctx))
                    mde._ladder = lexicographic
                    f, blocks, auc = old_rows.get((space_name, b, seed), (None, None, None))
                    flag = "CHANGED" if plans["old"] != plans["new"] else "same"
                    ok = f is None or blocks == plans["old"]
                    print(f"{name} s{seed} {space_name} {b}: {flag}; old == stored {ok} ({f})")
                    if flag == "CHANGED":
                        print(f"   old ({auc:.4f}): {short(plans['old'])}")
                        print(f"   new:          {short(plans['new'])}")


if __name__ == "__main__":
    main()
