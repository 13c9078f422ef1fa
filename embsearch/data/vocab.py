"""Vocabularies: the raw value behind every id, so raw data can be mapped to ids outside embsearch.

On disk (written by ``embsearch data prepare`` into the dataset directory, copied by
``embsearch export`` into the export directory)::

    vocab/index.json             {"format": "embsearch-vocab", "version": 1, "encoding": ...,
                                  "fields": {name: {"index", "file", "kind", "type", "size",
                                                    "value_encoding"}, ...}}  (column order)
    vocab/000_<name>.txt         one JSON value per line, UTF-8

Line ``k`` (0-based) of a field's file is the raw value of id ``k + 1``; id ``0`` (OOV) has no
line, so a file has ``cardinality - 1`` lines. Every line is a JSON string (or ``null`` for a
missing value kept as a category of its own), so commas, quotes, tabs and newlines inside
values are escaped; a line never holds a raw line break (U+2028, U+2029 and U+0085 are
escaped too), so ``[json.loads(l) for l in open(f, encoding="utf-8")]`` reads a file.
Non-string columns (Parquet ints, floats, booleans...) store Arrow's text of the value and
name the column's Arrow ``type``; ``value_encoding`` is ``"text"``, or ``"hex"`` for bytes
that are not UTF-8.

Numeric (bucketised) fields store bucket labels, not values: ``"missing"`` (empty/NaN) or
``"b:<code>"`` with the code of :func:`embsearch.data.buckets.bucket_codes`: ``v = floor(x)``;
``|v| <= 2`` gives code ``v + 3``; ``v > 2`` gives ``6 + 2 * floor(log(v) ** 2)`` and
``v < -2`` gives ``7 + 2 * floor(log(-v) ** 2)``. :meth:`Vocabulary.encode` applies that rule
to raw numbers itself.
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from embsearch._atomic import read_json, staged_dir, write_json
from embsearch.data.buckets import bucket_codes
from embsearch.errors import DataError

VOCAB_DIR = "vocab"
INDEX_FILE = "index.json"
FORMAT = "embsearch-vocab"
VERSION = 1
ENCODING = (
    "UTF-8; one JSON value per line; line k (0-based) is the raw value of id k+1; "
    "id 0 is OOV and has no line; null is a missing value kept as its own category; "
    "numeric fields hold bucket labels 'missing' or 'b:<code>' (see embsearch.data.vocab)"
)
# RE2 class of what JSON (or a line reader) must escape
_NEEDS_ESCAPE = r'[\\"\x00-\x1f\x{85}\x{2028}\x{2029}]'
_LINE_BREAKS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"}
# the cells Arrow's CSV reader (hence prepare) reads as missing numbers
_CSV_NULLS = pa.array(pacsv.ConvertOptions().null_values, pa.string())


def bucket_labels(codes: np.ndarray) -> pa.Array:
    """Labels of numeric bucket codes: ``"missing"`` for code 0, ``"b:<code>"`` otherwise."""
    codes = np.asarray(codes, dtype=np.int64)
    text = pc.binary_join_element_wise("b:", pc.cast(pa.array(codes), pa.string()), "")
    return pc.if_else(pa.array(codes == 0), "missing", text)


def save_vocab(
    directory: str | Path,
    field_names: Sequence[str],
    values_by_field: Sequence[Any] | Mapping[str, Any],
    *,
    numeric: Iterable[str] = (),
    types: Mapping[str, str] | None = None,
) -> Path:
    """Write ``directory/vocab`` (atomically) and return its path.

    ``values_by_field[j]`` (or ``values_by_field[name]``) lists the raw values of field
    ``field_names[j]`` in id order: entry ``k`` is the value of id ``k + 1``. Values may be
    an Arrow array of any flat type, a numpy array or a list; ``None`` is a missing value.
    Fields named in ``numeric`` hold bucket labels (:func:`bucket_labels`). ``types`` names
    the Arrow type of each source column (default: the type of the values given).
    """
    names = list(field_names)
    if len(set(names)) != len(names):
        raise DataError("field names must be unique to save vocabularies")
    if isinstance(values_by_field, Mapping):
        values = [values_by_field[n] for n in names]
    else:
        values = list(values_by_field)
    if len(values) != len(names):
        raise DataError(f"got values for {len(values)} fields but {len(names)} field names")
    numeric = set(numeric)
    fields: dict[str, Any] = {}
    with staged_dir(Path(directory) / VOCAB_DIR) as tmp:
        for j, (name, vals) in enumerate(zip(names, values)):
            arr = _as_arrow(vals)
            text, encoding = _to_text(arr)
            file = f"{j:03d}_{_sanitise(name)}.txt"
            (tmp / file).write_bytes(_lines(text))
            fields[name] = {
                "index": j,
                "file": file,
                "kind": "numeric" if name in numeric else "categorical",
                "type": (types or {}).get(name, str(arr.type)),
                "size": len(text),
                "value_encoding": encoding,
            }
        write_json(
            tmp / INDEX_FILE,
            {"format": FORMAT, "version": VERSION, "encoding": ENCODING, "fields": fields},
        )
    return Path(directory) / VOCAB_DIR


def find_vocab(directory: str | Path) -> Path | None:
    """The vocabulary directory of a dataset or export directory (or that directory itself
    if it is one), or ``None`` when there is none."""
    directory = Path(directory)
    for d in (directory / VOCAB_DIR, directory):
        if (d / INDEX_FILE).is_file():
            return d
    return None


def load_vocab(directory: str | Path) -> dict[str, list[str | None]]:
    """``{field: values}`` in column order, ``values[k]`` being the raw value of id ``k + 1``.

    ``directory`` is a prepared dataset, an export directory or a ``vocab`` directory."""
    vdir, index = _read_index(directory)
    return {name: _read_values(vdir, name, entry) for name, entry in index["fields"].items()}


@dataclass
class FieldVocab:
    """One field's vocabulary: ``values[k]`` is the raw value (or bucket label) of id ``k + 1``."""

    name: str
    values: pa.Array  # string
    kind: str = "categorical"
    type: str = "string"
    value_encoding: str = "text"
    _bucket_ids: np.ndarray | None = field(default=None, repr=False)

    @property
    def cardinality(self) -> int:
        """Ids of the field, OOV included."""
        return len(self.values) + 1

    def bucket_ids(self) -> np.ndarray:
        """``ids[code]``: the id of each numeric bucket code (0 = OOV)."""
        if self._bucket_ids is None:
            codes = []
            for label in self.values.to_pylist():
                m = re.fullmatch(r"b:(\d+)", label or "")
                if label != "missing" and m is None:
                    raise DataError(
                        f"numeric field {self.name!r} has bucket label {label!r}; expected 'missing' or 'b:<code>'"
                    )
                codes.append(0 if m is None else int(m.group(1)))
            ids = np.zeros(max(codes, default=0) + 1, dtype=np.int32)
            ids[np.asarray(codes, dtype=np.int64)] = np.arange(1, len(codes) + 1, dtype=np.int32)
            self._bucket_ids = ids
        return self._bucket_ids


