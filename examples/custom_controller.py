"""A complete custom controller: give each field a dim proportional to the label signal its
ids carry (mutual information with the label), then fit the budget with the exact knapsack.

Run it from the command line without installing anything extra:

    embsearch search --data synthetic --budget 25% \
        --controller examples.custom_controller:MutualInfo --out runs/mi

or register it for good in your package's pyproject.toml:

    [project.entry-points."embsearch.controllers"]
    mutual-info = "mypackage.controllers:MutualInfo"
"""

from __future__ import annotations

import numpy as np

from embsearch import Controller, Param, Plan, SearchContext


class MutualInfo(Controller):
    """Dims by each field's empirical mutual information with the label."""

    name = "mutual-info"
    family = "custom"
    paper = "example: mutual information between field and label"
    supported_spaces = ("field_dims",)
    # one spec per parameter: default, kind, range (here >= 0) and a line of help; __init__
    # checks every value against it and `embsearch controllers` prints it (the older plain
    # dicts, params = {...} and param_help = {...}, still work)
    param_specs = {
        "smoothing": Param(
            10.0, "float", "pseudo-count that shrinks each id's click rate towards the prior", 0.0
        )
    }

    def field_information(self, ctx: SearchContext) -> np.ndarray:
        """Mutual information (nats) between each field's id and the label, on train."""
        x, y = ctx.dataset.train.x, ctx.dataset.train.y
        prior = float(y.mean())
        info = []
        for f, spec in enumerate(ctx.dataset.schema.fields):
            n = np.bincount(x[:, f], minlength=spec.cardinality).astype(float)
            pos = np.bincount(x[:, f], weights=y, minlength=spec.cardinality)
            a = float(self.config["smoothing"])
            p = (pos + a * prior) / (n + a)  # smoothed P(y=1 | id)
            h = -(p * np.log(p + 1e-12) + (1 - p) * np.log(1 - p + 1e-12))
            h0 = -(prior * np.log(prior) + (1 - prior) * np.log(1 - prior))
            info.append(h0 - float((n / n.sum()) @ h))
        return np.maximum(np.asarray(info), 0.0)

    def search(self, ctx: SearchContext) -> Plan:
        self.check_space(ctx)
        info = self.field_information(ctx)
        weight = info / max(info.max(), 1e-12)
        # Preference of dim d for field f: its information times log2(d) (diminishing returns).
        preference = [
            weight[f] * np.log2(np.asarray(ctx.space.candidates, dtype=float) + 1)[None, :]
            for f in range(ctx.space.num_fields)
        ]
        cand = ctx.space.best_under_budget(preference, ctx.budget)
        return self.make_plan(ctx, cand, extra={"information": info.round(5).tolist()})
