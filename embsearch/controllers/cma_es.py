"""``cmaes``: CMA-ES (Hansen and Ostermeier 2001) over per-(field, group) dims, through
Optuna's ``CmaEsSampler`` (the ``cmaes`` package), as a black-box controller
(:mod:`.black_box`: supernet scoring, repair onto the budget, storage, resume).

**Encoding.** CMA-ES samples real vectors; Optuna's ``CmaEsSampler`` does not model
categorical parameters at all: it hands them to its independent sampler (uniform random),
which would make this random search. So each (field, group) block's option is an *integer
index* into the candidate dims sorted ascending (``IntDistribution(0, C - 1)``; index ``i``
is dim ``sorted(candidates)[i]``): the order of the dims is meaningful (a larger index, a
wider block), so a Gaussian step in index space moves a block to a neighbouring width. The
sampler rounds each coordinate to the nearest index (``_SearchSpaceTransform``'s step).
Every trial, including the repaired ones, has the same integer parameters, so the whole
space is relative (CMA-ES's own), never independent.

**Repair (Lamarckian).** A sampled point over the budget is repaired onto it as in every
black-box controller; the repaired parameters are added to the study with the score *and*
the sampled trial's CMA-ES bookkeeping (its ``generation`` and, when the sampler stored one
there, its pickled optimizer), so the repaired point is what CMA-ES's update learns from
(Lamarckian repair; the sampled trial is ``FAIL``, which CMA-ES ignores). Without it a tight
budget would leave most of each generation unscored, and CMA-ES would keep redrawing its
first distribution: random search again.

Citations: Nikolaus Hansen, Andreas Ostermeier, "Completely Derandomized Self-Adaptation in
Evolution Strategies", Evolutionary Computation 9(2), 2001; Nikolaus Hansen, "The CMA
Evolution Strategy: A Tutorial", arXiv:1604.00772; via Optuna (Akiba et al., KDD 2019).
"""

from __future__ import annotations

from typing import Any, ClassVar

import optuna
from optuna.distributions import BaseDistribution, IntDistribution

from embsearch.controllers.black_box import BlackBoxController
from embsearch.controllers.black_box_params import BLACK_BOX_SPECS
from embsearch.controllers.param_spec import Param
from embsearch.search_spaces.base import SearchSpace


class CmaEs(BlackBoxController):
    """CMA-ES over the sorted candidate-dim index of each (field, group) (Optuna's
    CmaEsSampler; the module docstring gives the encoding and the repair)."""

    name = "cmaes"
    paper = (
        "Nikolaus Hansen, Andreas Ostermeier. Completely Derandomized Self-Adaptation in "
        "Evolution Strategies. Evolutionary Computation 9(2), 2001; via Optuna (Takuya Akiba "
        "et al. Optuna: A Next-generation Hyperparameter Optimization Framework. KDD 2019)"
    )
    supported_spaces = ("field_dims", "feature_dims")
    carried_prefixes = ("cma:", "sepcma:")  # CmaEsSampler's generation and optimizer
    param_specs: ClassVar[dict[str, Param]] = {
        **BLACK_BOX_SPECS,
        "popsize": Param(
            None,
            "int",
            "candidates per CMA-ES generation (None: 4 + floor(3 ln n), n the blocks)",
            2,
            optional=True,
        ),
        "sigma0": Param(
            None,
            "float",
            "initial step size in index units scaled to [0, 1] (None: Optuna's, 1/6)",
            0.0,
            optional=True,
            open_low=True,
        ),
        "n_startup_trials": Param(
            1, "int", "independent (uniform) trials before CMA-ES starts (Optuna's)", 0
        ),
        "separable": Param(
            False,
            "bool",
            "sep-CMA-ES: a diagonal covariance (Ros and Hansen 2008), for many blocks",
        ),
    }

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        sigma0 = self.config["sigma0"]
        return optuna.samplers.CmaEsSampler(
            sigma0=None if sigma0 is None else float(sigma0),
            n_startup_trials=int(self.config["n_startup_trials"]),
            popsize=self.config["popsize"],
            use_separable_cma=bool(self.config["separable"]),
            seed=seed,
            warn_independent_sampling=True,
        )

    # -- the index encoding ------------------------------------------------------------------
    def distribution(self, space: SearchSpace, f: int = 0, g: int = 0) -> BaseDistribution:
        return IntDistribution(0, len(space.candidates) - 1)  # dims-only: every block alike

    def suggest(
        self, trial: optuna.trial.Trial, name: str, space: SearchSpace, f: int = 0, g: int = 0
    ) -> int:
        dims = sorted(space.candidates)
        return int(dims[trial.suggest_int(name, 0, len(dims) - 1)])

    def encode(self, space: SearchSpace, dim: int) -> Any:
        return sorted(space.candidates).index(int(dim))

    def decode(self, space: SearchSpace, value: Any) -> int:
        return int(sorted(space.candidates)[int(value)])
