"""The passes of ``data prepare`` over record batches, so that its memory is bounded by the
vocabulary and the batch, not the file (issue 22 item 6: data larger than memory).

1. :func:`read_codes`, the vocabulary pass: each input file is read in record batches
   (:func:`~embsearch.data.readers.iter_columns`); every field's values get dense codes in
   order of first appearance (:class:`~embsearch.data.codes.ColumnCodes`, growing over
   the train file, looked up for the validation and test files) and the codes go to a
   scratch ``int32 [rows, fields]`` file beside the output, the labels to another.
2. :func:`count_train`: the train rows' count of each code and each split's label counts,
   read back in chunks (a single input's split is known only once its rows are counted).
3. :func:`write_splits`, the encoding pass: the scratch codes, in chunks, mapped to ids by
   each field's frequency ranking and appended to the ``.npy`` files of their split, in
   file order (the order a whole-file read gives), with the header ``numpy.save`` writes.

The prepared files are byte for byte those of a whole-file read: the codes, hence the ids,
do not depend on the batch size. Held in memory: the vocabularies, one batch, one chunk,
and for a single input one byte per row naming its split (its seeded permutation, drawn
once, takes 8 bytes per row while it is drawn).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from embsearch.data.codes import ColumnCodes
from embsearch.data.encode import apply_ranking
from embsearch.data.readers import Columns, iter_columns

#: rows per record batch of the vocabulary pass, and per chunk of the later passes
#: (an extension: ``data prepare --batch-rows``; about 100 MB of Criteo text and Arrow
#: columns at this size)
BATCH_ROWS = 1 << 18

T = TypeVar("T")


@dataclass
class CodedInputs:
    """What the vocabulary pass leaves: per-field codes, and the scratch files of each input."""

    names: list[str]
    coders: list[ColumnCodes]
    rows: list[int] = field(default_factory=list)  # rows of each input file
    positives: list[int] = field(default_factory=list)  # positive labels of each input file
    codes: list[Path] = field(default_factory=list)  # int32 [rows, fields] per input
    labels: list[Path] = field(default_factory=list)  # float32 [rows] per input

    def chunks(self, i: int, chunk_rows: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """``(start, codes, labels)`` of input ``i``, ``chunk_rows`` rows at a time (read
        with ``np.fromfile``: no mapping of the whole file stays resident)."""
        width = len(self.names)
        for start in range(0, self.rows[i], chunk_rows):
            n = min(chunk_rows, self.rows[i] - start)
            codes = np.fromfile(self.codes[i], np.int32, n * width, offset=start * width * 4)
            labels = np.fromfile(self.labels[i], np.float32, n, offset=start * 4)
            yield start, codes.reshape(n, width), labels

    def remove(self) -> None:
        for p in (*self.codes, *self.labels):
            p.unlink(missing_ok=True)


def read_codes(
    fmt: str,
    inputs: Sequence[str],
    scratch: Path,
    options: dict[str, Any],
    rows: int | None,
    batch_rows: int,
) -> CodedInputs:
    """Pass 1 (see module): input 0 (the train file, or the single file) grows each field's
    codes, later inputs are looked up in them."""
    coded: CodedInputs | None = None
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        for i, path in enumerate(inputs):
            codes_path, labels_path = scratch / f".codes-{i}.i32", scratch / f".labels-{i}.f32"
            n = pos = 0
            with open(codes_path, "wb") as fc, open(labels_path, "wb") as fl:
                batches = prefetched(
                    iter_columns(fmt, path, **options, rows=rows, batch_rows=batch_rows)
                )
                for cols in batches:
                    if coded is None:
                        names = list(cols.fields)
                        coders = [ColumnCodes(name in cols.numeric) for name in names]
                        coded = CodedInputs(names, coders)
                    block = _encode_batch(pool, coded, cols, grow=i == 0)
                    block.tofile(fc)
                    np.asarray(cols.label, dtype=np.float32).tofile(fl)
                    n += cols.rows
                    pos += int(np.count_nonzero(cols.label))
            assert coded is not None  # iter_columns yields at least one batch or raises
            coded.rows.append(n)
            coded.positives.append(pos)
            coded.codes.append(codes_path)
            coded.labels.append(labels_path)
    assert coded is not None
    return coded


def prefetched(items: Iterator[T]) -> Iterator[T]:
    """``items``, the next one produced by a worker thread while the caller works on the
    current one (reading a batch overlaps encoding the last: Arrow releases the GIL).
    An exception in the worker is raised here, at the item it replaced."""
    slot: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()
    done = object()

    def put(entry: tuple) -> bool:
        """Hand ``entry`` over unless the caller has stopped; False when it has."""
        while not stop.is_set():
            try:
                slot.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as exc:  # handed to the caller
            put((done, exc))

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    try:
        while True:
            item, exc = slot.get()
            if exc is not None:
                raise exc
            if item is done:
                return
            yield item
    finally:
        stop.set()
        worker.join()
        close = getattr(items, "close", None)
        if close is not None:
            close()


def _encode_batch(
    pool: ThreadPoolExecutor, coded: CodedInputs, cols: Columns, grow: bool
) -> np.ndarray:
    """One batch's ``int32 [rows, fields]`` codes, a worker thread per field (Arrow and
    numpy release the GIL)."""
    block = np.empty((cols.rows, len(coded.names)), dtype=np.int32)

    def encode(j: int) -> None:
        block[:, j] = coded.coders[j].encode(cols.fields[coded.names[j]], grow=grow)

    list(pool.map(encode, range(len(coded.names))))
    return block


def count_train(
    coded: CodedInputs, which: np.ndarray | None, chunk_rows: int
) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
    """Pass 2 (see module): the train rows' count of every code of every field, and each
    split's ``(positives, rows)``. ``which``: the split (0, 1, 2) of each row of a single
    input; ``None``: the inputs are the train, validation and test files."""
    freq = [np.zeros(c.n, dtype=np.int64) for c in coded.coders]
    if which is None:  # input i is split i; only the train file is counted
        labels = [[p, n] for p, n in zip(coded.positives, coded.rows)]
    else:
        labels = [[0, 0], [0, 0], [0, 0]]
    for start, codes, y in coded.chunks(0, chunk_rows):
        if which is not None:
            part = which[start : start + len(y)]
            for s in range(3):
                labels[s][0] += int(np.count_nonzero(y[part == s]))
                labels[s][1] += int(np.count_nonzero(part == s))
            codes = codes[part == 0]
        for j, f in enumerate(freq):
            f += np.bincount(codes[:, j], minlength=len(f))
    return freq, [(p, n) for p, n in labels]


def write_splits(
    coded: CodedInputs,
    which: np.ndarray | None,
    remaps: Sequence[np.ndarray],
    keep: Sequence[int],
    sizes: Sequence[int],
    out: Path,
    chunk_rows: int,
) -> None:
    """Pass 3 (see module): ``out/{train,val,test}_{x,y}.npy`` of the kept fields' ids,
    ``sizes`` rows each, written in chunks."""
    with ExitStack() as stack:
        xs, ys = [], []
        for name, size in zip(("train", "val", "test"), sizes):
            xs.append(_npy(stack, out / f"{name}_x.npy", "<i4", (int(size), len(keep))))
            ys.append(_npy(stack, out / f"{name}_y.npy", "<f4", (int(size),)))
        for i in range(len(coded.rows)):
            for start, codes, y in coded.chunks(i, chunk_rows):
                ids = np.empty((len(y), len(keep)), dtype=np.int32)
                for k, j in enumerate(keep):
                    ids[:, k] = apply_ranking(codes[:, j], remaps[j])
                if which is None:
                    ids.tofile(xs[i])
                    y.tofile(ys[i])
                    continue
                part = which[start : start + len(y)]
                for s in range(3):
                    sel = part == s
                    ids[sel].tofile(xs[s])
                    y[sel].tofile(ys[s])


def _npy(stack: ExitStack, path: Path, descr: str, shape: tuple[int, ...]) -> Any:
    """``path`` opened for writing, with the ``.npy`` header ``numpy.save`` writes for an
    array of ``descr`` and ``shape`` (format 1.0); the data follows in C order."""
    fh = stack.enter_context(open(path, "wb"))
    np.lib.format.write_array_header_1_0(
        fh, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return fh
