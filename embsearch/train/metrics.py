"""Exact AUC (rank statistic with tie correction) and log loss."""

from __future__ import annotations

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
    order = np.argsort(s, kind="mergesort")
    s_sorted = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    # average ranks over runs of ties
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    ends = np.r_[starts[1:], len(s)]
    avg = (starts + ends + 1) / 2.0  # 1-based average rank of each run
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


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
