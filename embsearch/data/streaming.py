"""The passes of ``data prepare`` over record batches, so that its memory is bounded by the
vocabulary and the batch, not the file (issue 22 item 6: data larger than memory).

1. :func:`read_codes`, the vocabulary pass: each input file is read in record batches
   (:func:`~embsearch.data.readers.iter_columns`); every field's values get dense codes in
   order of first appearance (:class:`~embsearch.data.codes.ColumnCodes`, growing over
   the train file, looked up for the validation and test files) and the codes go to a
   scratch file beside the output, batch by batch and field by field (each field's codes
   contiguous, in 1, 2 or 4 bytes: :class:`Batch`), the labels to another. The train file's count of every code
   is taken here, on the batch's codes.
2. :func:`count_train`: for a single input, whose split is known only once its rows are
   counted, the validation and test rows' codes, read back batch by batch, are taken off
   those counts; and each split's label counts.
3. :func:`write_splits`, the encoding pass: the scratch codes, batch by batch, mapped to
   ids by each field's frequency ranking and appended to the ``.npy`` files of their
   split, in file order (the order a whole-file read gives), with the header
   ``numpy.save`` writes.

The prepared files are byte for byte those of a whole-file read: the codes, hence the ids,
do not depend on the batch size. Held in memory: the vocabularies, one batch, and for a
single input one byte per row naming its split (its seeded permutation, drawn once, takes
8 bytes per row while it is drawn). Worker threads encode a batch's fields and a batch's
rows (Arrow and numpy release the GIL) while a reader thread parses the next batch.
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
from embsearch.data.readers import Columns, iter_columns

#: rows per record batch of the vocabulary pass (an extension: ``data prepare
#: --batch-rows``; about 100 MB of Criteo text and Arrow columns at this size)
BATCH_ROWS = 1 << 18
#: rows per task of the encoding pass: a block of ids this size stays in the CPU's cache
#: while its fields are filled in
ROW_BLOCK = 1 << 13

T = TypeVar("T")


@dataclass
class Batch:
    """Where one record batch's codes lie in its input's scratch file: each field's codes
    plus one (0: a value unseen in the train file) in the narrowest unsigned type that holds
    the field's codes so far (:func:`_narrowed`), one field after the other, each padded to
    4 bytes."""

    rows: int
    dtypes: list[np.dtype]
    offset: int  # bytes before this batch in the scratch file

    def sizes(self) -> list[int]:
        """Bytes of each field's codes, padded."""
        return [-(-self.rows * dt.itemsize // 4) * 4 for dt in self.dtypes]


@dataclass
class CodedInputs:
    """What the vocabulary pass leaves: per-field codes and train counts (``coders``), and
    the scratch files of each input."""

    names: list[str]
    coders: list[ColumnCodes]
    rows: list[int] = field(default_factory=list)  # rows of each input file
    positives: list[int] = field(default_factory=list)  # positive labels of each input file
    batches: list[list[Batch]] = field(default_factory=list)  # the batches of each input
    codes: list[Path] = field(default_factory=list)  # the codes of each input, batch by batch
    labels: list[Path] = field(default_factory=list)  # float32 [rows] per input

    def chunks(self, i: int) -> Iterator[tuple[int, list[np.ndarray], np.ndarray]]:
        """``(start, codes, labels)`` of input ``i``, batch by batch: ``codes[j]`` holds
        field j's codes plus one (see :class:`Batch`). Read with ``np.fromfile``: no mapping
        of the whole file stays resident."""
        start = 0
        for b in self.batches[i]:
            sizes = b.sizes()
            raw = np.fromfile(self.codes[i], np.uint8, sum(sizes), offset=b.offset)
            ends = np.cumsum(sizes)
            codes = [
                raw[end - size : end].view(dt)[: b.rows]
                for size, end, dt in zip(sizes, ends, b.dtypes)
            ]
            labels = np.fromfile(self.labels[i], np.float32, b.rows, offset=start * 4)
            yield start, codes, labels
            start += b.rows

    def remove(self) -> None:
        for p in (*self.codes, *self.labels):
            p.unlink(missing_ok=True)


def _narrowed(codes: np.ndarray, n: int) -> np.ndarray:
    """``codes + 1`` (codes ``-1 .. n-1``) as uint8, uint16 or uint32, the narrowest that
    holds ``n``: the scratch files take 1-2 bytes per field and row where the field's
    vocabulary is small (most of Criteo's) rather than 4."""
    dtype = np.uint8 if n < 1 << 8 else np.uint16 if n < 1 << 16 else np.uint32
    out = np.empty(len(codes), dtype=dtype)
    np.add(codes, 1, out=out, casting="unsafe")
    return out


def _workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def read_codes(
    fmt: str,
    inputs: Sequence[str],
    scratch: Path,
    options: dict[str, Any],
    rows: int | None,
    batch_rows: int,
) -> CodedInputs:
    """Pass 1 (see module): input 0 (the train file, or the single file) grows each field's
    codes and counts them, later inputs are looked up in them."""
    coded: CodedInputs | None = None
    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        for i, path in enumerate(inputs):
            codes_path, labels_path = scratch / f".codes-{i}", scratch / f".labels-{i}.f32"
            n = pos = offset = 0
            done: list[Batch] = []
            with open(codes_path, "wb") as fc, open(labels_path, "wb") as fl:
                batches = prefetched(
                    iter_columns(fmt, path, **options, rows=rows, batch_rows=batch_rows)
                )
                for cols in batches:
                    if coded is None:
                        names = list(cols.fields)
                        coders = [ColumnCodes(name in cols.numeric) for name in names]
                        coded = CodedInputs(names, coders)
                    fields = _encode_batch(pool, coded, cols, grow=i == 0)
                    done.append(Batch(cols.rows, [c.dtype for c in fields], offset))
                    for codes, size in zip(fields, done[-1].sizes()):
                        codes.tofile(fc)
                        fc.write(bytes(size - codes.nbytes))  # padding
                        offset += size
                    np.asarray(cols.label, dtype=np.float32).tofile(fl)
                    n += cols.rows
                    pos += int(np.count_nonzero(cols.label))
            assert coded is not None  # iter_columns yields at least one batch or raises
            coded.rows.append(n)
            coded.positives.append(pos)
            coded.batches.append(done)
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
) -> list[np.ndarray]:
    """One batch's codes, field by field, as the scratch file holds them
    (:func:`_narrowed`), a worker thread per field; with ``grow`` (the train file), each
    field's counts grow by the batch's."""

    def encode(j: int) -> np.ndarray:
        codes = coded.coders[j].encode(cols.fields[coded.names[j]], grow=grow)
        return _narrowed(codes, coded.coders[j].n)

    return list(pool.map(encode, range(len(coded.names))))


def count_train(
    coded: CodedInputs, which: np.ndarray | None
) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
    """Pass 2 (see module): the train rows' count of every code of every field, and each
    split's ``(positives, rows)``. ``which``: the split (0, 1, 2) of each row of a single
    input; ``None``: the inputs are the train, validation and test files."""
    freq = [c.freq.copy() for c in coded.coders]
    if which is None:  # input i is split i; the train file was counted as it was read
        return freq, list(zip(coded.positives, coded.rows))
    labels = [[0, 0], [0, 0], [0, 0]]
    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        for start, codes, y in coded.chunks(0):
            part = which[start : start + len(y)]
            for s in range(3):
                labels[s][0] += int(np.count_nonzero(y[part == s]))
                labels[s][1] += int(np.count_nonzero(part == s))
            held_out = np.flatnonzero(part != 0)

            def take_off(j: int, codes: list = codes, rows: np.ndarray = held_out) -> None:
                freq[j] -= np.bincount(codes[j][rows], minlength=len(freq[j]) + 1)[1:]

            list(pool.map(take_off, range(len(freq))))
    return freq, [(p, n) for p, n in labels]


def write_splits(
    coded: CodedInputs,
    which: np.ndarray | None,
    remaps: Sequence[np.ndarray],
    keep: Sequence[int],
    sizes: Sequence[int],
    out: Path,
) -> None:
    """Pass 3 (see module): ``out/{train,val,test}_{x,y}.npy`` of the kept fields' ids,
    ``sizes`` rows each, written batch by batch, each batch's rows in blocks of
    :data:`ROW_BLOCK` by worker threads."""
    # lut[j][code + 1] = id, lut[j][0] = 0 (OOV) for a value unseen in the train rows
    luts = [np.concatenate([[0], remaps[j]]).astype(np.int32) for j in keep]
    with ExitStack() as stack, ThreadPoolExecutor(max_workers=_workers()) as pool:
        xs, ys = [], []
        for name, size in zip(("train", "val", "test"), sizes):
            xs.append(_npy(stack, out / f"{name}_x.npy", "<i4", (int(size), len(keep))))
            ys.append(_npy(stack, out / f"{name}_y.npy", "<f4", (int(size),)))
        for i in range(len(coded.rows)):
            for start, codes, y in coded.chunks(i):
                part = None if which is None else which[start : start + len(y)]

                def ids_of(a: int, codes: list = codes, rows: int = len(y)) -> np.ndarray:
                    """The ids of rows ``a .. a + ROW_BLOCK`` of the batch, ``[rows, kept]``."""
                    b = min(a + ROW_BLOCK, rows)
                    ids = np.empty((b - a, len(keep)), dtype=np.int32)
                    for k, (j, lut) in enumerate(zip(keep, luts)):
                        np.take(lut, codes[j][a:b], out=ids[:, k], mode="clip")
                    return ids

                for a, ids in zip(
                    range(0, len(y), ROW_BLOCK), pool.map(ids_of, range(0, len(y), ROW_BLOCK))
                ):
                    if part is None:
                        ids.tofile(xs[i])
                        continue
                    sub = part[a : a + len(ids)]
                    for s in range(3):
                        ids[sub == s].tofile(xs[s])
                if part is None:
                    y.tofile(ys[i])
                else:
                    for s in range(3):
                        y[part == s].tofile(ys[s])


def _npy(stack: ExitStack, path: Path, descr: str, shape: tuple[int, ...]) -> Any:
    """``path`` opened for writing, with the ``.npy`` header ``numpy.save`` writes for an
    array of ``descr`` and ``shape`` (format 1.0); the data follows in C order."""
    fh = stack.enter_context(open(path, "wb"))
    np.lib.format.write_array_header_1_0(
        fh, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return fh
