"""Turn raw columns into a saved :class:`~embsearch.data.dataset.Dataset` (one job).

``prepare`` reads the input file(s) in record batches with :mod:`embsearch.data.readers`,
splits rows (one file: a seeded random split; three files: given train/val/test),
bucketises numeric columns (:func:`~embsearch.data.buckets.bucket_codes`), turns every
column into dense codes (:mod:`embsearch.data.codes`, Arrow's ``dictionary_encode`` batch by
batch) and then into ids with :func:`~embsearch.data.encode.frequency_ranking` on the
**train rows only** (id 0 = OOV, ids 1..n by descending train frequency; values below
``min_count`` or unseen in train map to 0). The passes over the batches are those of
:mod:`embsearch.data.streaming`: memory holds the vocabularies and one batch, not the file. The dataset is saved atomically at ``out`` and returned, with the vocabularies
(``out/vocab``: the raw value of every id, see :mod:`embsearch.data.vocab`) staged with it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embsearch._atomic import staged_dir
from embsearch._text import printable
from embsearch.data.codes import fixed8_keys, fixed8_strings
from embsearch.data.dataset import SPLITS, Dataset, Split
from embsearch.data.encode import rank_counts
from embsearch.data.leakage import leaking_fields
from embsearch.data.readers import FORMATS, Columns, read_columns
from embsearch.data.schema import FieldSpec, Schema
from embsearch.data.streaming import BATCH_ROWS, count_train, read_codes, write_splits
from embsearch.data.synthetic import make_synthetic
from embsearch.data.time_order import chronological_split, read_order_keys, sort_splits
from embsearch.data.vocab import save_vocab
from embsearch.errors import ConfigError, DataError
from embsearch.out_dir import check_out_dir

__all__ = ["ALL_FORMATS", "fixed8_keys", "fixed8_strings", "prepare"]

ALL_FORMATS = (*FORMATS, "synthetic")


def prepare(
    fmt: str,
    inputs: list[str],
    out: str,
    *,
    label: str | None = None,
    categorical: list[str] | None = None,
    numeric: list[str] | None = None,
    drop: list[str] | None = None,
    min_count: int = 1,
    split: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    drop_constant: bool = False,
    rows: int | None = None,
    warn: Callable[[str], None] | None = None,
    batch_rows: int = BATCH_ROWS,
    order_by: str | None = None,
) -> Dataset:
    """Read ``inputs`` of format ``fmt``, encode them, save the dataset at ``out`` and return it.

    ``inputs`` is one file (split at random by ``split`` fractions with ``seed``) or three
    files (train, val, test as given; ``split`` is then ignored); ``synthetic`` takes none.
    ``rows`` reads only the first ``rows`` rows of each file (for ``synthetic``: the row
    count, default 60,000). A field with one distinct id in the train rows is reported
    through ``warn`` (default: :func:`warnings.warn`), or dropped if ``drop_constant``.
    Files are read and encoded ``batch_rows`` rows at a time (:mod:`embsearch.data.streaming`);
    the output does not depend on it. ``order_by`` names a column holding each row's time:
    the rows are split chronologically (one input) and every split is written in time order
    (:mod:`embsearch.data.time_order`; recorded as ``schema.meta["order_by"]``). Raises
    :class:`DataError` for bad input and :class:`ConfigError` for bad options.
    """
    warn = warn or (lambda msg: warnings.warn(msg, UserWarning, stacklevel=3))
    fractions = _check_options(fmt, inputs, min_count, split, rows, batch_rows)
    check_out_dir(out, error=DataError, must_not_exist=True)  # before reading anything
    if fmt == "synthetic":
        if order_by is not None:
            raise ConfigError(
                "format synthetic has no time column; --order-by applies to files read "
                "(write the rows to a CSV with a time column to stream them)"
            )
        return _prepare_synthetic(
            inputs, out, fractions, seed, rows, min_count, label, categorical, numeric, drop
        )

    options = {"label": label, "categorical": categorical, "numeric": numeric, "drop": drop}
    # every file's options and columns are checked before any is read through
    heads = [read_columns(fmt, p, **options, rows=1) for p in inputs]
    _check_same_fields(heads)
    try:
        with staged_dir(out, warn=warn) as tmp:
            specs, leaks, meta_rows = _encode(
                fmt, inputs, tmp, heads[0], options, rows, batch_rows, fractions, seed,
                min_count, drop_constant, warn, order_by,
            )  # fmt: skip
            meta = {
                "format": fmt,
                "inputs": [str(p) for p in inputs],
                "given_split": len(inputs) == 3,
                "split": None if len(inputs) == 3 else list(fractions),
                **({"order_by": order_by} if order_by else {}),  # a time order: recorded
                "seed": int(seed),
                "rows_limit": None if rows is None else int(rows),
                **meta_rows,
            }
            schema = Schema(specs, label=heads[0].label_name, source=fmt, meta=meta)
            schema.meta["suspected_leaks"] = {name: round(auc, 4) for name, auc in leaks}
            schema.save(tmp)
    except FileExistsError:
        raise DataError(f"{out} already exists; choose another --out or remove it") from None
    return Dataset.load(out, validate=False)


def _encode(
    fmt: str,
    inputs: list[str],
    tmp: Path,
    head: Columns,
    options: dict[str, Any],
    rows: int | None,
    batch_rows: int,
    fractions: tuple[float, float, float],
    seed: int,
    min_count: int,
    drop_constant: bool,
    warn: Callable[[str], None],
    order_by: str | None = None,
) -> tuple[list[FieldSpec], list[tuple[str, float]], dict[str, Any]]:
    """The passes of :mod:`~embsearch.data.streaming` into the staged directory ``tmp``:
    codes, split, frequency ranking on the train rows, the checks, the ``.npy`` files and
    the vocabularies (with ``order_by``: a chronological split, each split in time order).
    Returns the kept fields, the suspected leaks and the row figures of
    ``schema.meta``."""
    keys = (
        [read_order_keys(fmt, p, order_by, options, rows, batch_rows) for p in inputs]
        if order_by
        else []
    )
    coded = read_codes(fmt, inputs, tmp, options, rows, batch_rows)
    which = None
    if len(inputs) == 1:
        which = (
            chronological_split(keys[0], fractions)
            if keys
            else split_rows(coded.rows[0], fractions, seed)
        )
    freq, labels = count_train(coded, which)
    check_class_counts(labels, None if which is not None else inputs)
    specs, remaps, vocab = [], [], []
    for name, coder, f in zip(coded.names, coded.coders, freq):
        remap, counts = rank_counts(f, min_count)
        kept = np.flatnonzero(remap)
        order = np.empty(len(kept), dtype=np.int64)  # order[id - 1] = code of id
        order[remap[kept] - 1] = kept
        specs.append(FieldSpec(name, len(counts), counts))
        remaps.append(remap)
        vocab.append(coder.values_of(order))
    keep, constant = _constant_fields(specs, drop_constant, warn)
    specs = [specs[j] for j in keep]
    id_like = id_like_fields(specs, labels[0][1], min_count)
    _warn_id_like(id_like, warn)
    write_splits(coded, which, remaps, keep, [n for _, n in labels], tmp)
    coded.remove()
    if keys:
        sort_splits(tmp, keys, which, batch_rows)
    ds = Dataset(
        Schema(specs),
        *(Split(np.load(tmp / f"{s}_x.npy", "r"), np.load(tmp / f"{s}_y.npy", "r")) for s in SPLITS),
    )  # fmt: skip
    leaks = leaking_fields(ds)
    for name, auc in leaks:
        warn(
            f"field {name!r} alone ranks the validation labels with AUC {auc:.3f}: it likely "
            f"leaks the label (derived from it, or set for one class only); pass --drop {name} "
            "unless it is known at prediction time"
        )
    numeric = [s.name for s in specs if s.name in head.numeric]
    types = {s.name: str(head.fields[s.name].type) for s in specs}
    save_vocab(tmp, [s.name for s in specs], [vocab[j] for j in keep], numeric=numeric, types=types)
    return (
        specs,
        leaks,
        {
            "rows_read": int(sum(coded.rows)),
            "rows_per_input": list(coded.rows),
            "min_count": int(min_count),
            "numeric": [n for n in head.fields if n in head.numeric],
            "dropped_columns": head.dropped,
            "constant_fields": constant,
            "dropped_constant": constant if drop_constant else [],
            "label_rate": {s: label_rate(p, n) for s, (p, n) in zip(SPLITS, labels)},
            "id_like_fields": id_like,
        },
    )


def label_rate(positives: int, rows: int) -> float:
    """The share of positive labels, as ``float(y.mean())`` of ``float32`` 0/1 labels gives
    it (a float32 quotient, exact counts below 2**24 rows; float64 above, where a float32
    sum would no longer count exactly), so prepared schemas stay byte-identical."""
    if rows < 2**24:
        return float(np.float32(positives) / np.float32(rows))
    return positives / rows


def _constant_fields(
    specs: list[FieldSpec], drop_constant: bool, warn: Callable[[str], None]
) -> tuple[list[int], list[str]]:
    """The fields with one id in the train split (every value rarer than ``--min-count``, or
    one value): each reported through ``warn``, or all removed with ``drop_constant``.
    Returns the indices of the fields kept and the constant fields' names."""
    constant: list[str] = []
    for spec in specs:
        counts = spec.counts
        if (counts[0] > 0) + len(counts) - 1 <= 1:
            constant.append(spec.name)
            if not drop_constant:
                why = (
                    "every value is rarer than --min-count"
                    if len(counts) == 1
                    else "it has one value"
                )
                warn(
                    f"field {spec.name!r} is constant in the train split ({why}) and carries no signal; "
                    f"pass --drop-constant (or --drop {spec.name}) to remove it"
                )
    keep = list(range(len(specs)))
    if drop_constant and constant:
        keep = [j for j, s in enumerate(specs) if s.name not in constant]
        if not keep:
            raise DataError(
                "every field is constant in the train split; nothing is left to learn from"
            )
    return keep, constant