class Vocabulary:
    """Raw value <-> id maps of every field of a prepared dataset (or an export).

    ``Vocabulary.load(dir).encode("C1", values)`` maps a whole column at once (Arrow's
    ``index_in``, no per-row Python); values unseen in training, or folded by
    ``--min-count``, get id 0 (OOV).
    """

    def __init__(self, fields: Sequence[FieldVocab]):
        self.fields = {f.name: f for f in fields}

    @classmethod
    def load(cls, directory: str | Path) -> Vocabulary:
        vdir, index = _read_index(directory)
        fields = []
        for name, entry in index["fields"].items():
            values = pa.array(_read_values(vdir, name, entry), pa.string())
            fields.append(
                FieldVocab(
                    name,
                    values,
                    entry.get("kind", "categorical"),
                    entry.get("type", "string"),
                    entry.get("value_encoding", "text"),
                )
            )
        return cls(fields)

    @property
    def names(self) -> list[str]:
        return list(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def __contains__(self, name: object) -> bool:
        return name in self.fields

    def field(self, name: str) -> FieldVocab:
        try:
            return self.fields[name]
        except KeyError:
            raise DataError(
                f"no vocabulary for field {name!r}; fields are: {', '.join(self.fields)}"
            ) from None

    def values(self, name: str) -> list[str | None]:
        """Raw values of ids ``1..n`` of field ``name`` (entry ``k`` belongs to id ``k + 1``)."""
        return self.field(name).values.to_pylist()

    def encode(self, name: str, values: Any) -> np.ndarray:
        """``int32`` ids of raw ``values`` of field ``name``; unseen values map to 0 (OOV).

        ``values``: a list, numpy array, pandas Series or Arrow array. For a categorical
        field, strings are matched exactly (read CSVs as text, e.g. pandas
        ``dtype=str, keep_default_na=False``, so empty cells stay ``""``); values of another
        type are compared through the column's type (``5`` and ``"5"`` both match an int
        column's ``5``). For a numeric field, raw numbers (or their text; empty, ``NA``
        and NaN are missing) are bucketised as ``prepare`` does.
        """
        fv = self.field(name)
        arr = _as_arrow(values)
        if fv.kind == "numeric":
            return _encode_numeric(fv, arr)
        text = _like_field(arr, fv)
        found = pc.fill_null(pc.index_in(text, value_set=fv.values, skip_nulls=False), -1)
        return np.asarray(found.to_numpy(zero_copy_only=False), dtype=np.int32) + 1

    def encode_columns(self, columns: Mapping[str, Any]) -> np.ndarray:
        """``int32 [rows, fields]`` ids in the dataset's column order (the model's input)."""
        missing = [n for n in self.fields if n not in columns]
        if missing:
            raise DataError(f"no column for field(s) {', '.join(map(repr, missing))}")
        cols = [self.encode(n, columns[n]) for n in self.fields]
        if len({len(c) for c in cols}) > 1:
            raise DataError("the columns have different lengths")
        return np.stack(cols, axis=1) if cols else np.zeros((0, 0), dtype=np.int32)

    def decode(self, name: str, ids: Any) -> list[str | None]:
        """Raw values of ``ids`` of field ``name``; OOV (id 0) gives ``None``."""
        fv = self.field(name)
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= fv.cardinality):
            raise DataError(f"ids of field {name!r} must lie in [0, {fv.cardinality})")
        idx = pa.array(ids - 1, mask=ids == 0)
        return fv.values.take(idx).to_pylist()


