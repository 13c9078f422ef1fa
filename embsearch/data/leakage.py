"""Label-leak check for prepared data: a field whose ids alone rank the validation labels
almost perfectly.

A column derived from the label (talkingdata's ``attributed_time`` is set only for
positives) gives a model a perfect shortcut, and every plan then ranks fields by the leak.
Legitimate CTR fields, however strong, rank the labels far less well: on the shared data
the strongest single fields reach 0.94 (talkingdata ``app``) and 0.91 (frappe), against
1.00 for ``attributed_time``. Each field is scored by its ids' positive rate on the train
split (smoothed toward the overall rate, so rare ids say little), and the AUC of that
score is measured on the validation split, which it was not fitted on. Everything is
counted per id (``bincount``), never sorted per row, on capped prefixes of the splits, so
the check costs about 0.1 s whatever the data's size.
"""

from __future__ import annotations

import numpy as np

from embsearch.data.dataset import Dataset, Split

LEAK_AUC = 0.99  # a field at or above this validation AUC on its own is reported
PRIOR_ROWS = 10.0  # each id's rate is smoothed as if it had this many rows at the overall rate
MAX_FIT_ROWS = 200_000  # train rows the rates are fitted on (a leak is plain in far fewer)
MAX_CHECK_ROWS = 50_000  # validation rows they are checked on
MIN_CLASS_ROWS = 10  # fewer validation positives (or negatives) than this: no check


def leaking_fields(ds: Dataset, threshold: float = LEAK_AUC) -> list[tuple[str, float]]:
    """``(field, AUC)`` for every field whose train-fitted id rates rank the validation labels
    with AUC at least ``threshold``; empty when the validation rows hold fewer than
    ``MIN_CLASS_ROWS`` of either class. Reads at most ``MAX_FIT_ROWS`` train rows and
    ``MAX_CHECK_ROWS`` validation rows (their prefixes); one field's counts at a time."""
    xt, yt = _columns(ds.split("train"), MAX_FIT_ROWS)
    xv, yv = _columns(ds.split("val"), MAX_CHECK_ROWS)
    if len(yt) == 0 or min(yv.sum(), len(yv) - yv.sum()) < MIN_CLASS_ROWS:
        return []  # too few of a class for any AUC to mean much
    prior = float(yt.mean())
    found = []
    for j, spec in enumerate(ds.schema.fields):
        n = spec.cardinality
        rate = (np.bincount(xt[j], weights=yt, minlength=n) + prior * PRIOR_ROWS) / (
            np.bincount(xt[j], minlength=n) + PRIOR_ROWS
        )
        pos = np.bincount(xv[j], weights=yv, minlength=n)
        neg = np.bincount(xv[j], minlength=n) - pos
        seen = (pos + neg) > 0  # only ids the validation rows use can rank them
        auc = grouped_auc(rate[seen], pos[seen], neg[seen])
        if auc >= threshold:
            found.append((spec.name, auc))
    return found


def _columns(split: Split, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``limit`` rows as ``[fields, rows]`` ids (read once and transposed, so each
    field's ids are contiguous) and their labels as float64."""
    x = np.ascontiguousarray(np.asarray(split.x[:limit]).T)
    return x, np.asarray(split.y[:limit], dtype=np.float64)


def grouped_auc(score: np.ndarray, positives: np.ndarray, negatives: np.ndarray) -> float:
    """Exact ROC AUC of rows that come in groups sharing one score: ``score[g]`` with
    ``positives[g]`` / ``negatives[g]`` rows in group ``g``. Tied scores count one half
    (the Mann-Whitney statistic), so it equals the AUC over the rows themselves."""
    levels, which = np.unique(score, return_inverse=True)
    pos = np.bincount(which, weights=positives, minlength=len(levels))
    neg = np.bincount(which, weights=negatives, minlength=len(levels))
    below = np.cumsum(neg) - neg  # negatives with a strictly lower score
    return float((pos * (below + 0.5 * neg)).sum() / (pos.sum() * neg.sum()))
