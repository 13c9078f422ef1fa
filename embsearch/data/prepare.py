"""Turn raw columns into a saved :class:`~embsearch.data.dataset.Dataset` (one job).

``prepare`` reads the input file(s) with :mod:`embsearch.data.readers`, splits rows (one
file: a seeded random split; three files: given train/val/test), bucketises numeric
columns (:func:`~embsearch.data.buckets.bucket_codes`), turns every column into dense codes with Arrow's
``dictionary_encode`` and then into ids with
:func:`~embsearch.data.encode.frequency_ranking` on the **train rows only** (id 0 = OOV,
ids 1..n by descending train frequency; values below ``min_count`` or unseen in train
map to 0). The dataset is saved atomically at ``out`` and returned, with the vocabularies
(``out/vocab``: the raw value of every id, see :mod:`embsearch.data.vocab`) staged with it.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from embsearch._text import printable
from embsearch.data.buckets import bucket_codes
from embsearch.data.dataset import SPLITS, Dataset, Split
from embsearch.data.encode import apply_ranking, frequency_ranking
from embsearch.data.leakage import leaking_fields
from embsearch.data.readers import FORMATS, Columns, read_columns
from embsearch.data.schema import FieldSpec, Schema
from embsearch.data.synthetic import make_synthetic
from embsearch.data.vocab import bucket_labels, save_vocab
from embsearch.errors import ConfigError, DataError
from embsearch.out_dir import check_out_dir

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
) -> Dataset:
    """Read ``inputs`` of format ``fmt``, encode them, save the dataset at ``out`` and return it.

    ``inputs`` is one file (split at random by ``split`` fractions with ``seed``) or three
    files (train, val, test as given; ``split`` is then ignored); ``synthetic`` takes none.
    ``rows`` reads only the first ``rows`` rows of each file (for ``synthetic``: the row
    count, default 60,000). A field with one distinct id in the train rows is reported
    through ``warn`` (default: :func:`warnings.warn`), or dropped if ``drop_constant``.
    Raises :class:`DataError` for bad input and :class:`ConfigError` for bad options.
    """
    warn = warn or (lambda msg: warnings.warn(msg, UserWarning, stacklevel=3))
    fractions = _check_options(fmt, inputs, min_count, split, rows)
    check_out_dir(out, error=DataError, must_not_exist=True)  # before reading anything
    if fmt == "synthetic":
        return _prepare_synthetic(
            inputs, out, fractions, seed, rows, min_count, label, categorical, numeric, drop
        )

    cols = [
        read_columns(
            fmt, p, label=label, categorical=categorical, numeric=numeric, drop=drop, rows=rows
        )
        for p in inputs
    ]
    _check_same_fields(cols)
    if len(cols) == 1:
        parts: list[np.ndarray] | None = _random_split(cols[0].rows, fractions, seed)
        ys = [cols[0].label[ix] for ix in parts]
    else:
        parts = None
        ys = [c.label for c in cols]
    check_classes(ys, None if parts is not None else inputs)

    specs, xs, vocab = _encode_fields(cols, parts, min_count)

    specs, xs, vocab, constant = _constant_fields(specs, xs, vocab, drop_constant, warn)
    id_like = id_like_fields(specs, len(ys[0]), min_count)
    _warn_id_like(id_like, warn)

    meta = {
        "format": fmt,
        "inputs": [str(p) for p in inputs],
        "given_split": parts is None,
        "split": None if parts is None else list(fractions),
        "seed": int(seed),
        "rows_limit": None if rows is None else int(rows),
        "rows_read": int(sum(c.rows for c in cols)),
        "rows_per_input": [c.rows for c in cols],
        "min_count": int(min_count),
        "numeric": [n for n in cols[0].fields if n in cols[0].numeric],
        "dropped_columns": cols[0].dropped,
        "constant_fields": constant,
        "dropped_constant": constant if drop_constant else [],
        "label_rate": {s: float(y.mean()) for s, y in zip(SPLITS, ys)},
        "id_like_fields": id_like,
    }
    schema = Schema(specs, label=cols[0].label_name, source=fmt, meta=meta)
    ds = Dataset(schema, *(Split(x, y) for x, y in zip(xs, ys)))
    ds.validate()
    leaks = leaking_fields(ds)
    schema.meta["suspected_leaks"] = {name: round(auc, 4) for name, auc in leaks}
    for name, auc in leaks:
        warn(
            f"field {name!r} alone ranks the validation labels with AUC {auc:.3f}: it likely "
            f"leaks the label (derived from it, or set for one class only); pass --drop {name} "
            "unless it is known at prediction time"
        )
    numeric = [s.name for s in specs if s.name in cols[0].numeric]
    types = {s.name: str(cols[0].fields[s.name].type) for s in specs}
    ds.save(
        out,
        extra_writer=lambda tmp: save_vocab(tmp, schema.names, vocab, numeric=numeric, types=types),
        warn=warn,
    )
    return ds


def _constant_fields(
    specs: list[FieldSpec],
    xs: list[np.ndarray],
    vocab: list[pa.Array],
    drop_constant: bool,
    warn: Callable[[str], None],
) -> tuple[list[FieldSpec], list[np.ndarray], list[pa.Array], list[str]]:
    """The fields with one id in the train split (every value rarer than ``--min-count``, or
    one value): each reported through ``warn``, or all removed with ``drop_constant``.
    Returns the fields, id arrays and vocabularies kept, and the constant fields' names."""
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
    if drop_constant and constant:
        keep = [j for j, s in enumerate(specs) if s.name not in constant]
        if not keep:
            raise DataError(
                "every field is constant in the train split; nothing is left to learn from"
            )
        specs = [specs[j] for j in keep]
        xs = [np.ascontiguousarray(x[:, keep]) for x in xs]
        vocab = [vocab[j] for j in keep]
    return specs, xs, vocab, constant