def copy_vocab(
    data_dir: str | Path, dest: str | Path, fields: Sequence[tuple[str, int]]
) -> Path | None:
    """Copy the vocabularies of dataset ``data_dir`` to ``dest/vocab`` if it has them and
    they match ``fields`` (``(name, cardinality)`` in column order); return the copy or
    ``None``. A mismatch (the dataset was prepared again since) warns and copies nothing."""
    src = find_vocab(data_dir) if Path(data_dir).is_dir() else None
    if src is None:
        return None
    index = read_json(src / INDEX_FILE, DataError)
    have = [(n, int(e["size"]) + 1) for n, e in index["fields"].items()]
    if have != [(n, int(c)) for n, c in fields]:
        warnings.warn(
            f"the vocabularies in {src} do not match the run's fields (was {data_dir} prepared "
            "again since the search?); exporting without vocabularies",
            UserWarning,
            stacklevel=2,
        )
        return None
    out = Path(dest) / VOCAB_DIR
    shutil.copytree(src, out)
    return out


def _sanitise(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:60] or "_"


def _as_arrow(values: Any) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    elif not isinstance(values, pa.Array):
        if isinstance(values, (str, bytes)):
            raise TypeError("pass a list or array of values, not one string")
        try:
            values = pa.array(values, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise DataError(f"cannot read the values as one Arrow column ({exc})") from None
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    if pa.types.is_large_string(values.type) or pa.types.is_string_view(values.type):
        values = values.cast(pa.string())
    if pa.types.is_nested(values.type):
        raise DataError(f"vocabulary values must be flat, not {values.type}")
    return values


def _to_text(arr: pa.Array) -> tuple[pa.Array, str]:
    """Values as a string array, and how: ``"text"`` (Arrow's cast) or ``"hex"`` (bytes)."""
    if pa.types.is_string(arr.type):
        return arr, "text"
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), pa.string()), "text"
    try:
        return pc.cast(arr, pa.string()), "text"
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type):
            return pa.array([None if v is None else v.hex() for v in arr.to_pylist()]), "hex"
        return pa.array([None if v is None else str(v) for v in arr.to_pylist()]), "text"


