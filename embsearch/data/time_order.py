"""A recorded time order (``data prepare --order-by COLUMN``): rows sorted by a column, split
chronologically, each split written in time order, and the column named in
``schema.meta["order_by"]``, so ``embsearch search --stream`` can read the train split once
in time order (the streaming setting of ESAPN's paper).

One input file: the earliest ``split[0]`` of the rows are train, the next ``split[1]``
validation, the latest test. Three files (train, val, test given): each is sorted in
itself. Ties keep their file order. The column's values are numbers where every value
reads as one, else strings (compared as text: ISO dates sort in time order); an empty
value is refused. The column is read in a pass of its own, so it may also be dropped as a
feature (``--drop COLUMN``: a timestamp is rarely a good feature). Memory: the column's
values (8 bytes a row for numbers), then each split rewritten in chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embsearch.data.dataset import SPLITS
from embsearch.data.readers import iter_columns
from embsearch.errors import DataError


def read_order_keys(
    fmt: str,
    path: str,
    column: str,
    options: dict[str, Any],
    rows: int | None,
    batch_rows: int,
) -> np.ndarray:
    """The values of ``column`` in ``path``, in file order (numbers where they all are)."""
    opts = dict(options)
    opts["drop"] = [d for d in (opts.get("drop") or []) if d != column]
    parts: list[np.ndarray] = []
    for cols in iter_columns(fmt, path, **opts, rows=rows, batch_rows=batch_rows):
        if column not in cols.fields:
            names = ", ".join(cols.fields)
            raise DataError(
                f"--order-by {column!r}: {path} has no such feature column (columns: {names})"
            )
        values = cols.fields[column].to_numpy(zero_copy_only=False)
        if cols.fields[column].null_count:
            raise DataError(
                f"--order-by {column!r}: {path} has {cols.fields[column].null_count} empty "
                "values in it; a time order needs a value on every row"
            )
        parts.append(np.asarray(values))
    keys = np.concatenate(parts) if parts else np.zeros(0)
    if keys.dtype.kind in "fiu":
        return keys.astype(np.float64)
    try:
        return keys.astype(np.float64)
    except (TypeError, ValueError):
        return keys.astype(str)


def chronological_split(keys: np.ndarray, fractions: Sequence[float]) -> np.ndarray:
    """The split (0 train, 1 val, 2 test) of each row: the earliest ``fractions[0]`` of the
    rows by ``keys`` are train, the next ``fractions[1]`` val, the rest test (sizes as
    :func:`~embsearch.data.prepare.split_rows` rounds them); an empty split is refused."""
    n = len(keys)
    n_tr = min(n, round(fractions[0] * n))
    n_va = min(n - n_tr, round(fractions[1] * n))
    for name, size in zip(SPLITS, (n_tr, n_va, n - n_tr - n_va)):
        if size == 0:
            raise DataError(
                f"the {name} split is empty ({n} rows cut by time); use more rows or a larger "
                f"{name} share in --split"
            )
    order = np.argsort(keys, kind="stable")
    which = np.full(n, 2, dtype=np.uint8)
    which[order[:n_tr]] = 0
    which[order[n_tr : n_tr + n_va]] = 1
    return which


def sort_splits(
    out: Path,
    keys: Sequence[np.ndarray],
    which: np.ndarray | None,
    chunk_rows: int,
) -> None:
    """Rewrite ``out/{split}_{x,y}.npy`` (written in file order) in time order. ``keys``: one
    array per input; ``which``: each row's split for one input (``None``: input i is split
    i)."""
    for s, name in enumerate(SPLITS):
        split_keys = keys[s] if which is None else keys[0][which == s]
        order = np.argsort(split_keys, kind="stable")
        if np.array_equal(order, np.arange(len(order))):
            continue
        for part in ("x", "y"):
            _permute(out / f"{name}_{part}.npy", order, chunk_rows)


def _permute(path: Path, order: np.ndarray, chunk_rows: int) -> None:
    """``path`` (a ``.npy``) rewritten with its rows in ``order``, ``chunk_rows`` at a time."""
    src = np.load(path, mmap_mode="r")
    tmp = path.with_name(path.name + ".sorted")
    with open(tmp, "wb") as fh:
        header = {"descr": src.dtype.str, "fortran_order": False, "shape": src.shape}
        np.lib.format.write_array_header_1_0(fh, header)
        for start in range(0, len(order), chunk_rows):
            np.ascontiguousarray(src[order[start : start + chunk_rows]]).tofile(fh)
    del src
    tmp.replace(path)