def _warn_id_like(id_like: dict[str, float], warn: Callable[[str], None]) -> None:
    """One warning per field whose train split is mostly distinct values (an id, a time)."""
    for name, share in id_like.items():
        warn(
            f"field {name!r} looks like an id or a timestamp: its train split holds "
            f"{share:.0%} as many distinct values as rows, so most of its rows are trained on "
            "one example and few of its values recur at prediction time; pass --drop "
            f"{name} (or bucketise it: --numeric for a number)"
        )


def _encode_fields(
    cols: list[Columns], parts: list[np.ndarray] | None, min_count: int
) -> tuple[list[FieldSpec], list[np.ndarray], list[pa.Array]]:
    """Encode every field, one worker thread per field (Arrow and numpy release the GIL).

    Ids are written field-major (contiguous writes), then gathered into row-major
    ``[rows, fields]`` arrays: by the split's row indices ``parts`` (one file) or one
    array per file (three files). Also returns each field's vocabulary: the raw values (or
    bucket labels) of ids ``1..n``, in id order.
    """
    names = list(cols[0].fields)
    xt = [np.empty((len(names), c.rows), dtype=np.int32) for c in cols]

    def encode(j: int) -> tuple[FieldSpec, pa.Array]:
        codes, n_values, values_of = _dense_codes(
            [c.fields[names[j]] for c in cols], names[j] in cols[0].numeric
        )
        train = codes[0][parts[0]] if parts is not None else codes[0]
        remap, counts = frequency_ranking(train, n_values, min_count)
        for x, c in zip(xt, codes):
            x[j] = apply_ranking(c, remap)
        kept = np.flatnonzero(remap)
        order = np.empty(len(kept), dtype=np.int64)  # order[id - 1] = code of id
        order[remap[kept] - 1] = kept
        return FieldSpec(names[j], len(counts), counts), values_of(order)

    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        specs, vocab = map(list, zip(*pool.map(encode, range(len(names)))))
    if parts is not None:
        return specs, [np.ascontiguousarray(xt[0].T[ix]) for ix in parts], vocab
    return specs, [np.ascontiguousarray(x.T) for x in xt], vocab


def fixed8_keys(col: pa.ChunkedArray | pa.Array) -> np.ndarray | None:
    """int64 keys of a string column whose values all have 8 bytes or are empty, else ``None``.

    Such columns (Criteo's and Avazu's hex ids) are common and large; read as one int64,
    8 bytes map to values one-to-one, and hashing int64 is about twice as fast as hashing
    strings. An empty string gets key -1 (eight 0xFF bytes), which valid UTF-8 never holds.
    """
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if not pa.types.is_string(arr.type) or arr.null_count or len(arr) == 0:
        return None
    n = len(arr)
    off = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4)
    lens = np.diff(off)
    full = lens == 8
    n_full = int(np.count_nonzero(full))
    if n_full + int(np.count_nonzero(lens == 0)) != n:
        return None
    if n_full == 0:
        return np.full(n, -1, dtype=np.int64)
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[off[0] : off[-1]]
    vals = np.frombuffer(data.tobytes() if data.ctypes.data % 8 else data, dtype=np.int64)
    if n_full == n:
        return vals
    out = np.full(n, -1, dtype=np.int64)
    out[full] = vals
    return out


