"""AutoEmb: Zhao et al., "AutoEmb: Automated Embedding Dimensionality Search in Streaming
Recommendations" (ICDM 2021), in the batch setting and the ``feature_dims`` space.

Steps:
1. the supernet (Sec. 2.2): candidate dims of every id mixed by soft weights; shared
   max-width weights (one width-wide vector per id, candidate ``d`` = its first ``d``
   columns, per-candidate projection and batch norm) rather than separate per-dim
   tables: ``rows x width`` instead of ``rows x sum(candidates)`` parameters
   (:class:`~embsearch.embeddings.supernets.AutoEmbSupernet`);
2. the controller (Sec. 2.3): one small network per field (AutoEmb keeps one for users
   and one for items; a linear part plus a ReLU MLP) fed by the id's popularity (log of
   its training count) outputs that id's soft weights over the candidates. A shared
   network fed by a field one-hot was tried first: it let popularity stand in for the
   field (small fields are all popular), and on the planted data noise fields got as
   many dims as informative ones;
3. first-order DARTS (Sec. 2.4): weight steps on training batches alternate with
   controller steps on validation batches (separate Adam);
4. aggregation: a frequency group's weights are its ids' weights averaged over the
   group's training occurrences, and the knapsack's value of dim ``d`` is minus the
   expected doublings ``d`` falls short of ``D`` under them (the argmax mode takes their
   argmax; a group may take dim 0 only where its weights favour it: see
   :mod:`embsearch.controllers._darts`). Summing a value over each group's ids instead
   (the likelihood per id) was tried: on synthetic and frappe it lost to uniform more
   often and made the knapsack 10x slower;
5. selection: the exact knapsack under each budget (or the per-group argmax); the plan is
   retrained from scratch by the search runner.

``plan.extra['weights']`` holds each group's aggregated weights.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from torch import nn

from embsearch.context import SearchContext
from embsearch.controllers._darts import WEIGHTS_HELP, WEIGHTS_PARAMS, WeightsController
from embsearch.embeddings.supernets import AutoEmbSupernet
from embsearch.search_spaces.base import SearchSpace


class AutoEmb(WeightsController):
    name = "autoemb"
    paper = (
        "Xiangyu Zhao, Haochen Liu, Wenqi Fan, Hui Liu, Jiliang Tang, Chong Wang, Ming Chen, Xudong Zheng, "
        "Xiaobing Liu, Xiwang Yang. AutoEmb: Automated Embedding Dimensionality Search in Streaming "
        "Recommendations. IEEE International Conference on Data Mining (ICDM) 2021, pp. 896-905"
    )
    default_space = "feature_dims"
    supported_spaces = ("feature_dims", "field_dims")
    params: ClassVar[dict[str, Any]] = {**WEIGHTS_PARAMS, "hidden": 32}
    param_help: ClassVar[dict[str, str]] = {
        **WEIGHTS_HELP,
        "hidden": "hidden units of each field's controller MLP",
    }

    def validate(self) -> None:
        super().validate()
        self._check_number("hidden", 1, 4096, integer=True)

    def build_supernet(self, ctx: SearchContext, space: SearchSpace) -> nn.Module:
        """Steps 1-2."""
        counts = [f.frequencies() for f in space.schema.fields]
        return AutoEmbSupernet(
            space.groups, space.candidates, space.width, counts, int(self.config["hidden"])
        )

    def weights(self, supernet: nn.Module) -> list[np.ndarray]:
        """Step 4: each group's controller weights averaged over its training occurrences
        (computed once per trained supernet; ``describe`` reuses them)."""
        cached = getattr(self, "_weights", None)
        if cached is None or cached[0] is not supernet:
            self._weights = (supernet, supernet.group_weights())
        return self._weights[1]

    def describe(self, supernet: nn.Module, space: SearchSpace) -> dict[str, Any]:
        return {
            "weights": {
                n: np.round(w, 6).tolist()
                for n, w in zip(space.schema.names, self.weights(supernet))
            },
            "preference_kind": self.preference_kind("the group's mean controller weights", space),
        }
