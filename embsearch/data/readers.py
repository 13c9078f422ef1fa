"""Read raw input files into columns (one job; encoding happens in :mod:`prepare`).

Each reader returns a :class:`Columns`: the 0/1 label as ``float32`` plus the feature
columns as Arrow arrays, in file order, with the names of the columns that are numeric
(to be bucketised). Formats:

* ``criteo``: TSV without header, ``label, I1..I13, C1..C26``; an empty ``C`` cell is a
  value of its own (``""``), an empty ``I`` cell is missing.
* ``avazu``: CSV with header; label ``click``, column ``id`` dropped, the rest categorical.
* ``csv`` / ``parquet``: generic; the caller names the label, categorical and numeric columns
  (default categorical: every column that is not the label, numeric or dropped). CSV
  categoricals are read as strings (hex ids stay intact), numerics as float64 (empty/NA =
  missing); Parquet dictionary columns are decoded to plain values.
* ``libfm``: ``label idx:val idx:val ...`` with the same number of tokens per line in a
  fixed field order (frappe); field ``fj`` is the j-th token, ``:val`` is ignored, label
  ``-1`` means 0.

Gzip input is detected by its magic bytes (whatever the file name). ``rows`` keeps the
first rows of a file. :func:`iter_columns` yields a file in record batches (what ``data
prepare`` reads, :mod:`embsearch.data.tables`); :func:`read_columns` returns it whole. All parsing runs in Arrow (C++, multithreaded); nothing loops over
rows in Python. Labels must be 0/1 (``decode_label``); anything else is a ``DataError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from embsearch._text import printable
from embsearch.data.tables import arrow_errors, csv_tables, guarded, open_stream, parquet_tables
from embsearch.errors import ConfigError, DataError

FORMATS = ("criteo", "avazu", "csv", "libfm", "parquet")
CRITEO_INT = tuple(f"I{i}" for i in range(1, 14))
CRITEO_CAT = tuple(f"C{i}" for i in range(1, 27))
_CRITEO_HINT = (
    "criteo expects 40 tab-separated columns per line (label, I1..I13, C1..C26) and no header"
)
_LIBFM_HINT = "libfm expects lines 'label idx:val ...' with the same number of tokens on every line"


@dataclass
class Columns:
    """The columns read from one input file."""

    path: str
    label_name: str
    label: np.ndarray  # float32 [rows], values 0/1
    fields: dict[str, pa.ChunkedArray]  # feature columns in file order
    numeric: frozenset[str] = frozenset()  # names in ``fields`` to bucketise
    dropped: list[str] = field(default_factory=list)  # columns present in the file but not used

    @property
    def rows(self) -> int:
        return int(self.label.shape[0])


def read_columns(
    fmt: str,
    path: str,
    *,
    label: str | None = None,
    categorical: list[str] | None = None,
    numeric: list[str] | None = None,
    drop: list[str] | None = None,
    rows: int | None = None,
) -> Columns:
    """Read one file of format ``fmt`` (see module docstring); raise ``DataError`` on bad input."""
    opts = {"label": label, "categorical": categorical, "numeric": numeric, "drop": drop}
    return next(iter_columns(fmt, path, **opts, rows=rows))


def iter_columns(
    fmt: str,
    path: str,
    *,
    label: str | None = None,
    categorical: list[str] | None = None,
    numeric: list[str] | None = None,
    drop: list[str] | None = None,
    rows: int | None = None,
    batch_rows: int | None = None,
) -> Iterator[Columns]:
    """One file of format ``fmt`` as :class:`Columns` of about ``batch_rows`` rows each, in
    file order (``None``: one of the whole file). Options are checked, and ``DataError`` or
    ``ConfigError`` raised, at the first ``next``; bad data at the batch that holds it."""
    drop = list(drop or [])
    p = Path(path)
    if not p.is_file():
        raise DataError(f"input file {path} does not exist or is not a file; check the path")
    if fmt == "criteo":
        _no_options(fmt, label=label, categorical=categorical, numeric=numeric)
        return _read_criteo(path, drop, rows, batch_rows)
    if fmt == "libfm":
        _no_options(fmt, label=label, categorical=categorical, numeric=numeric)
        return _read_libfm(path, drop, rows, batch_rows)
    if fmt == "avazu":
        optional = [] if "id" in (categorical or []) + (numeric or []) else ["id"]
        return _read_table(
            fmt, path, label or "click", categorical, numeric, drop, optional, rows, batch_rows
        )
    if fmt in ("csv", "parquet"):
        if not label:
            raise ConfigError(f"format {fmt} needs the label column; pass --label NAME")
        return _read_table(fmt, path, label, categorical, numeric, drop, [], rows, batch_rows)
    raise ConfigError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def decode_label(
    col: pa.ChunkedArray | pa.Array,
    name: str,
    path: str,
    *,
    minus_one: bool = False,
    hint: str = "is --label the right column?",
    offset: int = 0,
) -> np.ndarray:
    """Map a label column to ``float32`` 0/1. Only 0 and 1 (and -1 = 0 if ``minus_one``) are
    accepted, written as numbers, strings (``"1"``, ``"1.0"``) or booleans. ``offset``: the
    file's rows before ``col`` (a record batch), for the row number in a message."""
    if col.null_count:
        first = int(pc.index(pc.is_null(col), True).as_py())
        raise DataError(
            f"label column {name!r} in {path} is empty on data row {offset + first + 1}; every row needs a 0/1 label"
        )
    enc = pc.dictionary_encode(col)
    chunks = enc.chunks if isinstance(enc, pa.ChunkedArray) else [enc]
    if not chunks or len(col) == 0:
        return np.zeros(0, dtype=np.float32)
    dictionary = chunks[-1].dictionary
    lut = np.empty(len(dictionary), dtype=np.float32)
    allowed = {0.0: 0.0, 1.0: 1.0, -1.0: 0.0} if minus_one else {0.0: 0.0, 1.0: 1.0}
    for i, value in enumerate(dictionary.to_pylist()):  # unique values only: 2 or 3 when valid
        try:
            lut[i] = allowed[float(value)]
        except (KeyError, TypeError, ValueError):
            ok = "-1/0/1" if minus_one else "0/1"
            raise DataError(
                f"label column {name!r} in {path} holds the value {printable(repr(str(value)), 80)}; "
                f"labels must be {ok} ({hint})"
            ) from None
    codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in chunks])
    return lut[codes]


