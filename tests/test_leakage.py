"""The label-leak check of ``data prepare``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embsearch.data.leakage import grouped_auc
from embsearch.data.prepare import prepare
from embsearch.train.metrics import roc_auc


def test_grouped_auc_is_the_auc_of_the_rows():
    """Groups sharing a score (ties within and across groups) give the row-wise AUC."""
    rng = np.random.default_rng(0)
    score = rng.integers(0, 6, 40).astype(float)  # repeated scores: ties across groups
    pos, neg = rng.integers(0, 5, 40), rng.integers(0, 5, 40)
    rows_y = np.r_[np.ones(pos.sum()), np.zeros(neg.sum())]
    rows_score = np.r_[np.repeat(score, pos), np.repeat(score, neg)]
    assert grouped_auc(score, pos, neg) == roc_auc(rows_y, rows_score)


def _csv(path: Path, rows: int, leak: bool) -> str:
    """Two random fields and a label; with ``leak``, a column set only for positives (as
    talkingdata's ``attributed_time``)."""
    rng = np.random.default_rng(1)
    y = rng.random(rows) < 0.3
    a, b = rng.integers(0, 10, rows), rng.integers(0, 50, rows)
    head = "a,b,leak,y\n" if leak else "a,b,y\n"
    lines = [
        f"{a[i]},{b[i]}," + ((f"t{i}," if y[i] else ",") if leak else "") + f"{int(y[i])}\n"
        for i in range(rows)
    ]
    path.write_text(head + "".join(lines))
    return str(path)


def _prepare(tmp_path: Path, leak: bool):
    msgs: list[str] = []
    path = _csv(tmp_path / "data.csv", 4000, leak)
    ds = prepare("csv", [path], str(tmp_path / "out"), label="y", warn=msgs.append)
    return ds, msgs


def test_a_field_set_for_positives_only_is_reported(tmp_path: Path):
    ds, msgs = _prepare(tmp_path, leak=True)
    assert len(msgs) == 1 and "'leak'" in msgs[0] and "--drop leak" in msgs[0]
    assert list(ds.schema.meta["suspected_leaks"]) == ["leak"]
    assert ds.schema.meta["suspected_leaks"]["leak"] >= 0.99


def test_fields_without_a_leak_are_not_reported(tmp_path: Path):
    ds, msgs = _prepare(tmp_path, leak=False)
    assert msgs == [] and ds.schema.meta["suspected_leaks"] == {}


def test_too_small_a_validation_split_is_not_judged(tmp_path: Path):
    """43 rows leave 4 validation rows: any field may rank them perfectly by chance."""
    path = tmp_path / "t.csv"
    path.write_text("a,y\n" + "".join(f"{i % 4},{i % 2}\n" for i in range(43)))
    msgs: list[str] = []
    prepare("csv", [str(path)], str(tmp_path / "o"), label="y", warn=msgs.append)
    assert msgs == []
