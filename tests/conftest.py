import pytest
import torch

from embsearch.testing import small_dataset


@pytest.fixture(scope="session")
def small_ds():
    return small_dataset()


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's searches: the machine's cores are shared, and these
    models are small (modules opt in with ``pytest.mark.usefixtures("one_thread")``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _baseline_cache(tmp_path_factory, monkeypatch):
    """Each test's full-size baselines go to a fresh cache directory, never ~/.cache."""
    monkeypatch.setenv("EMBSEARCH_CACHE", str(tmp_path_factory.mktemp("cache")))