def _lines(text: pa.Array) -> bytes:
    """One JSON value per line, in C (Arrow) when no value needs escaping, else via ``json``."""
    if len(text) == 0:
        return b""
    if text.null_count == 0 and not pc.any(pc.match_substring_regex(text, _NEEDS_ESCAPE)).as_py():
        ls = pa.large_string()
        joined = pc.binary_join_element_wise(
            pa.scalar('"', ls), text.cast(ls), pa.scalar('"\n', ls), pa.scalar("", ls)
        )
        off = np.frombuffer(joined.buffers()[1], np.int64, len(joined) + 1, joined.offset * 8)
        return joined.buffers()[2].to_pybytes()[off[0] : off[-1]]
    body = json.dumps(text.to_pylist(), ensure_ascii=False, separators=("\n", ":"))[1:-1]
    for ch, esc in _LINE_BREAKS.items():
        body = body.replace(ch, esc)
    return (body + "\n").encode("utf-8")


def _read_index(directory: str | Path) -> tuple[Path, dict[str, Any]]:
    vdir = find_vocab(directory)
    if vdir is None:
        raise DataError(
            f"{directory} holds no {VOCAB_DIR}/{INDEX_FILE}; prepare the dataset with "
            "`embsearch data prepare` (synthetic data has no vocabularies)"
        )
    try:
        index = read_json(vdir / INDEX_FILE, DataError)
        if index.get("format") != FORMAT or not isinstance(index.get("fields"), dict):
            raise ValueError("not an embsearch vocabulary index")
        if int(index.get("version", 0)) > VERSION:
            raise ValueError(f"version {index['version']} is newer than this embsearch reads")
    except (ValueError, TypeError, AttributeError) as exc:
        raise DataError(f"{vdir / INDEX_FILE} is not a valid vocabulary index ({exc})") from None
    return vdir, index


def _read_values(vdir: Path, name: str, entry: dict[str, Any]) -> list[str | None]:
    path = vdir / entry["file"]
    try:
        body = path.read_bytes().decode("utf-8").rstrip("\r\n")
        values = json.loads("[" + body.replace("\n", ",") + "]") if body else []
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(
            f"cannot read the vocabulary of field {name!r} from {path}: {exc}"
        ) from None
    if len(values) != int(entry["size"]) or not all(
        v is None or isinstance(v, str) for v in values
    ):
        raise DataError(
            f"{path} should hold {entry['size']} JSON strings, one per line; re-run `embsearch data prepare`"
        )
    return values


def _like_field(arr: pa.Array, fv: FieldVocab) -> pa.Array:
    """Raw values as the text the vocabulary stores for field ``fv``."""
    if fv.value_encoding == "hex" and (
        pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type)
    ):
        return pa.array([None if v is None else v.hex() for v in arr.to_pylist()], pa.string())
    if fv.type not in ("string", "large_string", "string_view"):
        try:
            target = pa.type_for_alias(fv.type)
        except ValueError:
            target = None
        if target is not None and arr.type != target:
            try:  # "5" or 5.0 for an int64 column: compare through the column's type
                arr = pc.cast(arr, target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                target = None  # not castable: those values compare as text (and miss -> OOV)
    return _to_text(arr)[0]


def _encode_numeric(fv: FieldVocab, arr: pa.Array) -> np.ndarray:
    if pa.types.is_string(arr.type):
        arr = pc.if_else(pc.is_in(arr, value_set=_CSV_NULLS), pa.scalar(None, pa.string()), arr)
    try:
        codes = bucket_codes(arr)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise DataError(f"field {fv.name!r} is numeric; its values must be numbers") from None
    lut = fv.bucket_ids()
    ids = np.zeros(len(codes), dtype=np.int32)
    ok = codes < len(lut)
    ids[ok] = lut[codes[ok]]
    return ids
