"""TPE over a search space's blocks: Optuna's Tree-structured Parzen Estimator drives the
black-box ask/tell (:mod:`embsearch.controllers.black_box`)."""

from __future__ import annotations

from typing import ClassVar

import optuna

from embsearch.controllers.black_box import BlackBoxController
from embsearch.controllers.black_box_params import BLACK_BOX_SPECS
from embsearch.controllers.param_spec import Param
from embsearch.search_spaces import COMPOSED_SPACES


class TPE(BlackBoxController):
    """Tree-structured Parzen Estimator over per-(field, group) dims (Optuna's TPESampler)."""

    name = "tpe"
    paper = (
        "James Bergstra, Remi Bardenet, Yoshua Bengio, Balazs Kegl. Algorithms for "
        "Hyper-Parameter Optimization. NeurIPS 2011; via Optuna (Takuya Akiba, Shotaro Sano, "
        "Toshihiko Yanase, Takeru Ohta, Masanori Koyama. Optuna: A Next-generation "
        "Hyperparameter Optimization Framework. KDD 2019)"
    )
    supported_spaces = ("field_dims", "feature_dims", *COMPOSED_SPACES)
    param_specs: ClassVar[dict[str, Param]] = {
        **BLACK_BOX_SPECS,
        "n_startup_trials": Param(
            16, "int", "random trials before TPE models the scores (Optuna's n_startup_trials)", 0
        ),
        "multivariate": Param(
            True,
            "bool",
            "model the parameters jointly (Optuna's multivariate TPE) instead of one at a time",
        ),
        "n_ei_candidates": Param(
            24, "int", "samples from the good-trials density TPE ranks per trial", 1
        ),
    }

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        import warnings

        with warnings.catch_warnings():  # multivariate is "experimental" in Optuna's words
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                n_startup_trials=int(self.config["n_startup_trials"]),
                n_ei_candidates=int(self.config["n_ei_candidates"]),
                multivariate=bool(self.config["multivariate"]),
                seed=seed,
            )