def _no_options(fmt: str, **opts: object) -> None:
    for key, value in opts.items():
        if value:
            raise ConfigError(
                f"format {fmt} has fixed columns; --{key} is only for csv, avazu and parquet"
            )


def _first_line(path: str, fmt: str) -> str:
    with arrow_errors(path, fmt), open_stream(path) as s:
        head = s.read(1 << 20)
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    if not line.strip():
        raise DataError(f"{path} is empty (or starts with a blank line); it holds no {fmt} data")
    return line.decode("utf-8", errors="replace")


def _check_rows(table: pa.Table, path: str, fmt: str, offset: int = 0) -> None:
    if table.num_rows == 0 and offset == 0:
        raise DataError(f"{path} holds no data rows; give a non-empty {fmt} file")


def _read_criteo(
    path: str, drop: list[str], rows: int | None, batch_rows: int | None
) -> Iterator[Columns]:
    names = ["label", *CRITEO_INT, *CRITEO_CAT]
    unknown = [d for d in drop if d not in names[1:]]
    if unknown:
        raise DataError(
            f"--drop names {', '.join(unknown)}, which criteo lacks; criteo columns are I1..I13, C1..C26"
        )
    keep = [n for n in names if n not in drop]
    types = {
        "label": pa.string(),
        **dict.fromkeys(CRITEO_INT, pa.int64()),
        **dict.fromkeys(CRITEO_CAT, pa.string()),
    }
    tables = csv_tables(
        path,
        rows,
        pacsv.ParseOptions(delimiter="\t", quote_char=False),
        pacsv.ReadOptions(column_names=names),
        pacsv.ConvertOptions(
            column_types=types, include_columns=keep, quoted_strings_can_be_null=False
        ),
        batch_rows,
    )
    offset = 0
    for table in guarded(tables, path, "criteo", _CRITEO_HINT):
        _check_rows(table, path, "criteo", offset)
        label = decode_label(
            table.column("label"),
            "label",
            path,
            hint="is this really a criteo file?",
            offset=offset,
        )
        offset += table.num_rows
        fields = {n: table.column(n) for n in keep[1:]}
        yield Columns(path, "label", label, fields, frozenset(CRITEO_INT) - set(drop), list(drop))


def _read_libfm(
    path: str, drop: list[str], rows: int | None, batch_rows: int | None
) -> Iterator[Columns]:
    tokens = _first_line(path, "libfm").split(" ")
    while tokens and tokens[-1] == "":  # trailing spaces
        tokens.pop()
    if len(tokens) < 2 or ":" not in tokens[1]:
        raise DataError(
            f"cannot read {path} as libfm: first line has no idx:val token; {_LIBFM_HINT}"
        )
    names = ["label", *(f"f{j}" for j in range(len(tokens) - 1))]
    unknown = [d for d in drop if d not in names[1:]]
    if unknown:
        raise DataError(
            f"--drop names {', '.join(unknown)}, which this libfm file lacks; its fields are f0..f{len(names) - 2}"
        )
    keep = [n for n in names if n not in drop]
    tables = csv_tables(
        path,
        rows,
        pacsv.ParseOptions(delimiter=" ", quote_char=False),
        pacsv.ReadOptions(column_names=names),
        pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()), include_columns=keep),
        batch_rows,
    )
    offset = 0
    for table in guarded(tables, path, "libfm", _LIBFM_HINT):
        _check_rows(table, path, "libfm", offset)
        label = decode_label(
            table.column("label"),
            "label",
            path,
            minus_one=True,
            hint="is this really a libfm file?",
            offset=offset,
        )
        offset += table.num_rows
        fields = {}
        for n in keep[1:]:
            col = table.column(n)
            if not pc.all(pc.match_substring(col, ":")).as_py():
                raise DataError(
                    f"cannot read {path} as libfm: field {n} has a token without ':'; {_LIBFM_HINT}"
                )
            fields[n] = pc.replace_substring_regex(col, pattern=":[^:]*$", replacement="")
        yield Columns(path, "label", label, fields, frozenset(), list(drop))


