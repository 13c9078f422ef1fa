"""One conformance suite over every registered controller."""

import pytest

from embsearch.controllers.registry import available, get_controller
from embsearch.testing import check_controller

# controllers whose plans come from a learned signal through a discretisation they can
# rerun on a null one (issue 18)
LEARNING = {
    "autodim",
    "autoias",
    "autoemb",
    "cmaes",
    "dnis",
    "esapn",
    "nis",
    "nsga2",
    "optembed",
    "random",
    "rule",
    "tpe",
}


@pytest.mark.parametrize("name", sorted(available()))
def test_controller_conforms(name):
    report = check_controller(get_controller(name))
    if name in LEARNING:  # the null plan was recomputed and matches the plans' records
        assert report["null_signal"]
        assert len(report["null_agreement"]) == 2
        assert all(0.0 <= s <= 1.0 for s in report["null_agreement"])


def test_example_custom_controller_conforms():
    from examples.custom_controller import MutualInfo

    check_controller(MutualInfo)


def _composed_claims():
    from embsearch.search_spaces import COMPOSED_SPACES

    return [
        (name, space)
        for name in sorted(available())
        for space in get_controller(name).supported_spaces
        if space in COMPOSED_SPACES
    ]


@pytest.mark.parametrize(("name", "space"), _composed_claims())
def test_controller_conforms_in_every_composed_space_it_claims(name, space):
    # fp32 -> int8 alone keeps at least 3/8 of a dim-16 table (8 B of scale and offset a row)
    budgets = ("40%", "60%") if space == "precision" else ("15%", "40%")
    cls = get_controller(name)
    params = {"trials": 12} if "trials" in cls.param_specs else {}  # a test's length
    # a sampler's best-scored trial in a composed space may be small (most draws share rows
    # and the 1-epoch supernet's proxy is noisy): a quarter of the budget at least
    min_use = 0.25 if "trials" in cls.param_specs else 0.5
    report = check_controller(cls, params, space=space, budgets=budgets, min_use=min_use)
    if name in LEARNING:
        assert report["null_signal"]
