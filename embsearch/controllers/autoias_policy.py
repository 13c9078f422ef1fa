"""AutoIAS's architecture generator (:mod:`embsearch.controllers.autoias`): a distribution
over whole architectures, component by component, each conditioned on the components
generated before it (the paper's Architecture Generator Network models exactly these
dependencies), trained by REINFORCE on the validation reward.

1. *Embedding dims*: one categorical per field over the candidate dims, sampled under the
   byte budget (NIS's :class:`~embsearch.controllers.nis_policy.BlockPolicy`: options that
   cannot fit once every later field keeps its cheapest dim are masked with a finite
   logit, so every sample fits and no log-probability is ``-inf``).
2. *Interactions*, given the dims: pair ``p = (i, j)`` picks op ``k`` with logit
   ``A[p, k] + L[p, dim option of i, k] + R[p, dim option of j, k]``.
3. *MLP widths*, layer by layer, given the previous layer's width: logit ``M[l, prev, k]``.

The paper's generator is a neural network fed the earlier components' choices; here each
conditional is a learned table indexed by those choices (the same conditional structure
without a shared hidden layer, which the small action spaces here do not need).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from embsearch.controllers.nis_policy import BlockPolicy

TABLES = ("op_logits", "op_given_left", "op_given_right", "width_logits")  # besides the dims'


@dataclass
class Architectures:
    """A batch of ``n`` sampled architectures: dim options ``[n, F]`` and the order the
    fields were drawn in, op indices ``[n, P]``, MLP width options ``[n, L]``."""

    dims: torch.Tensor
    order: torch.Tensor
    ops: torch.Tensor
    widths: torch.Tensor

    def __len__(self) -> int:
        return int(self.dims.shape[0])

    def row(self, i: int) -> tuple[list[int], list[int], list[int]]:
        return self.dims[i].tolist(), self.ops[i].tolist(), self.widths[i].tolist()


def batch_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """Each reward minus the mean of the batch's other rewards, divided by the batch's
    spread (NIS's ``advantage='batch'``); all equal: zero."""
    if len(rewards) < 2 or not bool(rewards.max() > rewards.min()):
        return torch.zeros_like(rewards)
    others = (rewards.sum() - rewards) / (len(rewards) - 1)
    return (rewards - others) / (rewards.std() + 1e-8)


def recalibrated_logloss(logits: torch.Tensor, y: torch.Tensor, steps: int = 10) -> float:
    """The log loss of ``sigmoid(a * logits + b)`` at the ``(a, b)`` that minimise it on
    these rows (Platt scaling: Newton steps on the standardised logits from the base rate;
    the best step kept): the log loss less what an affine change of the logits fixes."""
    z, t = logits.detach().double().cpu().numpy(), y.detach().double().cpu().numpy()
    z = (z - z.mean()) / max(float(z.std()), 1e-12)
    rate = min(max(float(t.mean()), 1e-6), 1 - 1e-6)
    a, b = 0.0, math.log(rate / (1 - rate))

    def loss(a: float, b: float) -> float:
        s = a * z + b  # the log loss of logits s: softplus(s) - t * s
        return float(np.mean(np.logaddexp(0.0, s) - t * s))

    best = loss(a, b)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(a * z + b)))
        r, v = p - t, p * (1 - p) + 1e-12
        gz, g1 = float(r @ z), float(r.sum())
        hzz, hz1, h11 = float(v @ (z * z)), float(v @ z), float(v.sum())
        det = hzz * h11 - hz1 * hz1
        if not det > 0:
            break
        da, db = (h11 * gz - hz1 * g1) / det, (hzz * g1 - hz1 * gz) / det
        a, b = a - da, b - db
        cur = loss(a, b)
        best = min(best, cur) if math.isfinite(cur) else best
        if abs(da) + abs(db) < 1e-7:
            break
    return best


