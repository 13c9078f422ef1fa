"""One conformance suite over every registered controller."""

import pytest

from embsearch.controllers.registry import available, get_controller
from embsearch.testing import check_controller


@pytest.mark.parametrize("name", sorted(available()))
def test_controller_conforms(name):
    check_controller(get_controller(name))


def test_example_custom_controller_conforms():
    from examples.custom_controller import MutualInfo

    check_controller(MutualInfo)
