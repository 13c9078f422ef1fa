"""Schema of a prepared dataset: its fields, their cardinalities and per-id frequencies.

Id convention (every reader follows it, every frequency-aware method relies on it):
id ``0`` of each field is the out-of-vocabulary (OOV) id, and ids ``1..n`` are the kept
values **in descending order of training-split frequency**. Frequency groups are therefore
contiguous id ranges, which lets frequency-aware embeddings slice instead of gather-map.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embsearch.errors import DataError

SCHEMA_FILE = "schema.json"
COUNTS_FILE = "counts.npz"


@dataclass
class FieldSpec:
    """One categorical field.

    ``cardinality`` counts every id, the OOV id included; ``counts[i]`` is how often id
    ``i`` occurs in the training split (``counts[0]`` covers values folded into OOV).
    """

    name: str
    cardinality: int
    counts: np.ndarray | None = None
    kind: str = "categorical"

    def __post_init__(self) -> None:
        if self.cardinality < 1:
            raise DataError(
                f"field {self.name!r} has cardinality {self.cardinality}; it needs at least 1"
            )
        if self.counts is not None:
            self.counts = np.asarray(self.counts, dtype=np.int64)
            if self.counts.shape != (self.cardinality,):
                raise DataError(
                    f"field {self.name!r}: counts has shape {self.counts.shape}, expected ({self.cardinality},)"
                )

    def frequencies(self) -> np.ndarray:
        """Per-id training counts; all ones when the reader recorded none."""
        if self.counts is None:
            return np.ones(self.cardinality, dtype=np.int64)
        return self.counts


@dataclass
class Schema:
    """The fields of a dataset, in column order of its id arrays."""

    fields: list[FieldSpec]
    label: str = "label"
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_fields(self) -> int:
        return len(self.fields)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def cardinalities(self) -> list[int]:
        return [f.cardinality for f in self.fields]

    def index(self, name: str) -> int:
        for i, f in enumerate(self.fields):
            if f.name == name:
                return i
        raise DataError(f"no field named {name!r}; fields are: {', '.join(self.names)}")

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "source": self.source,
            "meta": self.meta,
            "fields": [
                {"name": f.name, "cardinality": f.cardinality, "kind": f.kind} for f in self.fields
            ],
        }

    def fingerprint(self) -> str:
        """A short stable hash of the field names, cardinalities and counts."""
        h = hashlib.sha256(json.dumps(self.to_json()["fields"], sort_keys=True).encode())
        for f in self.fields:
            h.update(np.ascontiguousarray(f.frequencies()).tobytes())
        return h.hexdigest()[:16]

    def save(self, directory: str | Path) -> None:
        """Write ``schema.json`` and ``counts.npz`` into ``directory`` (caller stages atomically)."""
        directory = Path(directory)
        text = json.dumps(self.to_json(), indent=2, allow_nan=False)  # strict JSON
        (directory / SCHEMA_FILE).write_text(text + "\n")
        np.savez(
            directory / COUNTS_FILE,
            **{f"f{i}": f.frequencies() for i, f in enumerate(self.fields)},
        )

    @classmethod
    def load(cls, directory: str | Path) -> Schema:
        directory = Path(directory)
        path = directory / SCHEMA_FILE
        if not path.is_file():
            raise DataError(
                f"{directory} holds no {SCHEMA_FILE}; create it with `embsearch data prepare`"
            )
        try:
            raw = json.loads(path.read_text())
            fields_raw = raw["fields"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(f"{path} is not a valid embsearch schema ({exc})") from None
        counts = None
        if (directory / COUNTS_FILE).is_file():
            counts = np.load(directory / COUNTS_FILE)
        fields = []
        for i, fr in enumerate(fields_raw):
            c = counts[f"f{i}"] if counts is not None and f"f{i}" in counts else None
            fields.append(
                FieldSpec(fr["name"], int(fr["cardinality"]), c, fr.get("kind", "categorical"))
            )
        return cls(fields, raw.get("label", "label"), raw.get("source", ""), raw.get("meta", {}))