def _warn_id_like(id_like: dict[str, float], warn: Callable[[str], None]) -> None:
    """One warning per field whose train split is mostly distinct values (an id, a time)."""
    for name, share in id_like.items():
        warn(
            f"field {name!r} looks like an id or a timestamp: its train split holds "
            f"{share:.0%} as many distinct values as rows, so most of its rows are trained on "
            "one example and few of its values recur at prediction time; pass --drop "
            f"{name} (or bucketise it: --numeric for a number)"
        )


def _check_options(
    fmt: str,
    inputs: list[str],
    min_count: int,
    split: Sequence[float],
    rows: int | None,
    batch_rows: int,
) -> tuple[float, float, float]:
    if fmt not in ALL_FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; use one of {', '.join(ALL_FORMATS)}")
    if fmt != "synthetic" and len(inputs) not in (1, 3):
        raise ConfigError(
            f"give one input file (split at random) or three (train, val, test); got {len(inputs)}"
        )
    if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) or min_count < 1:
        raise ConfigError(f"--min-count must be an integer >= 1; got {min_count!r}")
    if rows is not None and (
        isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows < 1
    ):
        raise ConfigError(f"--rows must be a positive integer; got {rows!r}")
    if (
        isinstance(batch_rows, bool)
        or not isinstance(batch_rows, (int, np.integer))
        or batch_rows < 1
    ):
        raise ConfigError(f"--batch-rows must be a positive integer; got {batch_rows!r}")
    try:
        fractions = tuple(float(f) for f in split)
    except (TypeError, ValueError):
        raise ConfigError(f"--split must be three numbers train,val,test; got {split!r}") from None
    if len(fractions) != 3 or not all(math.isfinite(f) and f >= 0 for f in fractions):
        raise ConfigError(
            f"--split must be three non-negative fractions train,val,test; got {split!r}"
        )
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise ConfigError(f"--split fractions must sum to 1; {split!r} sums to {sum(fractions):g}")
    return fractions  # type: ignore[return-value]


