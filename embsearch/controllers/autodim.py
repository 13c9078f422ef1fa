"""AutoDim: Zhao et al., "AutoDim: Field-aware Embedding Dimension Search in Recommender
Systems" (WWW 2021; arXiv:2006.14827, "Memory-efficient Embedding for Recommendations").

Steps, as in the paper:
1. the supernet (Sec. 2.1): every id has one width-wide vector; candidate dim ``d``
   uses its first ``d`` columns, projected to the width by its own linear layer and
   batch-normalised per candidate (:class:`~embsearch.embeddings.supernets.AutoDimSupernet`);
2. per-field architecture weights ``alpha`` mix the candidates through Gumbel-softmax
   (Sec. 2.2), with the temperature annealed as ``tau = max(tau_min, tau_0 - rate * t)``;
   each input sample draws its own Gumbel noise (``draw='sample'``, below);
3. first-order DARTS (Sec. 2.3): weight steps on training batches alternate with
   architecture steps on validation batches, each with its own Adam;
4. selection (Sec. 2.4): the paper keeps each field's ``argmax alpha`` (``discretise=
   'argmax'``); by default the exact knapsack picks, under each byte budget, the plan
   closest to the learned architecture, maximising ``-sum_f E_alpha|doublings between
   d_f and D_f|`` (``value='distance'``: the argmax's generalisation to a budget, which
   buys no width the weights do not ask for, so a plan may use less than its budget;
   ``value='shortfall'`` counts only doublings short and fills the budget), and a field
   may be dropped (dim 0, a candidate unless ``drop=false``) only where ``argmax alpha``
   is 0 (see :mod:`embsearch.controllers.differentiable`);
5. the chosen plan is retrained from scratch by the search runner (no weights returned).

``plan.extra['weights']`` holds each field's learned ``alpha`` (per group, per candidate).

Choice the paper leaves open: ``arch_lr=0.1`` (the shared default is 3e-2). A search of a
few epochs on a small dataset takes only dozens of architecture steps, and at 3e-2 the
logits stayed near uniform, so every cheap field got its largest dim whatever its alpha
said (synthetic, 10% budget: noise fields outgrew informative ones); at 0.1 the planted
fields win (`git show 964ade3:BENCHMARKS.md`, measured before the recipe).

Gumbel noise per sample (``draw='sample'``): the paper writes the mixture for one input
sample with its own draw, the Gumbel-softmax estimator as Jang et al. define it, so an
architecture step's gradient averages its batch's draws. The first version drew once per
(field, group) and batch (``draw='batch'``, kept as an option: a field's branches fold into
one projection, about 3x cheaper for the embedding layer): each architecture step then
rested on one draw, and over the planted test's 48 steps the logits random-walked, an
informative field's ``P(dim 0)`` ending at 0.031-0.051 over seeds 0-2 and moving by up to
0.011 when the fp32 kernels changed (AVX-512 to AVX2, Xeon Sapphire Rapids); per sample,
0.0075-0.0127 under both kernels (tests/test_differentiable.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
from torch import nn

from embsearch.context import SearchContext
from embsearch.controllers.base import SEARCH_BACKBONE
from embsearch.controllers.differentiable import WEIGHTS_SPECS, WeightsController
from embsearch.controllers.param_spec import Param
from embsearch.embeddings.supernets import AutoDimSupernet
from embsearch.embeddings.supernets.autodim_supernet import DRAWS
from embsearch.search_spaces.base import SearchSpace


class AutoDim(WeightsController):
    name = "autodim"
    paper = (
        "Xiangyu Zhao, Haochen Liu, Hui Liu, Jiliang Tang, Weiwei Guo, Jun Shi, Sida Wang, Huiji Gao, Bo Long. "
        "AutoDim: Field-aware Embedding Dimension Search in Recommender Systems. "
        "Proceedings of The Web Conference (WWW) 2021, pp. 3015-3022 (arXiv:2006.14827)"
    )
    default_space = "field_dims"
    supported_spaces = ("field_dims", "feature_dims")
    param_specs: ClassVar[dict[str, Param]] = {
        **WEIGHTS_SPECS,
        "value": replace(WEIGHTS_SPECS["value"], default="distance"),
        "arch_lr": replace(
            WEIGHTS_SPECS["arch_lr"],
            default=0.1,
            help="Adam learning rate of alpha (see below for why 0.1)",
        ),
        "temperature": Param(
            1.0, "float", "initial Gumbel-softmax temperature tau_0", 0.0, 100.0, open_low=True
        ),
        "temperature_min": Param(
            0.01, "float", "floor of the annealed temperature (at most temperature)", 0.0, 100.0,
            open_low=True,
        ),
        "anneal_rate": Param(
            5e-5, "float", "tau falls by this much per weight step (the paper's schedule)", 0.0, 1.0
        ),
        "draw": Param(
            "sample", "choice",
            "the Gumbel noise in training: 'sample' draws it per (row, field), as the paper's "
            "per-sample mixture; 'batch' once per (field, group) and batch (cheaper, noisier "
            "architecture steps)",
            choices=DRAWS,
            extension="'batch' (one draw per field and batch) is embsearch's shortcut",
        ),
        "search_backbone": replace(
            SEARCH_BACKBONE,
            default={"embedding_regularizer": 0.0},
            extension="the supernet's shared table trains without the recipe's dense embedding "
            "regularizer: with it the planted-data margins were lost (informative fields' weight "
            "on dim 0 0.063, above 0.05); the plans train with it",
        ),
    }  # fmt: skip

    def validate(self) -> None:
        super().validate()
        key, t0 = "temperature_min", self.config["temperature"]
        replace(self.param_specs[key], high=t0).check(self.name, key, self.config[key])

    def build_supernet(self, ctx: SearchContext, space: SearchSpace) -> nn.Module:
        """Steps 1-2."""
        return AutoDimSupernet(
            space.groups, space.candidates, space.width, float(self.config["temperature"]),
            draw=str(self.config["draw"]),
        )  # fmt: skip

    def on_step(self, supernet: nn.Module) -> Callable[[int], None]:
        """Step 2's temperature schedule, one tick per weight step."""
        t0, t_min, rate = (
            float(self.config[k]) for k in ("temperature", "temperature_min", "anneal_rate")
        )

        def anneal(step: int) -> None:
            supernet.temperature = max(t_min, t0 - rate * step)

        return anneal

    def weights(self, supernet: nn.Module) -> list[np.ndarray]:
        """Step 4: ``alpha`` per (field, group, candidate)."""
        return supernet.probabilities()

    def describe(self, supernet: nn.Module, space: SearchSpace) -> dict[str, Any]:
        return {
            "weights": {
                n: np.round(p, 6).tolist()
                for n, p in zip(space.schema.names, supernet.probabilities())
            },
            "preference_kind": self.preference_kind("alpha", space),
            "temperature_final": supernet.temperature,
        }
