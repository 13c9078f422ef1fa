"""Exact AUC (rank statistic with tie correction), DeLong's paired AUC comparison and the
margin test on it, and log loss."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Exact ROC AUC via the Mann-Whitney U statistic; tied scores get average ranks.

    Returns ``nan`` when only one class is present.
    """
    y = np.asarray(y).astype(bool).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _midranks(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _midranks(s: np.ndarray) -> np.ndarray:
    """1-based ranks of ``s``, ties given the average rank of their run."""
    order = np.argsort(s, kind="mergesort")
    s_sorted = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    ends = np.r_[starts[1:], len(s)]
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def paired_auc_difference(
    y: np.ndarray, score_a: np.ndarray, score_b: np.ndarray
) -> tuple[float, float, float]:
    """``(AUC of a, AUC of b, standard error of their difference)`` for two scorings of the
    same rows: DeLong, DeLong & Clarke-Pearson (Biometrics 1988), whose variance accounts for
    the two AUCs sharing their rows, computed from midranks (Sun & Xu, IEEE SPL 2014).

    Each positive's placement is the share of negatives it outranks (ties count half), each
    negative's the share of positives that outrank it; an AUC is the mean placement, and its
    variance (and the covariance of two) follows from the placements' sample covariances.
    ``nan`` everywhere when only one class is present.
    """
    y = np.asarray(y).astype(bool).ravel()
    m, n = int(y.sum()), int((~y).sum())
    if m == 0 or n == 0:
        return float("nan"), float("nan"), float("nan")
    v10, v01 = [], []
    for score in (score_a, score_b):
        s = np.asarray(score, dtype=np.float64).ravel()
        pos, neg = s[y], s[~y]
        both = _midranks(np.r_[pos, neg])
        v10.append((both[:m] - _midranks(pos)) / n)  # per positive: share of negatives below
        v01.append(1.0 - (both[m:] - _midranks(neg)) / m)  # per negative: share above it
    aucs = [float(v.mean()) for v in v10]
    diff10, diff01 = v10[0] - v10[1], v01[0] - v01[1]
    var = (diff10.var(ddof=1) if m > 1 else 0.0) / m + (diff01.var(ddof=1) if n > 1 else 0.0) / n
    return aucs[0], aucs[1], float(np.sqrt(max(var, 0.0)))


@dataclass(frozen=True)
class PairedMargin:
    """A challenger against an incumbent on the same validation rows: both AUCs, the
    standard error of their paired difference (DeLong, :func:`paired_auc_difference`), and whether the challenger wins by
    more than the margin (``margin_se`` standard errors)."""

    challenger_auc: float
    incumbent_auc: float
    se: float
    margin_se: float

    @property
    def challenger_wins(self) -> bool:
        d = self.challenger_auc - self.incumbent_auc
        return math.isfinite(self.se) and d > self.margin_se * self.se


def log_loss(
    y: np.ndarray, prob: np.ndarray, eps: float = 1e-7, weights: np.ndarray | None = None
) -> float:
    """Mean binary cross-entropy with probabilities clipped to ``[eps, 1-eps]``; with
    ``weights``, the weighted mean (e.g. a subsample reweighted to its split's class shares)."""
    y = np.asarray(y, dtype=np.float64).ravel()
    p = np.clip(np.asarray(prob, dtype=np.float64).ravel(), eps, 1 - eps)
    losses = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    if weights is None:
        return float(losses.mean())
    w = np.asarray(weights, dtype=np.float64).ravel()
    return float((w * losses).sum() / w.sum())