def split_rows(n: int, fractions: tuple[float, float, float], seed: int) -> np.ndarray:
    """The split (0 train, 1 val, 2 test) of each of ``n`` rows, one byte each: the first
    ``fractions[0]`` of a seeded permutation are train, the next ``fractions[1]`` val;
    raise if a split is empty. A split's rows keep their file order."""
    n_tr = min(n, round(fractions[0] * n))
    n_va = min(n - n_tr, round(fractions[1] * n))
    sizes = (n_tr, n_va, n - n_tr - n_va)
    for name, size, frac in zip(SPLITS, sizes, fractions):
        if size == 0:
            raise DataError(
                f"the {name} split is empty ({n} rows x {frac:g}); use more rows or a larger {name} share in --split"
            )
    perm = np.random.default_rng(seed).permutation(n)
    which = np.full(n, 2, dtype=np.uint8)
    which[perm[:n_tr]] = 0
    which[perm[n_tr : n_tr + n_va]] = 1
    return which


def check_classes(ys: Sequence[np.ndarray], files: Sequence[str] | None = None) -> None:
    """:func:`check_class_counts` of label arrays."""
    check_class_counts([(int(np.count_nonzero(y)), len(y)) for y in ys], files)


def check_class_counts(
    labels: Sequence[tuple[int, int]], files: Sequence[str] | None = None
) -> None:
    """Refuse, with the counts, a split that lacks a class: its AUC cannot be computed (and
    a 1-row split's log loss means nothing), so a search on it would validate on nothing.
    ``labels``: each split's ``(positives, rows)``; ``files``: the train, val and test files,
    when the splits were given as files."""
    for i, (name, (pos, rows)) in enumerate(zip(SPLITS, labels)):
        neg = rows - pos
        if pos and neg:
            continue
        where = f"the {name} split" + (f" ({files[i]})" if files else "")
        fix = (
            "give a file holding both classes"
            if files
            else f"use more rows or a larger {name} share in --split"
        )
        raise DataError(
            f"{where} has {rows} row{'s' if rows != 1 else ''}: {pos} positive, {neg} "
            f"negative; AUC needs both classes in every split, so {fix}"
        )


