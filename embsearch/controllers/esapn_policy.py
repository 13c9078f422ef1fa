"""ESAPN's policy networks (:mod:`embsearch.controllers.esapn`): per field, a small MLP whose
state is an id's frequency so far and its current dim and whose action is *keep* (0) or
*enlarge* (1), trained by REINFORCE.

The paper's policy (its "popularity + current size" state) embeds the raw frequency and
concatenates a one-hot of the current size before a hidden layer and two logits. Here the
frequency enters as its log2 bucket (``log2(1 + count)``, capped at ``buckets - 1``): the
first layer of a one-hot input is a lookup, so the hidden layer is
``tanh(F[field, bucket] + D[field, dim] + b)``. Every field's network is evaluated at once
(``[fields, ...]`` weights). An action the state rules out (enlarge at the largest dim, or
beyond the budget) is masked with a large finite logit: no ``-inf`` reaches an update.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from embsearch.controllers.nis_policy import MASKED  # a ruled-out action's finite logit

KEEP, ENLARGE = 0, 1


def frequency_bucket(counts: torch.Tensor, buckets: int) -> torch.Tensor:
    """``floor(log2(1 + count))``, capped at ``buckets - 1``."""
    return torch.log2(counts.double() + 1.0).floor().long().clamp(0, buckets - 1)


class SizePolicy(nn.Module):
    """``fields`` policy networks over ``buckets`` frequency buckets and ``sizes`` dims."""

    def __init__(
        self, fields: int, buckets: int, sizes: int, hidden: int = 32, seed: int = 0
    ) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(int(seed))
        scale = 1.0 / math.sqrt(2.0)  # two one-hot inputs are on: unit variance in the tanh

        def init(*shape: int, std: float) -> nn.Parameter:
            return nn.Parameter(torch.randn(*shape, generator=g) * std)

        self.freq = init(fields, buckets, hidden, std=scale)
        self.size = init(fields, sizes, hidden, std=scale)
        self.bias = nn.Parameter(torch.zeros(fields, hidden))
        self.out = init(fields, hidden, 2, std=1.0 / math.sqrt(hidden))
        self.out_bias = nn.Parameter(torch.zeros(fields, 2))
        self.buckets, self.sizes = int(buckets), int(sizes)
        self.generator = g

    def table(self) -> torch.Tensor:
        """Logits of every state, ``[fields, buckets, sizes, 2]`` (with grad)."""
        h = torch.tanh(
            self.freq[:, :, None, :] + self.size[:, None, :, :] + self.bias[:, None, None]
        )
        return torch.einsum("fbsh,fha->fbsa", h, self.out) + self.out_bias[:, None, None]

    def log_probs(
        self,
        fields: torch.Tensor,
        buckets: torch.Tensor,
        sizes: torch.Tensor,
        can_grow: torch.Tensor,
        table: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``[n, 2]`` log-probabilities of keep/enlarge in each state; enlarge masked where
        ``can_grow`` is false (then keep has probability 1). ``table``: :meth:`table`, if
        the caller has it (one per step serves the sampling and the update)."""
        table = self.table() if table is None else table
        flat = (fields * self.buckets + buckets) * self.sizes + sizes  # index_select: its
        logits = table.reshape(-1, 2).index_select(0, flat)  # backward is one index_add
        enlarge = torch.where(can_grow, logits[:, ENLARGE], MASKED)
        return torch.log_softmax(torch.stack([logits[:, KEEP], enlarge], -1), -1)

    @torch.no_grad()
    def sample(
        self,
        fields: torch.Tensor,
        buckets: torch.Tensor,
        sizes: torch.Tensor,
        can_grow: torch.Tensor,
        greedy: bool = False,
        table: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """An action per state (``greedy``: the more likely one, keep on a tie)."""
        lp = self.log_probs(fields, buckets, sizes, can_grow, table)
        if greedy:
            return (lp[:, ENLARGE] > lp[:, KEEP]).long()
        return torch.multinomial(lp.exp(), 1, generator=self.generator)[:, 0]

    @torch.no_grad()
    def enlarge_probabilities(self) -> torch.Tensor:
        """``[fields, buckets, sizes]``: the unmasked probability of enlarge."""
        return torch.softmax(self.table(), -1)[..., ENLARGE]


def reinforce_step(
    policy: SizePolicy,
    opt: torch.optim.Optimizer,
    states: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    actions: torch.Tensor,
    advantages: torch.Tensor,
    table: torch.Tensor | None = None,
) -> float:
    """One REINFORCE step: loss ``-mean(A * log pi(a | s))``; returns the loss. The
    advantages must be finite (checked). ``table``: the policy's :meth:`SizePolicy.table`
    at its current weights, with its graph, if the caller has it."""
    if not bool(torch.isfinite(advantages).all()):
        raise ValueError("internal: a non-finite advantage reached the policy")
    lp = policy.log_probs(*states, table).gather(1, actions[:, None])[:, 0]
    loss = -(advantages.float() * lp).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def field_advantages(rewards: torch.Tensor, fields: torch.Tensor, n_fields: int) -> torch.Tensor:
    """Each reward minus its field's mean in the batch, divided by that field's spread
    (zero where a field's rewards are all equal or it has one)."""
    f, r = fields.numpy(), rewards.double().numpy()  # numpy: a batch's few hundred rewards
    n = np.maximum(np.bincount(f, minlength=n_fields), 1)  # sums in order, as index_add_
    dev = r - (np.bincount(f, r, n_fields) / n)[f]
    std = np.sqrt(np.bincount(f, dev * dev, n_fields) / n)[f]
    return torch.from_numpy(np.where(std > 1e-12, dev / np.maximum(std, 1e-12), 0.0))
