"""A prepared dataset: contiguous ``int32 [rows, fields]`` ids and ``float32`` labels per split.

On disk (written by ``embsearch data prepare``)::

    DIR/schema.json  DIR/counts.npz
    DIR/{train,val,test}_x.npy   int32 [rows, fields]
    DIR/{train,val,test}_y.npy   float32 [rows]

Arrays are memory-mapped on load; batches are slices of a permutation (see ``batches.py``),
cut from the whole split held in memory or, for a split that does not fit, from chunks of
the memory-mapped arrays (``chunks.py``). ``prepare`` writes the files in record batches
(``streaming.py``).
"""

from __future__ import annotations

import mmap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embsearch._atomic import staged_dir
from embsearch.data.schema import Schema
from embsearch.errors import DataError

SPLITS = ("train", "val", "test")


#: rows per block of the checks that read a whole split (bounded memory on mapped data)
CHECK_ROWS = 1 << 20


def release_pages(arr: np.ndarray) -> None:
    """Drop the pages of a read-only memory-mapped array from this process's resident set
    (``MADV_DONTNEED``; they stay in the page cache, and a later read maps them again), so
    reading a large split leaves no resident memory behind. Other arrays: nothing."""
    mm = getattr(arr, "_mmap", None)
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if mm is None or advice is None or arr.flags.writeable:
        return
    try:
        mm.madvise(advice)
    except (OSError, ValueError):
        pass


def _ids_in_range(x: np.ndarray, card: np.ndarray) -> bool:
    """Every id of ``x`` in ``[0, card[field])``, read in blocks of :data:`CHECK_ROWS` rows."""
    for start in range(0, len(x), CHECK_ROWS):
        block = x[start : start + CHECK_ROWS]
        ok = block.min() >= 0 and not (block.max(axis=0) >= card).any()
        release_pages(x)
        if not ok:
            return False
    return True


@dataclass
class Split:
    """Ids and labels of one split."""

    x: np.ndarray  # int32 [rows, fields]
    y: np.ndarray  # float32 [rows]

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass
class Dataset:
    """A schema plus its train/val/test splits."""

    schema: Schema
    train: Split
    val: Split
    test: Split

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; use one of {', '.join(SPLITS)}")
        return getattr(self, name)

    def fingerprint(self) -> str:
        sizes = "-".join(str(len(self.split(s))) for s in SPLITS)
        return f"{self.schema.fingerprint()}-{sizes}"

    def validate(self) -> None:
        """Check shapes, dtypes, id ranges and labels; raise :class:`DataError` naming the problem."""
        card = np.asarray(self.schema.cardinalities, dtype=np.int64)
        for name in SPLITS:
            s = self.split(name)
            if len(s) == 0:
                raise DataError(f"the {name} split is empty; use a larger input or change --split")
            if s.x.ndim != 2 or s.x.shape[1] != len(card):
                raise DataError(f"{name}_x has shape {s.x.shape}; expected (rows, {len(card)})")
            if s.y.shape != (s.x.shape[0],):
                raise DataError(f"{name}_y has shape {s.y.shape}; expected ({s.x.shape[0]},)")
            if not _ids_in_range(s.x, card):
                raise DataError(f"{name}_x holds ids outside [0, cardinality) for some field")

    def save(
        self,
        directory: str | Path,
        *,
        extra_writer: Callable[[Path], None] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        """Write the dataset atomically: staged in a hidden sibling directory, then renamed to
        ``directory``, which must not hold anything by then (it is never overwritten).

        ``extra_writer(tmp)`` may add files (e.g. vocabularies) to the staged directory.
        ``warn`` hears of staging that killed processes left beside it (removed)."""
        try:
            with staged_dir(directory, warn=warn) as tmp:
                self.schema.save(tmp)
                for name in SPLITS:
                    s = self.split(name)
                    np.save(tmp / f"{name}_x.npy", np.ascontiguousarray(s.x, dtype=np.int32))
                    np.save(tmp / f"{name}_y.npy", np.ascontiguousarray(s.y, dtype=np.float32))
                if extra_writer is not None:
                    extra_writer(tmp)
        except FileExistsError:
            raise DataError(
                f"{directory} already exists; choose another --out or remove it"
            ) from None

    @classmethod
    def load(cls, directory: str | Path, *, mmap: bool = True, validate: bool = True) -> Dataset:
        """The dataset at ``directory``, its arrays memory-mapped (``mmap``), checked by
        :meth:`validate` unless ``validate`` is false (``prepare`` wrote it just now)."""
        directory = Path(directory)
        if not directory.is_dir():
            raise DataError(
                f"data directory {directory} does not exist; create it with `embsearch data prepare`"
            )
        schema = Schema.load(directory)
        splits = {}
        mode = "r" if mmap else None
        for name in SPLITS:
            xp, yp = directory / f"{name}_x.npy", directory / f"{name}_y.npy"
            if not xp.is_file() or not yp.is_file():
                raise DataError(
                    f"{directory} lacks {xp.name} or {yp.name}; re-run `embsearch data prepare`"
                )
            splits[name] = Split(np.load(xp, mmap_mode=mode), np.load(yp, mmap_mode=mode))
        ds = cls(schema, **splits)
        if validate:
            ds.validate()
        return ds
