"""One conformance suite over every registered controller."""

import pytest

from embsearch.controllers.registry import available, get_controller
from embsearch.testing import check_controller

# controllers whose plans come from a learned signal through a discretisation they can
# rerun on a null one (issue 18)
LEARNING = {
    "autodim",
    "autoemb",
    "cmaes",
    "dnis",
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
