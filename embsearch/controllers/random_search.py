"""Random search over a search space's blocks: Optuna's RandomSampler drives the black-box
ask/tell (:mod:`embsearch.controllers.black_box`)."""

from __future__ import annotations

import optuna

from embsearch.controllers.black_box import BlackBoxController
from embsearch.search_spaces import COMPOSED_SPACES


class RandomSearch(BlackBoxController):
    """Uniform random candidates (Optuna's RandomSampler), repaired onto the budget."""

    name = "random"
    paper = (
        "James Bergstra, Yoshua Bengio. Random Search for Hyper-Parameter Optimization. JMLR "
        "13, 2012; via Optuna (Akiba et al., KDD 2019)"
    )
    supported_spaces = ("field_dims", "feature_dims", *COMPOSED_SPACES)

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.RandomSampler(seed=seed)