def _resolve(
    names: list[str],
    path: str,
    label: str,
    categorical: list[str] | None,
    numeric: list[str] | None,
    drop: list[str],
    optional_drop: list[str],
) -> tuple[list[str], list[str], list[str]]:
    """Check the named columns exist; return (categorical, numeric, dropped) in file order."""
    numeric = list(numeric or [])
    named = [label, *(categorical or []), *numeric, *drop]
    cols = printable(", ".join(names))  # a binary file's "header" is garbage: escaped, cut
    if label not in names:
        raise DataError(
            f"label column {label!r} not found in {path}; its columns are: {cols} (use --label)"
        )
    missing = [n for n in dict.fromkeys(named) if n not in names]
    if missing:
        raise DataError(
            f"column {', '.join(map(repr, missing))} not found in {path}; its columns are: {cols}"
        )
    dropped = set(drop) | {d for d in optional_drop if d in names}
    if categorical is None:
        categorical = [n for n in names if n != label and n not in numeric and n not in dropped]
    both = [n for n in categorical if n in numeric]
    if label in categorical or label in numeric or label in drop or both:
        clash = both or [label]
        raise ConfigError(
            f"column {clash[0]!r} is named twice (as label, categorical, numeric or drop); name it once"
        )
    used = set(categorical) | set(numeric)
    bad = sorted(used & set(drop))
    if bad:
        raise ConfigError(
            f"column {bad[0]!r} is both used and dropped; remove it from --drop or from its list"
        )
    if not used:
        raise DataError(
            f"no feature columns left in {path} after choosing label and --drop; name some with --categorical"
        )
    twice = sorted({n for n in [label, *used] if names.count(n) > 1})
    if twice:
        raise DataError(
            f"{path} has {names.count(twice[0])} columns named {twice[0]!r}; column names must be "
            "unique: rename one in the header"
        )
    order = list(dict.fromkeys(n for n in names if n in used))
    return order, numeric, [n for n in names if n not in used and n != label]


def _read_table(
    fmt: str,
    path: str,
    label: str,
    categorical: list[str] | None,
    numeric: list[str] | None,
    drop: list[str],
    optional_drop: list[str],
    rows: int | None,
    batch_rows: int | None,
) -> Iterator[Columns]:
    """CSV with a header (``csv``, ``avazu``) or Parquet: pick label, categorical and numeric columns."""
    if fmt == "parquet":
        with arrow_errors(path, fmt):
            pf = pq.ParquetFile(path)
            names = pf.schema_arrow.names
    else:
        with arrow_errors(path, fmt), open_stream(path) as stream:
            names = pacsv.open_csv(stream).schema.names
    order, numeric, dropped = _resolve(
        names, path, label, categorical, numeric, drop, optional_drop
    )
    keep = [label, *order]
    hint = ""
    if fmt == "parquet":
        tables = parquet_tables(pf, keep, rows, batch_rows)
    else:
        types = {n: pa.float64() if n in numeric else pa.string() for n in order}
        if numeric:
            hint = (
                f"--numeric columns ({', '.join(map(repr, numeric))}) must hold numbers only; "
                "list text columns under --categorical"
            )
        tables = csv_tables(
            path,
            rows,
            pacsv.ParseOptions(),
            pacsv.ReadOptions(),
            pacsv.ConvertOptions(
                column_types=types, include_columns=keep, quoted_strings_can_be_null=False
            ),
            batch_rows,
        )
    offset = 0
    for table in guarded(tables, path, fmt, hint):
        _check_rows(table, path, fmt, offset)
        table = _plain_columns(table, keep, numeric, path)
        y = decode_label(table.column(label), label, path, offset=offset)
        offset += table.num_rows
        fields = {n: table.column(n) for n in order}
        yield Columns(path, label, y, fields, frozenset(numeric), dropped)


def _plain_columns(table: pa.Table, keep: list[str], numeric: list[str], path: str) -> pa.Table:
    """Dictionary columns decoded to plain values; nested columns, and numeric ones that
    hold no numbers, refused."""
    for n in keep:
        t = table.column(n).type
        if pa.types.is_dictionary(t):  # per-chunk dictionaries: decode to plain values
            table = table.set_column(
                table.schema.get_field_index(n), n, table.column(n).cast(t.value_type)
            )
        elif pa.types.is_nested(t):
            raise DataError(f"column {n!r} in {path} has nested type {t}; drop it with --drop {n}")
    number = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean, pa.types.is_null)
    for n in numeric:
        t = table.column(n).type
        if not any(f(t) for f in number):
            raise DataError(
                f"numeric column {n!r} in {path} holds non-numbers ({t}); list it under --categorical instead"
            )
    return table