def dense_codes(parts: Sequence[pa.ChunkedArray], numeric: bool) -> tuple[list[np.ndarray], int]:
    """Codes ``0..n-1`` of one column across parts, and ``n``: part 0 (the train file) defines
    the values; values of later parts missing from it get code ``-1`` (or ``>= n``), which
    :func:`apply_ranking` maps to OOV. Nulls of a categorical column are a value of their
    own; a numeric column is bucketised by :func:`~embsearch.data.buckets.bucket_codes` (no hashing needed), and a
    column of 8-byte strings is hashed as int64 (:func:`fixed8_keys`, about twice as fast)."""
    codes, n, _ = _dense_codes(parts, numeric)
    return codes, n


def _dense_codes(
    parts: Sequence[pa.ChunkedArray], numeric: bool
) -> tuple[list[np.ndarray], int, Callable[[np.ndarray], pa.Array]]:
    """:func:`dense_codes` plus ``values_of(codes)``: the raw values (for a numeric column,
    the bucket labels of :func:`~embsearch.data.vocab.bucket_labels`) of those codes."""
    if numeric:
        codes = [bucket_codes(p) for p in parts]
        return codes, int(codes[0].max()) + 1, bucket_labels
    fixed = [fixed8_keys(p) for p in parts]
    keys = [pa.array(k) for k in fixed] if all(k is not None for k in fixed) else parts
    enc = pc.dictionary_encode(keys[0], null_encoding="encode")
    chunks = enc.chunks if isinstance(enc, pa.ChunkedArray) else [enc]
    dictionary = chunks[-1].dictionary
    first = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in chunks])
    if keys is parts:

        def values_of(codes: np.ndarray) -> pa.Array:
            return dictionary.take(pa.array(codes, pa.int64()))
    else:

        def values_of(codes: np.ndarray) -> pa.Array:
            return fixed8_strings(dictionary.to_numpy()[codes])

    out = [first]
    for k in keys[1:]:
        found = pc.fill_null(pc.index_in(k, value_set=dictionary, skip_nulls=False), -1)
        out.append(
            np.asarray(
                found.to_numpy() if isinstance(found, pa.ChunkedArray) else found.to_numpy(),
                np.int64,
            )
        )
    return out, len(dictionary), values_of


def fixed8_strings(keys: np.ndarray) -> pa.Array:
    """The strings behind :func:`fixed8_keys` keys (its inverse; key -1 is ``""``)."""
    keys = np.ascontiguousarray(keys, dtype=np.int64)
    raw = pa.Array.from_buffers(pa.binary(8), len(keys), [None, pa.py_buffer(keys)])
    raw = pc.if_else(pa.array(keys == -1), pa.scalar(b"", pa.binary()), raw.cast(pa.binary()))
    return raw.cast(pa.string())


def _check_options(
    fmt: str, inputs: list[str], min_count: int, split: Sequence[float], rows: int | None
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


def _random_split(n: int, fractions: tuple[float, float, float], seed: int) -> list[np.ndarray]:
    """Row indices of train/val/test (each sorted, for locality); raise if one is empty."""
    n_tr = min(n, round(fractions[0] * n))
    n_va = min(n - n_tr, round(fractions[1] * n))
    sizes = (n_tr, n_va, n - n_tr - n_va)
    for name, size, frac in zip(SPLITS, sizes, fractions):
        if size == 0:
            raise DataError(
                f"the {name} split is empty ({n} rows x {frac:g}); use more rows or a larger {name} share in --split"
            )
    perm = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum(sizes)[:-1]
    return [np.sort(ix) for ix in np.split(perm, bounds)]


def check_classes(ys: Sequence[np.ndarray], files: Sequence[str] | None = None) -> None:
    """Refuse, with the counts, a split that lacks a class: its AUC cannot be computed (and
    a 1-row split's log loss means nothing), so a search on it would validate on nothing.
    ``files``: the train, val and test files, when the splits were given as files."""
    for i, (name, y) in enumerate(zip(SPLITS, ys)):
        pos = int(np.count_nonzero(y))
        neg = len(y) - pos
        if pos and neg:
            continue
        where = f"the {name} split" + (f" ({files[i]})" if files else "")
        fix = (
            "give a file holding both classes"
            if files
            else f"use more rows or a larger {name} share in --split"
        )
        raise DataError(
            f"{where} has {len(y)} row{'s' if len(y) != 1 else ''}: {pos} positive, {neg} "
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
