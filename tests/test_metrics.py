"""AUC, DeLong's paired comparison and log loss against hand values and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest

from embsearch.train.metrics import log_loss, paired_auc_difference, roc_auc


def _brute_auc(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y == 1], s[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


def test_auc_with_ties_equals_the_pairwise_count():
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.3).astype(int)
    s = rng.integers(0, 8, 300).astype(float)  # many ties
    assert roc_auc(y, s) == pytest.approx(_brute_auc(y, s), abs=1e-12)
    assert math.isnan(roc_auc(np.zeros(5), np.arange(5.0)))


def test_delong_difference_matches_its_definition_and_a_bootstrap():
    """The AUCs equal the rank AUC; the standard error equals DeLong's formula written with
    explicit pairwise placements, and is close to a bootstrap's over the same rows."""
    rng = np.random.default_rng(1)
    y = (rng.random(400) < 0.35).astype(int)
    a = y + rng.normal(0, 1.2, 400)
    b = np.round(a + rng.normal(0, 0.7, 400), 1)  # correlated with a, with ties
    auc_a, auc_b, se = paired_auc_difference(y, a, b)
    assert auc_a == pytest.approx(roc_auc(y, a), abs=1e-12)
    assert auc_b == pytest.approx(roc_auc(y, b), abs=1e-12)

    def placements(s):
        pos, neg = s[y == 1], s[y == 0]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        return psi.mean(1), psi.mean(0)

    (pa, na), (pb, nb) = placements(a), placements(b)
    want = math.sqrt(np.var(pa - pb, ddof=1) / len(pa) + np.var(na - nb, ddof=1) / len(na))
    assert se == pytest.approx(want, rel=1e-9)
    boot = []
    for _ in range(300):
        i = rng.integers(0, 400, 400)
        boot.append(roc_auc(y[i], a[i]) - roc_auc(y[i], b[i]))
    assert se == pytest.approx(np.std(boot, ddof=1), rel=0.25)


def test_delong_edge_cases():
    y = np.array([0, 1, 0, 1, 1])
    s = np.array([0.1, 0.9, 0.3, 0.4, 0.8])
    assert paired_auc_difference(y, s, s)[2] == 0.0  # one scoring against itself
    assert all(math.isnan(v) for v in paired_auc_difference(np.ones(4), s[:4], s[:4]))


def test_log_loss_hand_value():
    assert log_loss(np.array([1, 0]), np.array([0.8, 0.4])) == pytest.approx(
        -(math.log(0.8) + math.log(0.6)) / 2
    )