class ArchitecturePolicy:
    """``costs[f, c]``: bytes of field ``f`` at dim option ``c``; samples fit ``budget``.
    ``pairs``: the field pairs ``(i, j)``; ``n_ops`` interaction ops; ``layers`` MLP layers,
    each from ``n_widths`` width options. ``lr``: Adam's step on every table."""

    def __init__(
        self,
        costs: np.ndarray,
        budget: int,
        pairs: Sequence[tuple[int, int]],
        n_ops: int,
        layers: int,
        n_widths: int,
        *,
        lr: float = 0.1,
        seed: int = 0,
    ) -> None:
        self.dims = BlockPolicy(costs, budget, lr=lr, advantage="batch", seed=seed)
        self.n_dims = self.dims.n_options
        idx = torch.tensor(list(pairs), dtype=torch.long).reshape(-1, 2)
        self.left, self.right = idx[:, 0], idx[:, 1]
        self.op_logits = torch.nn.Parameter(torch.zeros(len(idx), n_ops))
        # each pair's op given its left and right field's dim option
        self.op_given_left = torch.nn.Parameter(torch.zeros(len(idx), self.n_dims, n_ops))
        self.op_given_right = torch.nn.Parameter(torch.zeros(len(idx), self.n_dims, n_ops))
        self.layers, self.n_widths = int(layers), int(n_widths)
        # layer l's logits given layer l-1's option (layer 0: the extra row n_widths)
        self.width_logits = torch.nn.Parameter(torch.zeros(self.layers, n_widths + 1, n_widths))
        self.opt = torch.optim.Adam(
            [
                self.dims.logits,
                self.op_logits,
                self.op_given_left,
                self.op_given_right,
                self.width_logits,
            ],
            lr=float(lr),
        )
        self.generator = self.dims.generator
        self.updates = 0

    # -- the conditionals -------------------------------------------------------------------
    def op_log_probs(self, dims: torch.Tensor) -> torch.Tensor:
        """``[n, P, ops]`` log-probabilities of each pair's op given dim options ``[n, F]``."""
        pairs = torch.arange(len(self.left))
        logits = (
            self.op_logits
            + self.op_given_left[pairs, dims[:, self.left]]
            + self.op_given_right[pairs, dims[:, self.right]]
        )
        return torch.log_softmax(logits, -1)

    def width_log_probs(self, prev: torch.Tensor, layer: int) -> torch.Tensor:
        """``[n, widths]`` log-probabilities of layer ``layer``'s width given ``prev`` ``[n]``."""
        return torch.log_softmax(self.width_logits[layer][prev], -1)

    # -- sampling ---------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int) -> Architectures:
        """``n`` architectures within the budget, each component given the earlier ones."""
        dims, order = self.dims.sample(n)
        # every (pair, left dim, right dim)'s log-probabilities first, then looked up: the
        # same values as op_log_probs(dims), at a fifth of the cost for a batch's examples
        table = torch.log_softmax(
            self.op_logits[:, None, None, :]
            + self.op_given_left[:, :, None, :]
            + self.op_given_right[:, None, :, :],
            -1,
        )
        pairs = torch.arange(len(self.left))
        lp = table[pairs, dims[:, self.left], dims[:, self.right]]
        probs = lp.exp().reshape(-1, self.op_logits.shape[1])
        ops = self._draw(probs)
        widths = torch.zeros(n, self.layers, dtype=torch.long)
        prev = torch.full((n,), self.n_widths, dtype=torch.long)
        for layer in range(self.layers):
            p = self.width_log_probs(prev, layer).exp()
            widths[:, layer] = self._draw(p)
            prev = widths[:, layer]
        return Architectures(dims, order, ops.reshape(n, -1), widths)

    def _draw(self, probs: torch.Tensor) -> torch.Tensor:
        """One option per row of ``probs`` ``[n, k]``, by the inverse of its cumulative
        distribution at a uniform draw (the supernet draws an op for every pair of every
        example of a batch: ``torch.multinomial`` took three times as long)."""
        u = torch.rand(len(probs), 1, generator=self.generator, dtype=probs.dtype)
        return (probs.cumsum(-1)[:, :-1] < u).sum(-1)

    def log_prob(self, arch: Architectures) -> torch.Tensor:
        """``[n]`` log-probabilities (with grad) of sampled architectures."""
        lp = self.dims.log_prob(arch.dims, arch.order)
        lp = lp + self.op_log_probs(arch.dims).gather(2, arch.ops.unsqueeze(-1)).sum((1, 2))
        prev = torch.full((len(arch),), self.n_widths, dtype=torch.long)
        for layer in range(self.layers):
            w = arch.widths[:, layer]
            lp = lp + self.width_log_probs(prev, layer).gather(1, w[:, None])[:, 0]
            prev = w
        return lp

    # -- learning ---------------------------------------------------------------------------
    def update(self, arch: Architectures, rewards: Sequence[float]) -> dict[str, float]:
        """One REINFORCE step, ``-mean(A log pi)`` with the batch advantage; rewards finite."""
        r = torch.as_tensor(np.asarray(rewards, dtype=np.float64), dtype=torch.float32)
        if not bool(torch.isfinite(r).all()):
            raise ValueError("internal: a non-finite reward reached the architecture generator")
        loss = -(batch_advantages(r) * self.log_prob(arch)).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.updates += 1
        return {"reward": float(r.mean()), "loss": float(loss.detach())}

    # -- the most likely architecture -------------------------------------------------------
    @torch.no_grad()
    def best_ops(self, dims: Sequence[int]) -> list[int]:
        """Each pair's most likely op given the dim options ``dims``."""
        d = torch.as_tensor([list(dims)], dtype=torch.long)
        return self.op_log_probs(d)[0].argmax(-1).tolist()

    @torch.no_grad()
    def best_widths(self) -> list[int]:
        """The MLP's width options, each layer's most likely given the previous one's."""
        out, prev = [], torch.tensor([self.n_widths])
        for layer in range(self.layers):
            prev = self.width_log_probs(prev, layer).argmax(-1)
            out.append(int(prev[0]))
        return out

    def dim_log_probs(self) -> np.ndarray:
        """``[F, dim options]``: the dims' (unmasked) log-probabilities."""
        return self.dims.log_probabilities()

    # -- resume -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Every table, Adam's state, the update count and the generator (the dims policy's)."""
        tables = {k: getattr(self, k).detach().clone() for k in TABLES}
        return {**tables, "dims": self.dims.state_dict(), "opt": self.opt.state_dict(),
                "updates": self.updates}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back what :meth:`state_dict` took (a generator built with the same arguments)."""
        self.dims.load_state_dict(state["dims"])
        with torch.no_grad():
            for k in TABLES:
                getattr(self, k).copy_(state[k])
        self.opt.load_state_dict(state["opt"])
        self.updates = int(state["updates"])
