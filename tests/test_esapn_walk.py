"""ESAPN's walk on numpy views (issue 23's pass cost): each shortcut gives exactly what the
torch operations it replaced gave, so the rewards, decisions and plans are unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embsearch.controllers.esapn_policy import field_advantages, frequency_bucket
from embsearch.controllers.esapn_walk import Walk, WalkSettings, _buckets, _distinct, _per_id


def _advantages_by_index_add(rewards: torch.Tensor, fields: torch.Tensor, n: int) -> torch.Tensor:
    """The torch formula the numpy one replaced (before the pass-cost work)."""
    r = rewards.double()
    count = torch.zeros(n, dtype=r.dtype).index_add_(0, fields, torch.ones_like(r))
    mean = torch.zeros(n, dtype=r.dtype).index_add_(0, fields, r) / count.clamp(min=1)
    dev = r - mean[fields]
    var = torch.zeros(n, dtype=r.dtype).index_add_(0, fields, dev * dev) / count.clamp(min=1)
    std = var.sqrt()[fields]
    return torch.where(std > 1e-12, dev / std.clamp(min=1e-12), torch.zeros_like(dev))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_field_advantages_equal_the_index_add_formula_bit_for_bit(seed):
    g = torch.Generator().manual_seed(seed)
    n = 400
    fields = torch.randint(0, 5, (n,), generator=g)
    fields[:5] = 6  # a field whose rewards are all equal: advantage 0
    fields[5] = 5  # a field with one reward
    rewards = torch.randn(n, generator=g, dtype=torch.float64) * 1e-3
    rewards[fields == 6] = 0.25
    got = field_advantages(rewards, fields, 8)
    assert torch.equal(got, _advantages_by_index_add(rewards, fields, 8))
    assert float(got[fields == 6].abs().sum()) == 0.0 and float(got[5]) == 0.0


def test_deciding_at_doublings_and_buckets_equal_the_log2_formula():
    """The integer test (``count + 1`` gains a top bit) against ``frequency_bucket``'s
    floating ``log2``, on counts up to 2**40 and around every power of two."""
    g = torch.Generator().manual_seed(0)
    powers = torch.tensor([2**k for k in range(41)])
    counts = torch.cat(
        [powers - 2, powers - 1, powers, torch.randint(0, 2**40, (500,), generator=g)]
    )
    counts = counts.clamp(min=0)
    occurrences = torch.randint(1, 40, (len(counts),), generator=g)
    state = Walk(torch.tensor([1.0, 2.0]), 1e12, torch.zeros(len(counts), dtype=torch.long))
    state.count = counts.clone()
    rows = torch.arange(len(counts))
    crossed = frequency_bucket(counts + occurrences, 64) > frequency_bucket(counts, 64)
    assert state.deciding(rows, occurrences).tolist() == torch.nonzero(crossed)[:, 0].tolist()
    for buckets in (16, 64):
        want = frequency_bucket(counts, buckets).numpy()
        assert np.array_equal(_buckets(counts.numpy(), buckets), want)
    every = Walk(state.row_cost, 1e12, state.field_of_row, WalkSettings(decide_at="every"))
    assert every.deciding(rows, occurrences).tolist() == rows.tolist()


@pytest.mark.parametrize("n_rows", [50, 5000])  # counted, and sorted (a large table)
def test_distinct_rows_and_per_id_losses_equal_torch(n_rows):
    g = torch.Generator().manual_seed(n_rows)
    rows = torch.randint(0, n_rows, (300 * 4,), generator=g)
    u, inv, occ = _distinct(rows, n_rows)
    want = torch.unique(rows, return_inverse=True, return_counts=True)
    assert [t.tolist() for t in (u, inv, occ)] == [t.tolist() for t in want]
    per_row = torch.rand(300, generator=g)
    got = _per_id(per_row, inv, occ, 4)
    ref = torch.zeros(len(occ), dtype=torch.float64).index_add_(
        0, inv, per_row.double().repeat_interleave(4)
    )
    assert torch.equal(got, ref / occ)
