"""The id -> row maps of a plan's ``pruned`` blocks, kept in a file beside ``plan.json``.

A ``pruned`` block (``blocks.py``) stores ``kept`` rows and a map that gives every id of the
block its row, or ``-1`` (the zero vector). A plan whose maps were *learned* (OptEmbed's row
pruning) cannot rebuild them from its sizes, and a map holds one integer per id, so it is
kept out of ``plan.json`` (which would grow by megabytes on a 1M-id field): ``plan.save``
writes the maps to ``<plan stem>.row_maps.safetensors`` beside it (``plan.json`` ->
``plan.row_maps.safetensors``), one tensor per pruned block named ``emb.<field>.<group>.map``
(the name the export gives it, in the same dtype: the smallest signed integer type that holds
``kept - 1`` and ``-1``), and ``plan.json`` names the file and its SHA-256 under
``row_maps``; ``Plan.load`` reads and checks both. An export directory keeps the maps in
``weights.safetensors`` with the rest of the table (``export.py``), so it needs no such file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from embsearch._atomic import write_file
from embsearch.blocks import map_dtype
from embsearch.errors import RunDirError

#: what follows the plan file's stem in its maps file's name
SUFFIX = ".row_maps.safetensors"

RowMaps = dict[str, np.ndarray]


def map_name(field_name: str, group: int) -> str:
    """A pruned block's map name: ``emb.<field>.<group>.map`` (as in the export)."""
    return f"emb.{field_name}.{group}.map"


def keep_to_map(keep: np.ndarray) -> np.ndarray:
    """The map of a block keeping the ids where the boolean ``keep`` holds: kept ids take
    rows ``0..kept-1`` in id order, the others ``-1``, in :func:`~embsearch.blocks.map_dtype`."""
    keep = np.asarray(keep, dtype=bool)
    rank = np.cumsum(keep) - 1
    return np.where(keep, rank, -1).astype(map_dtype(int(keep.sum())))


def check_map(name: str, arr: np.ndarray, rows: int, kept: int) -> None:
    """Raise ``ValueError`` (one line naming ``name``) unless ``arr`` is a map of ``rows``
    ids onto ``kept`` rows: shape ``[rows]``, the block's map dtype, values in ``-1..kept-1``."""
    want = map_dtype(kept)
    if arr.shape != (rows,) or arr.dtype != np.dtype(want):
        raise ValueError(
            f"{name} is {arr.dtype}{list(arr.shape)}, the block needs {want}[{rows}] (kept={kept})"
        )
    if rows and (int(arr.min()) < -1 or int(arr.max()) > kept - 1):
        raise ValueError(f"{name} holds rows outside -1..{kept - 1}")


def encode(maps: Mapping[str, np.ndarray]) -> bytes:
    """The maps file's bytes (deterministic: safetensors sorts its tensors)."""
    return st_save({k: np.ascontiguousarray(v) for k, v in maps.items()})


def reference(maps: Mapping[str, np.ndarray], file_name: str) -> dict[str, Any]:
    """What ``plan.json`` records of the maps: the file, its SHA-256, its bytes."""
    data = encode(maps)
    return {"file": file_name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def maps_path(plan_path: str | Path) -> Path:
    """The maps file beside ``plan_path`` (``plan.json`` -> ``plan.row_maps.safetensors``)."""
    plan_path = Path(plan_path)
    return plan_path.with_name(plan_path.stem + SUFFIX)


def write_maps(plan_path: str | Path, maps: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Write the maps beside ``plan_path`` (atomically); returns their :func:`reference`."""
    path = maps_path(plan_path)
    data = encode(maps)
    write_file(path, lambda tmp: Path(tmp).write_bytes(data))
    return {"file": path.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def read_maps(plan_path: str | Path, ref: Mapping[str, Any]) -> RowMaps:
    """The maps ``plan.json`` at ``plan_path`` references (``ref``), checked against its
    SHA-256; a missing, altered or unreadable file raises :class:`RunDirError` (one line)."""
    plan_path = Path(plan_path)
    name = str(ref.get("file", ""))
    path = plan_path.parent / name
    if not name or Path(name).name != name or not path.is_file():
        raise RunDirError(
            f"{plan_path} names id->row maps in {path}, which does not exist; copy it with "
            "plan.json, or run the search again"
        )
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != ref.get("sha256"):
        raise RunDirError(
            f"{path} is not the file {plan_path.name} was saved with (its SHA-256 differs); "
            "restore it or run the search again"
        )
    try:
        return dict(st_load(data))
    except Exception:  # safetensors raises its own error types for a damaged header
        raise RunDirError(f"{path} cannot be read as safetensors; run the search again") from None
