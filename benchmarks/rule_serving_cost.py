"""Where RULE's serving cost comes from: the shared embedding columns or the shared backbone.

RULE (Chen et al., KDD 2021) serves a budget's blocks from its once-trained supernet. For
every budget's *uniform* block selection this script reports the test AUC

- ``served``: with the supernet's weights as they are (what RULE serves);
- ``backbone tuned``: after training only the backbone on that selection (embedding frozen);
- ``embedding tuned``: after training only the embedding table on that selection (only the
  selection's columns get gradients; backbone and RULE's switchable scales frozen);
- ``retrained``: the ``uniform`` controller's plan for the budget, trained from scratch;

so a gap that closes when the embedding is tuned, and not when the backbone is, is the cost
of sharing the embedding's leading columns between selections of every size. Same data,
splits and training options as ``bench_protocol.py``. Usage::

    OMP_NUM_THREADS=1 python benchmarks/rule_serving_cost.py --datasets synthetic --seed 0 \\
        --epochs 20 --out /tmp/rule-cost/seed0
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench_protocol import budget_labels, context, load_dataset, parse_args, retrain_and_test

from embsearch.controllers.evolution import uniform_selection
from embsearch.controllers.registry import get_controller
from embsearch.train import evaluate, seed_everything
from embsearch.train.trainer import train_model

PARTS = ("served", "backbone tuned", "embedding tuned")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for ds_name in args.datasets:
        ds = load_dataset(
            ds_name,
            Path(args.data_dir or out / "data"),
            args.rows,
            args.seed if args.resplit else None,
        )
        ctx = context(ds, "feature_dims", args.budgets, args)
        seed_everything(args.seed)
        rule = get_controller("rule")(**args.params_.get("rule", {}))
        rule.prepare(ctx, None)  # steps 1-3: the supernet (and the estimator, unused here)
        supernet = rule.state.supernet
        trained = {k: v.detach().clone() for k, v in supernet.state_dict().items()}
        uctx = context(ds, "field_dims", args.budgets, args)
        seed_everything(args.seed)
        uniform = get_controller("uniform")().search_budgets(uctx)
        labels = budget_labels(ctx, args.budgets)
        for plan in uniform:  # one per budget, paired by its bytes
            budget = plan.budget_bytes
            selection = uniform_selection(rule.state.space, budget)
            label = labels.get(budget, str(budget))
            row: dict[str, Any] = {"dataset": ds_name, "budget": label, "seed": args.seed}
            for part in PARTS:
                supernet.load_state_dict(trained)
                supernet.embedding.set_candidate(selection)
                supernet.embedding.sample_in_training = False  # train the selection itself
                if part != "served":
                    # the table's rows, or the backbone (switchable scales stay as trained)
                    prefix = "embedding.table" if part == "embedding tuned" else "backbone."
                    params = [p for n, p in supernet.named_parameters() if n.startswith(prefix)]
                    train_model(supernet, ctx.data, ctx.train, params=params, desc=part)
                supernet.eval()
                row[part] = evaluate(supernet, ctx.data.split("test"))[0]
            row["retrained"] = retrain_and_test(uctx, plan)["test_auc"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    (out / "serving_cost.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    sys.exit(main())