#: a field is id-like when its distinct train values are at least this share of train rows
#: (talkingdata's click_time: 0.84 on the shared 100k-row sample; the largest share of a
#: legitimate field in the shared samples is avazu's device_ip, 0.76 of 8k train rows)
ID_LIKE_SHARE = 0.8
#: ... and the train split has at least this many rows (below, uniqueness is no evidence)
ID_LIKE_MIN_ROWS = 200


def id_like_fields(specs: Sequence[FieldSpec], train_rows: int, min_count: int) -> dict[str, float]:
    """Fields whose values are almost all distinct in train (a timestamp, a row id, like
    talkingdata's ``click_time``): name -> distinct train values / train rows. Only with
    ``min_count == 1`` (above it, values seen once are already folded into OOV)."""
    if min_count != 1 or train_rows < ID_LIKE_MIN_ROWS:
        return {}
    out = {}
    for spec in specs:
        share = (spec.cardinality - 1) / train_rows  # id 0 (OOV) holds no train value
        if share >= ID_LIKE_SHARE:
            out[spec.name] = round(share, 4)
    return out


def _check_same_fields(cols: list[Columns]) -> None:
    first = list(cols[0].fields)
    for c in cols[1:]:
        if list(c.fields) != first:
            raise DataError(
                f"{c.path} has fields {printable(', '.join(c.fields))} but {cols[0].path} has "
                f"{printable(', '.join(first))}; "
                "the train, val and test files need the same columns"
            )


def _prepare_synthetic(
    inputs: list[str],
    out: str,
    fractions: tuple[float, float, float],
    seed: int,
    rows: int | None,
    min_count: int,
    *unused: object,
) -> Dataset:
    if inputs:
        raise ConfigError("format synthetic generates its data and takes no input files; drop them")
    if min_count != 1 or any(unused):
        raise ConfigError(
            "format synthetic has fixed fields; --label/--categorical/--numeric/--drop/--min-count do not apply"
        )
    ds = make_synthetic(rows=rows or 60_000, split=fractions, seed=seed)
    check_classes([ds.split(s).y for s in SPLITS])
    ds.schema.meta.update(
        {"format": "synthetic", "inputs": [], "split": list(fractions), "min_count": 1}
    )
    ds.validate()
    ds.save(out)
    return ds
