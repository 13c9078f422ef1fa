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

Cost (issue 23: a streaming pass at most 1.5x a plain epoch). The networks are tiny (a
``[fields, 16, 6, 32]`` hidden layer), so autograd's per-operation overhead was most of
their update. :meth:`SizePolicy.evaluate` computes the table once per batch without a
graph, keeping its hidden layer, and :func:`reinforce_step` takes the REINFORCE gradient
analytically through the same ATen kernels autograd's backward calls (the gather's
scatter-add, ``_log_softmax_backward_data``, the ``index_select``'s ``index_add``, the
einsum's two ``bmm``, ``tanh_backward`` and the broadcasts' sums), in the same order: the
gradients are autograd's bit for bit (tests/test_esapn_walk.py), so the pass is unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from embsearch.controllers.nis_policy import MASKED  # a ruled-out action's finite logit

KEEP, ENLARGE = 0, 1
_KEEP_OPEN = torch.tensor([True, False])  # keep is always open; enlarge where it can grow


def frequency_bucket(counts: torch.Tensor, buckets: int) -> torch.Tensor:
    """``floor(log2(1 + count))``, capped at ``buckets - 1``."""
    return torch.log2(counts.double() + 1.0).floor().long().clamp(0, buckets - 1)


@dataclass
class PolicyTable:
    """The policies at their current weights (:meth:`SizePolicy.evaluate`): the logits of
    every state, ``[fields, buckets, sizes, 2]``, the hidden layer they came from
    (``[fields, buckets, sizes, hidden]``, for :func:`reinforce_step`'s gradient), and
    :meth:`SizePolicy.log_probs` of every state (``log_probs[g, row]``, ``row`` its
    :meth:`~SizePolicy.flat_index`, ``g`` whether it can grow; ``probs``: their ``exp``).
    ``log_softmax`` and ``exp`` compute each row alone, so the rows equal those the
    states' own calls give, bit for bit."""

    logits: torch.Tensor
    hidden: torch.Tensor
    log_probs: np.ndarray  # float32 [2, rows, 2]
    probs: np.ndarray  # float32 [2, rows, 2]

    def rows(self, flat: np.ndarray, can_grow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The log-probabilities and probabilities of the states at ``flat``, ``[n, 2]``."""
        g = can_grow.astype(np.intp)
        return self.log_probs[g, flat], self.probs[g, flat]


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

    def _hidden(self) -> torch.Tensor:
        return torch.tanh(
            self.freq[:, :, None, :] + self.size[:, None, :, :] + self.bias[:, None, None]
        )

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        # einsum("fbsh,fha->fbsa", h, out) as the one bmm einsum runs (its parsing cost more)
        f, b, s, hidden = h.shape
        return (
            h.view(f, b * s, hidden).bmm(self.out).view(f, b, s, 2) + self.out_bias[:, None, None]
        )

    def table(self) -> torch.Tensor:
        """Logits of every state, ``[fields, buckets, sizes, 2]`` (with grad)."""
        return self._logits(self._hidden())

    @torch.no_grad()
    def evaluate(self) -> PolicyTable:
        """:meth:`table`'s logits (the same values, no graph), the hidden layer and every
        state's log-probabilities, masked and not."""
        h = self._hidden()
        logits = self._logits(h)
        flat = logits.reshape(-1, 2)
        both = torch.cat([torch.where(_KEEP_OPEN, flat, MASKED), flat])
        lp = torch.log_softmax(both, -1)
        shape = (2, len(flat), 2)
        return PolicyTable(logits, h, lp.numpy().reshape(shape), lp.exp().numpy().reshape(shape))

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
        return self._log_probs_at(self.flat_index(fields, buckets, sizes), can_grow, table)

    def flat_index(self, fields: Any, buckets: Any, sizes: Any) -> Any:
        """Each state's row in the table's ``reshape(-1, 2)`` (tensors or numpy arrays)."""
        return (fields * self.buckets + buckets) * self.sizes + sizes

    @staticmethod
    def _log_probs_at(
        flat: torch.Tensor, can_grow: torch.Tensor, table: torch.Tensor
    ) -> torch.Tensor:
        # index_select: its backward is one index_add
        logits = table.reshape(-1, 2).index_select(0, flat)
        return torch.log_softmax(torch.where(_open(can_grow), logits, MASKED), -1)

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

    def sample_rows(self, flat: np.ndarray, can_grow: np.ndarray, table: PolicyTable) -> np.ndarray:
        """:meth:`sample` of the states at the table's rows ``flat`` (:meth:`flat_index`),
        from the :meth:`evaluate` table, on numpy: ``torch.multinomial``
        of one draw from each row is ``argmax(p / q)``, ``q`` an ``Exp(1)`` draw per entry
        from the generator (the same draws, the same actions)."""
        p = table.rows(flat, can_grow)[1]
        q = torch.empty(p.shape).exponential_(1, generator=self.generator).numpy()
        return np.argmax(p / q, 1)

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
    table: PolicyTable | None = None,
) -> float:
    """One REINFORCE step: loss ``-mean(A * log pi(a | s))``; returns the loss. The
    advantages (on the CPU) must be finite (checked). ``table``: :meth:`SizePolicy.evaluate`
    at the policy's current weights, if the caller has it. The gradient is autograd's, bit
    for bit, without its graph (the module docstring)."""
    if not np.isfinite(advantages.numpy()).all():
        raise ValueError("internal: a non-finite advantage reached the policy")
    table = policy.evaluate() if table is None else table
    params = [policy.freq, policy.size, policy.bias, policy.out, policy.out_bias]
    with torch.no_grad():
        flat_np = policy.flat_index(*(s.numpy() for s in states[:3]))
        lp = torch.from_numpy(table.rows(flat_np, states[3].numpy())[0])
        flat = torch.from_numpy(flat_np)
        grads = _gradients(policy.out, flat, states[3], actions, advantages, lp, table.hidden)
        adam_step(opt, params, grads)
    taken = lp.numpy()[np.arange(len(actions)), actions.numpy()]
    return -float(np.mean(advantages.numpy() * taken))  # float64: only reported


