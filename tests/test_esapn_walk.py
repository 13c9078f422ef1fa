"""ESAPN's walk on numpy views (issue 23's pass cost): each shortcut gives exactly what the
torch operations it replaced gave, so the rewards, decisions and plans are unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embsearch.controllers.esapn_policy import (
    SizePolicy,
    _gradients,
    field_advantages,
    frequency_bucket,
    reinforce_step,
)
from embsearch.controllers.esapn_walk import Walk, WalkSettings, _buckets, _distinct, _per_id
from embsearch.train.trainer import make_adam


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


def _table_by_einsum(pol):
    """:meth:`SizePolicy.table` as it was written before the pass-cost work."""
    h = torch.tanh(pol.freq[:, :, None, :] + pol.size[:, None, :, :] + pol.bias[:, None, None])
    return torch.einsum("fbsh,fha->fbsa", h, pol.out) + pol.out_bias[:, None, None]


def _autograd_step(pol, opt, states, actions, adv) -> None:
    """The REINFORCE step by autograd through the einsum table (before the pass-cost work)."""
    lp = pol.log_probs(*states, _table_by_einsum(pol)).gather(1, actions[:, None])[:, 0]
    loss = -(adv.float() * lp).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


@pytest.mark.parametrize("seed", range(6))
def test_analytic_reinforce_step_equals_autograd_bit_for_bit(seed):
    """Gradients and the weights after each of four Adam steps (the first by ``opt.step()``,
    the others by the direct fused call), over random states (some masked), actions and
    advantages, fields 1-13 and up to 600 decisions."""
    g = torch.Generator().manual_seed(seed)
    n_fields = int(torch.randint(1, 14, (1,), generator=g))
    policies = [SizePolicy(n_fields, 16, 6, hidden=32, seed=seed) for _ in range(2)]
    with torch.no_grad():
        for p, q in zip(*(pol.parameters() for pol in policies)):
            p.add_(torch.randn(p.shape, generator=g) * 0.3)
            q.copy_(p)
    opts = [make_adam(pol.parameters(), 0.01) for pol in policies]
    for _ in range(4):
        n = int(torch.randint(1, 600, (1,), generator=g))
        states = (
            torch.randint(n_fields, (n,), generator=g),
            torch.randint(16, (n,), generator=g),
            torch.randint(6, (n,), generator=g),
            torch.rand(n, generator=g) < 0.8,
        )
        actions = torch.randint(2, (n,), generator=g) * states[3]
        adv = torch.randn(n, generator=g, dtype=torch.float64)
        pol, table = policies[1], policies[1].evaluate()
        with torch.no_grad():
            flat = pol.flat_index(*states[:3])
            lp = pol._log_probs_at(flat, states[3], table.logits)
            grads = _gradients(pol.out, flat, states[3], actions, adv, lp, table.hidden)
        _autograd_step(policies[0], opts[0], states, actions, adv)
        assert all(torch.equal(p.grad, d) for p, d in zip(policies[0].parameters(), grads))
        reinforce_step(pol, opts[1], states, actions, adv, table)
        assert all(torch.equal(p, q) for p, q in zip(*(pol.parameters() for pol in policies)))
    assert opts[1].state_dict()["state"][0]["step"] == 4
    with torch.no_grad():
        assert torch.equal(_table_by_einsum(policies[0]), policies[1].evaluate().logits)
    assert torch.equal(policies[0].table(), policies[1].evaluate().logits)


def test_growing_supernet_mask_lookup_equals_the_broadcast_compare():
    from embsearch.embeddings.supernets import GrowingSupernet
    from embsearch.embeddings.supernets.masked import MaskedSupernet

    emb = GrowingSupernet(8, [1, 2, 4, 8], [[(0, 30)], [(0, 20)]], ["a", "b"], 1, seed=0)
    dims = torch.tensor([1, 2, 4, 8])[torch.randint(0, 4, (64, 2))]
    assert torch.equal(emb.column_mask(dims), MaskedSupernet.column_mask(emb, dims))
    x = torch.stack([torch.randint(0, 30, (64,)), torch.randint(0, 20, (64,))], 1)
    emb.grow(torch.arange(0, 50, 3), torch.full((17,), 4))
    with torch.no_grad():
        emb.table.normal_()  # every column non-zero: the mask decides
    rows = emb.rows_of(x)
    full = emb.table.index_select(0, rows.reshape(-1)).view(64, 2, 8)
    assert torch.equal(emb(x), full * MaskedSupernet.column_mask(emb, emb.row_dims[rows]))


def test_sampling_from_the_evaluated_table_equals_multinomial():
    """:meth:`SizePolicy.sample_rows` (numpy, the table's precomputed rows) draws the same
    actions as ``torch.multinomial`` over the states' own log-probabilities, and leaves the
    generator in the same state; a masked enlarge is never drawn."""
    pols = [SizePolicy(5, 16, 6, hidden=32, seed=3) for _ in range(2)]
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        n = int(torch.randint(1, 700, (1,), generator=g))
        f, b, s = (torch.randint(k, (n,), generator=g) for k in (5, 16, 6))
        grow = torch.rand(n, generator=g) < 0.7
        want = pols[0].sample(f, b, s, grow)
        table = pols[1].evaluate()
        got = pols[1].sample_rows(pols[1].flat_index(f, b, s).numpy(), grow.numpy(), table)
        assert np.array_equal(got, want.numpy()) and not got[~grow.numpy()].any()
        assert torch.equal(pols[0].generator.get_state(), pols[1].generator.get_state())


def test_probe_dims_per_distinct_row_equal_the_torch_formula():
    from embsearch.controllers.esapn_probe import probe_dims
    from embsearch.controllers.esapn_walk import ENLARGE, _probe_dims
    from embsearch.embeddings.supernets import GrowingSupernet

    g = torch.Generator().manual_seed(0)
    emb = GrowingSupernet(8, [1, 2, 4, 8], [[(0, 30)], [(0, 20)]], ["a", "b"], 1, seed=0)
    values = torch.tensor([1, 2, 4, 8])
    state = Walk(torch.tensor([1.0, 2.0, 4.0, 8.0]), 1e9, emb.field_of_row.clone())
    state.pending = torch.randint(-1, 2, (50,), generator=g)
    state.pending_state[:, 1] = torch.randint(0, 4, (50,), generator=g)
    emb.grow(torch.arange(50), values[torch.randint(0, 4, (50,), generator=g)])
    x = torch.stack(
        [torch.randint(0, 30, (64,), generator=g), torch.randint(0, 20, (64,), generator=g)], 1
    )
    rows = (x + emb.offsets).reshape(-1)
    u, inv, _ = _distinct(rows, 50)
    probed = torch.nonzero(state.pending[rows] == ENLARGE)[:, 0]
    want = probe_dims(emb, x, rows[probed], state.pending_state[:, 1], values)
    assert torch.equal(_probe_dims(emb, x, rows, (u, inv), state, values), want)
