import pytest

from embsearch.testing import small_dataset


@pytest.fixture(scope="session")
def small_ds():
    return small_dataset()