def _open(can_grow: torch.Tensor) -> torch.Tensor:
    """``[n, 2]``: which of keep/enlarge each state allows (keep always)."""
    return can_grow[:, None] | _KEEP_OPEN


def _gradients(
    out: torch.Tensor,
    flat: torch.Tensor,
    can_grow: torch.Tensor,
    actions: torch.Tensor,
    advantages: torch.Tensor,
    lp: torch.Tensor,
    h: torch.Tensor,
) -> list[torch.Tensor]:
    """The loss's gradient with respect to ``freq, size, bias, out, out_bias``: autograd's
    backward of :meth:`SizePolicy.log_probs` over :meth:`SizePolicy.table`, step by step
    (``out``: the output weights; ``flat``: the states' table rows; ``lp``: their
    log-probabilities; ``h``: the table's hidden layer)."""
    n_fields, n_b, n_s, hidden = h.shape
    # mean, negation and the product with A: d loss / d log pi(a | s) = (-1 / n) * A, in
    # float32 as torch; then the gather's backward, a scatter-add into zeros (numpy: the
    # same IEEE products and sums, fewer dispatches)
    d_taken = advantages.numpy().astype(np.float32) * (np.float32(-1.0) / np.float32(len(lp)))
    d_lp = np.zeros((len(lp), 2), dtype=np.float32)
    d_lp[np.arange(len(lp)), actions.numpy()] += d_taken
    d_in = torch._log_softmax_backward_data(torch.from_numpy(d_lp), lp, -1, lp.dtype)
    d_logits = torch.where(_open(can_grow), d_in, 0.0)  # the masked enlarge: no gradient
    d_table = torch.zeros(n_fields * n_b * n_s, 2).index_add_(0, flat, d_logits)  # index_select
    d_table3 = d_table.view(n_fields, n_b * n_s, 2)
    # the table's product is one bmm of [fields, buckets * sizes, hidden] by [fields, hidden, 2]
    d_out = h.view(n_fields, n_b * n_s, hidden).transpose(1, 2).bmm(d_table3)
    d_h = d_table3.bmm(out.transpose(1, 2)).view(h.shape)
    d_pre = torch.ops.aten.tanh_backward(d_h, h)
    d_table4 = d_table.view(n_fields, n_b, n_s, 2)
    return [d_pre.sum(2), d_pre.sum(1), d_pre.sum([1, 2]), d_out, d_table4.sum([1, 2])]


def adam_step(opt: torch.optim.Optimizer, params: list[torch.Tensor], grads: list) -> None:
    """``opt.step()`` with ``grads`` as the gradients of ``params``. A fused Adam over exactly
    these parameters, with its state made by a first step, runs what ``Adam.step`` runs
    for it (the steps' increment, then one ``torch._fused_adam_``), without its Python
    bookkeeping (more than the kernel for the policies' five small tensors); anything else
    sets the gradients and calls ``opt.step()``."""
    group = opt.param_groups[0]
    states = [opt.state.get(p) for p in params]
    if (
        type(opt) is torch.optim.Adam
        and len(opt.param_groups) == 1
        and group.get("fused")
        and all(states)
        and {id(p) for p in group["params"]} == {id(p) for p in params}
        and not any(group.get(k) for k in _SLOW_ADAM)
        and not isinstance(group["lr"], torch.Tensor)
    ):
        steps = [s["step"] for s in states]  # type: ignore[index]
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(
            params,
            grads,
            [s["exp_avg"] for s in states],  # type: ignore[index]
            [s["exp_avg_sq"] for s in states],  # type: ignore[index]
            [],
            steps,
            amsgrad=False,
            lr=group["lr"],
            beta1=group["betas"][0],
            beta2=group["betas"][1],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=False,
            grad_scale=None,
            found_inf=None,
        )
        return
    opt.zero_grad(set_to_none=True)
    for p, g in zip(params, grads):
        p.grad = g
    opt.step()


# Adam options the direct call does not take
_SLOW_ADAM = ("amsgrad", "maximize", "capturable", "differentiable", "decoupled_weight_decay")


def field_advantages(rewards: torch.Tensor, fields: torch.Tensor, n_fields: int) -> torch.Tensor:
    """Each reward minus its field's mean in the batch, divided by that field's spread
    (zero where a field's rewards are all equal or it has one)."""
    f, r = fields.numpy(), rewards.double().numpy()  # numpy: a batch's few hundred rewards
    n = np.maximum(np.bincount(f, minlength=n_fields), 1)  # sums in order, as index_add_
    dev = r - (np.bincount(f, r, n_fields) / n)[f]
    std = np.sqrt(np.bincount(f, dev * dev, n_fields) / n)[f]
    return torch.from_numpy(np.where(std > 1e-12, dev / np.maximum(std, 1e-12), 0.0))
