"""Step 3 of RULE (:mod:`.rule`): the performance estimator, a ridge regression from a
block selection to its inherited-weight score, and the sampler of the selections it is fitted
on."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from embsearch.controllers.evolution import fit_budget
from embsearch.search_spaces.base import Candidate, SearchSpace


class EstimatorSampler:
    """Step 3's sampler: random selections repaired onto a target between the space's
    smallest plan and a budget drawn from the search's budgets (the upper half of that
    range, where the search will look), so the estimator learns where it is used."""

    def __init__(
        self,
        name: str,
        space: SearchSpace,
        budgets: Sequence[int],
        n: int,
        rng: np.random.Generator,
    ):
        self.name, self.space, self.budgets, self.left, self.rng = (
            name,
            space,
            list(budgets),
            n,
            rng,
        )
        self.smallest = space.min_bytes()
        self.scored: dict[Candidate, float] = {}
        self.total = n  # the progress display's

    def done(self) -> bool:
        return self.left <= 0

    def ask(self) -> Candidate:
        self.left -= 1
        budget = self.budgets[int(self.rng.integers(len(self.budgets)))]
        target = self.smallest + int((budget - self.smallest) * self.rng.uniform(0.5, 1.0))
        return fit_budget(self.space.sample(self.rng), self.space, target)

    def tell(self, candidate: Candidate, score: float) -> None:
        self.scored[candidate] = score


class RidgeEstimator:
    """Step 3: ridge regression from a block selection to its inherited-weight score.

    Features per (field, group): its dim as a share of the width (``"linear"``, the default:
    few coefficients, good from a few dozen samples) or a one-hot of its block count
    (``"onehot"``: captures diminishing returns, needs more samples).

    ``pooling > 0`` (partial pooling, embsearch's): each feature's coefficient is a shared
    per-field one (the same feature summed over the field's groups) plus the (field, group)'s
    own deviation from it, whose ridge penalty is ``pooling`` times the shared one's; the
    estimator stays linear in the same features (``w`` holds the sums). A (field, group)'s
    coefficient alone is mostly the noise of the rows its samples are scored on (planted
    fixture: fitted on either half of the validation split, they correlate 0.33), while a
    field's groups share the field's informativeness, which pooling estimates from all of them.
    ``pooling = 0`` fits every (field, group) on its own.
    """

    name = "estimator"

    def __init__(
        self,
        levels: Sequence[int],
        ridge: float = 1.0,
        features: str = "linear",
        pooling: float = 0.0,
    ) -> None:
        self.index = {int(d): i for i, d in enumerate(levels)}
        self.top = max(max(self.index), 1)
        self.ridge = float(ridge)
        self.kind = features
        self.pooling = float(pooling)
        self.constant = True
        self.last_metrics: dict[str, float] = {}
        self.pool: np.ndarray | None = None  # [features, field features]: a field's sum

    def features(self, cands: Sequence[Candidate]) -> np.ndarray:
        dims = np.asarray([[int(d) for ds in c for d in ds] for c in cands], dtype=np.int64)
        if self.kind == "linear":
            return dims / self.top
        idx = np.vectorize(self.index.__getitem__, otypes=[np.int64])(dims)
        return np.eye(len(self.index))[idx].reshape(len(dims), -1)

    def pooling_matrix(self, cand: Candidate) -> np.ndarray:
        """``[features, field features]``: 1 where a (field, group)'s feature adds to its
        field's sum of that feature (the same block count, for ``"onehot"``)."""
        per = 1 if self.kind == "linear" else len(self.index)
        fields = [f for f, ds in enumerate(cand) for _ in ds]
        pool = np.zeros((len(fields) * per, len(cand) * per))
        for i, f in enumerate(fields):
            for k in range(per):
                pool[i * per + k, f * per + k] = 1.0
        return pool

    def _solve(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        mx, my = x.mean(0), float(y.mean())
        xc = x - mx
        if self.pool is not None:  # deviations scaled by 1 / sqrt(pooling): that penalty
            scale = 1.0 / math.sqrt(self.pooling)
            xc = np.hstack([xc * scale, xc @ self.pool])
        w = np.linalg.solve(xc.T @ xc + self.ridge * np.eye(xc.shape[1]), xc.T @ (y - my))
        if self.pool is not None:  # back to one coefficient per feature: deviation + field's
            w = scale * w[: x.shape[1]] + self.pool @ w[x.shape[1] :]
        return w, mx, my

    def fit(self, cands: Sequence[Candidate], scores: Sequence[float]) -> dict[str, float | None]:
        """Fit on every finite pair; returns the held-out Spearman correlation of a 3:1 split.
        With no pair (out of time at once) the estimator is a constant."""
        keep = [i for i, s in enumerate(scores) if math.isfinite(s)]
        if not keep:
            return {"samples": 0, "heldout_spearman": None}
        self.constant = False
        x, y = self.features([cands[i] for i in keep]), np.asarray([scores[i] for i in keep])
        self.pool = self.pooling_matrix(cands[keep[0]]) if self.pooling > 0 else None
        cut = (3 * len(y)) // 4
        held_out = None
        if len(y) - cut >= 4:
            w, mx, my = self._solve(x[:cut], y[:cut])
            pred = my + (x[cut:] - mx) @ w
            held_out = float(np.corrcoef(_ranks(pred), _ranks(y[cut:]))[0, 1])
        self.w, self.mx, self.my = self._solve(x, y)
        return {
            "samples": len(y),
            "heldout_spearman": None if held_out is None or math.isnan(held_out) else held_out,
        }

    def __call__(self, candidate: Candidate) -> float:
        if self.constant:
            return 0.0
        return float(self.my + (self.features([candidate])[0] - self.mx) @ self.w)


def _ranks(v: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(v, kind="stable"), kind="stable").astype(float)
