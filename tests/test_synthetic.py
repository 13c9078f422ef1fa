"""The planted generator: its knobs are wired, and the wide preset keeps its promise."""

from __future__ import annotations

import numpy as np

from embsearch.data.synthetic import WIDE_PRESET, make_synthetic


def test_defaults_are_the_named_knobs() -> None:
    a = make_synthetic(rows=3000)
    b = make_synthetic(rows=3000, first_order=0.6, interaction=0.9)
    assert np.array_equal(a.split("train").x, b.split("train").x)
    assert np.array_equal(a.split("train").y, b.split("train").y)


def test_knobs_change_the_labels_only() -> None:
    a = make_synthetic(rows=3000)
    b = make_synthetic(rows=3000, interaction=3.0)
    assert not np.array_equal(a.split("train").y, b.split("train").y)
    assert [f.cardinality for f in a.schema.fields] == [f.cardinality for f in b.schema.fields]


def test_wide_preset_sees_every_informative_id_often() -> None:
    """Its point: informative ids are frequent enough for their interactions to be learnt."""
    ds = make_synthetic(**WIDE_PRESET)
    names = ds.schema.names
    often = 0
    for name in ds.schema.meta["informative"]:
        counts = ds.schema.fields[names.index(name)].frequencies()[1:]  # id 0: out of vocabulary
        often += bool(counts.min() >= 300)
    assert often >= 4  # four informative fields of five: every id seen 300+ times
    noise_ids = sum(ds.schema.fields[names.index(n)].cardinality for n in ds.schema.meta["noise"])
    inf_ids = sum(
        ds.schema.fields[names.index(n)].cardinality for n in ds.schema.meta["informative"]
    )
    assert noise_ids > 5 * inf_ids  # most of the table's bytes sit in noise fields
