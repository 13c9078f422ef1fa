"""NIS's policy (:mod:`embsearch.controllers.nis`): one categorical distribution per (field,
group) slot over how many blocks it keeps, sampled under the byte budget, trained by
REINFORCE (the advantage: against the batch's other samples, or a moving average).

*Masked sampling* (issue 23, item 4): the slots are visited in a random order; each slot's
options whose extra bytes (over the slot's cheapest option) exceed what is left once every
later slot keeps its cheapest option are masked with a large finite negative logit, so
every sample fits the budget and no log-probability is ``-inf``. The log-probability of a
sample is recomputed from its choices and visiting order (:meth:`BlockPolicy.log_prob`),
so ask/tell can sample first and learn later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

ADVANTAGES = ("moving", "batch")
MASKED = -1e9  # logit of an option the budget rules out (finite: no -inf, no NaN)


class BlockPolicy:
    """``costs[s, o]``: bytes of slot ``s`` keeping option ``o``; samples fit ``budget``.

    ``lr``: Adam's step on the logits; ``advantage``: ``'moving'`` compares each sample's
    reward with the moving average of earlier rewards (``baseline_decay``), ``'batch'`` with
    the mean of the same batch's other samples (leave-one-out) and divides by the batch's
    standard deviation, so the step does not depend on the rewards' scale or drift;
    ``entropy``: weight of an entropy bonus (0: none)."""

    def __init__(
        self,
        costs: np.ndarray,
        budget: int,
        *,
        lr: float = 0.05,
        baseline_decay: float = 0.9,
        entropy: float = 0.0,
        advantage: str = "moving",
        seed: int = 0,
    ) -> None:
        costs = np.asarray(costs, dtype=np.float64)
        self.n_slots, self.n_options = costs.shape
        base = costs.min(1)
        self.extra = torch.as_tensor(costs - base[:, None])  # bytes over the cheapest option
        self.slack = float(budget) - float(base.sum())
        if self.slack < 0:
            raise ValueError(f"budget {budget} B is below the cheapest selection {base.sum()} B")
        self.logits = torch.nn.Parameter(torch.zeros(self.n_slots, self.n_options))
        self.opt = torch.optim.Adam([self.logits], lr=float(lr))
        self.decay = float(baseline_decay)
        self.entropy = float(entropy)
        if advantage not in ADVANTAGES:
            raise ValueError(f"advantage must be one of {ADVANTAGES}, got {advantage!r}")
        self.advantage = advantage
        self.baseline: float | None = None
        self.updates = 0
        self.generator = torch.Generator().manual_seed(int(seed))

    # -- sampling -------------------------------------------------------------------------------
    def _walk(
        self, n: int, order: torch.Tensor, choices: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Visit the slots in ``order`` for ``n`` samples, masking what the budget rules out;
        draw each choice (``choices`` None) or take it from ``choices``. Returns the choices
        ``[n, n_slots]`` and their log-probabilities ``[n]`` (with grad if enabled)."""
        left = torch.full((n,), self.slack, dtype=torch.float64)
        picked = torch.zeros(n, self.n_slots, dtype=torch.long) if choices is None else choices
        logp = torch.zeros(n)
        for s in order.tolist():
            ok = self.extra[s].unsqueeze(0) <= left.unsqueeze(1) + 1e-9  # [n, options]
            lp = torch.log_softmax(torch.where(ok, self.logits[s], MASKED), -1)
            if choices is None:
                pick = torch.multinomial(lp.detach().exp(), 1, generator=self.generator)[:, 0]
                picked[:, s] = pick
            pick = picked[:, s]
            logp = logp + lp.gather(1, pick[:, None])[:, 0]
            left = left - self.extra[s][pick]
        return picked, logp

    @torch.no_grad()
    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` samples within the budget: option indices ``[n, n_slots]`` and the slot
        order they were drawn in (one random order for the ``n``)."""
        order = torch.randperm(self.n_slots, generator=self.generator)
        picked, _ = self._walk(n, order, None)
        return picked, order

    def log_prob(self, choices: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
        """Log-probabilities ``[n]`` (with grad) of ``choices`` drawn in ``order``."""
        return self._walk(len(choices), order, choices)[1]

    # -- learning -------------------------------------------------------------------------------
    def update(
        self, batches: Sequence[tuple[torch.Tensor, torch.Tensor]], rewards: Sequence[float]
    ) -> dict[str, float]:
        """One REINFORCE step: ``batches`` are (choices, order) pairs whose rows, in order,
        got ``rewards`` (finite). Loss ``-mean(A log pi)``: ``A = R - b`` with ``b`` the moving
        average of earlier rewards (this step's mean on the first), or with ``advantage='batch'``
        ``A = (R - mean of the others) / std``; then ``b`` moves towards this mean."""
        r = torch.as_tensor(np.asarray(rewards, dtype=np.float64), dtype=torch.float32)
        if not bool(torch.isfinite(r).all()):
            raise ValueError("internal: a non-finite reward reached the policy")
        logp = torch.cat([self.log_prob(c, o) for c, o in batches])
        mean = float(r.mean())
        baseline = mean if self.baseline is None else self.baseline
        if self.advantage == "batch" and len(r) > 1:
            # leave-one-out batch mean, scaled by the batch's spread; equal rewards have a
            # zero advantage (not the leave-one-out mean's rounding over a zero spread)
            others = (r.sum() - r) / (len(r) - 1)
            adv = (r - others) / (r.std() + 1e-8) if bool(r.max() > r.min()) else 0.0 * r
        else:
            adv = r - baseline
        loss = -(adv * logp).mean()
        if self.entropy:
            p = torch.softmax(self.logits, -1)
            loss = loss + self.entropy * (p * torch.log_softmax(self.logits, -1)).sum(-1).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.baseline = self.decay * baseline + (1.0 - self.decay) * mean
        self.updates += 1
        return {"reward": mean, "baseline": self.baseline, "loss": float(loss.detach())}

    def probabilities(self) -> np.ndarray:
        """``[n_slots, n_options]``: the unmasked policy's probabilities."""
        return torch.softmax(self.logits.detach(), -1).numpy()

    def log_probabilities(self) -> np.ndarray:
        return torch.log_softmax(self.logits.detach(), -1).double().numpy()

    # -- resume -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What the policy learned and will draw next: its logits, Adam's state, the moving
        baseline, the update count and its generator (a resume's checkpoint)."""
        return {
            "logits": self.logits.detach().clone(),
            "opt": self.opt.state_dict(),
            "baseline": self.baseline,
            "updates": self.updates,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back what :meth:`state_dict` took (a policy built with the same arguments)."""
        with torch.no_grad():
            self.logits.copy_(state["logits"])
        self.opt.load_state_dict(state["opt"])
        self.baseline = None if state["baseline"] is None else float(state["baseline"])
        self.updates = int(state["updates"])
        self.generator.set_state(state["generator"])
