"""Read a delimited or Parquet file as Arrow tables: whole, or in record batches (one job).

:mod:`embsearch.data.readers` picks the columns and options of each format; this module
only reads. ``batch_rows=None`` reads the whole file in one table (Arrow's multithreaded
reader); a number streams it in tables of about that many rows (whole blocks of the CSV
reader, or Parquet record batches), so ``data prepare`` holds one batch at a time (issue
22 item 6: data larger than memory). Both read the same rows with the same types: every
column's type is given, except a CSV label column, whose type Arrow infers from the first
block in both readers. Arrow and IO errors leave here as one-line ``DataError``.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from embsearch._text import printable
from embsearch.errors import DataError

#: bytes of text the streaming CSV reader parses at a time, at most: Arrow's default, which
#: its whole-file reader uses too (a batch of 256k Criteo rows is then ~64 record batches;
#: 8 MiB blocks, tried, cost ~20% more CPU in prepare's vocabulary pass: a block and its
#: parsed columns no longer stay in the CPU's cache) ...
STREAM_BLOCK_BYTES = 1 << 20
#: ... and per row asked for (about a Criteo row: small batches stay small), at least
#: STREAM_MIN_BLOCK_BYTES (a row longer than a block is an error in Arrow)
STREAM_ROW_BYTES = 256
STREAM_MIN_BLOCK_BYTES = 1 << 16


def one_line(exc: BaseException) -> str:
    """An exception's message on one line, escaped and cut (it may echo a binary file)."""
    return printable(" ".join(str(exc).split()) or type(exc).__name__)


@contextlib.contextmanager
def arrow_errors(path: str, fmt: str, hint: str = "") -> Iterator[None]:
    """Turn Arrow/IO failures into a one-line ``DataError`` naming the file."""
    try:
        yield
    except (pa.ArrowException, OSError, UnicodeDecodeError, EOFError) as exc:
        extra = f"; {hint}" if hint else f"; is it really {fmt} (check --format)?"
        raise DataError(f"cannot read {path} as {fmt}: {one_line(exc)}{extra}") from None


def guarded(tables: Iterator[pa.Table], path: str, fmt: str, hint: str = "") -> Iterator[pa.Table]:
    """``tables``, with each read (a ``next``) under :func:`arrow_errors`."""
    while True:
        with arrow_errors(path, fmt, hint):
            try:
                table = next(tables)
            except StopIteration:
                return
        yield table


def open_stream(path: str) -> pa.NativeFile:
    """Open ``path`` for reading, decompressing gzip when the file starts with its magic bytes."""
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return pa.input_stream(path, compression="gzip" if gz else None)


def csv_tables(
    path: str,
    rows: int | None,
    parse: pacsv.ParseOptions,
    read: pacsv.ReadOptions,
    convert: pacsv.ConvertOptions,
    batch_rows: int | None = None,
) -> Iterator[pa.Table]:
    """A delimited file (its first ``rows`` rows) as one table, or as tables of about
    ``batch_rows`` rows each; an empty file gives one empty table."""
    if batch_rows is None and rows is None:
        with open_stream(path) as stream:
            yield pacsv.read_csv(
                stream, read_options=read, parse_options=parse, convert_options=convert
            )
        return
    if batch_rows is not None:
        read = copy.copy(read)
        read.block_size = min(
            STREAM_BLOCK_BYTES, max(STREAM_MIN_BLOCK_BYTES, batch_rows * STREAM_ROW_BYTES)
        )
    limit = batch_rows if batch_rows is not None else rows
    with open_stream(path) as stream:
        reader = pacsv.open_csv(
            stream, read_options=read, parse_options=parse, convert_options=convert
        )
        yield from _grouped(reader, reader.schema, rows, limit)


def parquet_tables(
    pf: pq.ParquetFile, columns: list[str], rows: int | None, batch_rows: int | None = None
) -> Iterator[pa.Table]:
    """``columns`` of a Parquet file (its first ``rows`` rows) as one table, or as tables of
    about ``batch_rows`` rows each."""
    if batch_rows is None and rows is None:
        yield pf.read(columns=columns)
        return
    size = batch_rows if batch_rows is not None else min(rows or 1, 1 << 16)
    schema = pa.schema([pf.schema_arrow.field(n) for n in columns])
    limit = batch_rows if batch_rows is not None else rows
    yield from _grouped(pf.iter_batches(batch_size=size, columns=columns), schema, rows, limit)


def _grouped(
    batches: Iterator[pa.RecordBatch], schema: pa.Schema, rows: int | None, limit: int | None
) -> Iterator[pa.Table]:
    """Record batches gathered into tables of at least ``limit`` rows (the last may be
    shorter), stopping after ``rows`` rows; no batch at all gives one empty table."""
    group: list[pa.RecordBatch] = []
    have = total = 0
    for batch in batches:
        if rows is not None and total + batch.num_rows > rows:
            batch = batch.slice(0, rows - total)
        group.append(batch)
        have += batch.num_rows
        total += batch.num_rows
        if limit is not None and have >= limit:
            yield pa.Table.from_batches(group, schema=schema)
            group, have = [], 0
        if rows is not None and total >= rows:
            break
    if group or total == 0:
        yield pa.Table.from_batches(group, schema=schema)
