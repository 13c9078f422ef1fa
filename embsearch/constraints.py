"""Per-field constraints on a search (issue 21 item 6), after TorchRec's per-table
``ParameterConstraints`` (``torchrec.distributed.planner.types``), which pins what the
planner may choose for one table.

``embsearch search --constraint FIELD:KEY=VALUE`` (repeatable), or a ``constraints`` table in a
``--config`` file (``[constraints] user = {min_dim = 8, keep = true}``). Keys:

- ``min_dim=N``, ``max_dim=N``: every block of the field at a dim in ``[N, M]``;
- ``dims=8,16``: the dims the field's blocks may take;
- ``kinds=full,qr``: the block kinds (composed spaces with ``meta_table``);
- ``precisions=fp32,fp16``: the block precisions (composed spaces with ``precision``);
- ``keep``: never drop the field: no block at dim 0 (no group left to the out-of-vocabulary
  zero vector alone).

A dropped block (dim 0) has no kind or precision, so only the dim keys and ``keep`` rule it
out. Constraints narrow each (field, group) block's options in the search space
(``search_spaces/constrain.py``), so every sample, knapsack, repair and plan obeys them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from embsearch.blocks import KINDS, PRECISIONS
from embsearch.errors import ConfigError

KEYS = ("min_dim", "max_dim", "dims", "kinds", "precisions", "keep")
EXAMPLE = "--constraint user:min_dim=8 (keys: " + ", ".join(KEYS) + ")"


@dataclass(frozen=True)
class FieldConstraint:
    """What one field's blocks may take (``None``: anything the space offers)."""

    min_dim: int | None = None
    max_dim: int | None = None
    dims: tuple[int, ...] | None = None
    kinds: tuple[str, ...] | None = None
    precisions: tuple[str, ...] | None = None
    keep: bool = False

    def allows(self, dim: int, kind: str = "full", precision: str = "fp32") -> bool:
        """Whether a block at ``dim`` of ``kind`` in ``precision`` obeys this constraint
        (dim 0, a dropped block, is judged on the dim keys and ``keep`` alone)."""
        if self.dims is not None and dim not in self.dims:
            return False
        if dim == 0:
            return not self.keep and (self.min_dim is None or self.min_dim <= 0)
        if self.min_dim is not None and dim < self.min_dim:
            return False
        if self.max_dim is not None and dim > self.max_dim:
            return False
        if self.kinds is not None and kind not in self.kinds:
            return False
        return self.precisions is None or precision in self.precisions

    def to_json(self) -> dict[str, Any]:
        """The keys that are set, as JSON values (lists for the sets, ``true`` for keep)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or value is False:
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def text(self, name: str) -> str:
        """The constraint as ``--constraint`` flags would give it, e.g. ``f0:min_dim=8 f0:keep``."""
        parts = []
        for key, value in self.to_json().items():
            if value is True:
                parts.append(f"{name}:{key}")
            else:
                shown = ",".join(str(v) for v in value) if isinstance(value, list) else value
                parts.append(f"{name}:{key}={shown}")
        return " ".join(parts)


Constraints = dict[str, FieldConstraint]


def _values(field: str, key: str, value: Any) -> list[Any]:
    """A set's values from ``"8,16"``, ``[8, 16]`` or ``8``."""
    if isinstance(value, str):
        items: list[Any] = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        items = [value]
    if not items:
        raise ConfigError(f"constraint {field}:{key} is empty; give e.g. {field}:{key}=8,16")
    return items


def _dim(field: str, key: str, value: Any) -> int:
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        dim = int(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"constraint {field}:{key}: {value!r} is not a whole number of dims, e.g. {field}:{key}=8"
        ) from None
    if dim < 0:
        raise ConfigError(f"constraint {field}:{key}: {dim} is negative; dims are >= 0")
    return dim


def _names(field: str, key: str, value: Any, known: tuple[str, ...]) -> tuple[str, ...]:
    out = tuple(str(v) for v in _values(field, key, value))
    bad = [v for v in out if v not in known]
    if bad:
        what = "kind" if key == "kinds" else "precision"
        raise ConfigError(
            f"constraint {field}:{key}: {', '.join(bad)} is not a {what}; use {', '.join(known)}"
        )
    return tuple(dict.fromkeys(out))


def _with(c: FieldConstraint, field: str, key: str, value: Any) -> FieldConstraint:
    """``c`` with ``key`` set from ``value`` (checked)."""
    if key in ("min_dim", "max_dim"):
        c = replace(c, **{key: _dim(field, key, value)})
    elif key == "dims":
        c = replace(
            c, dims=tuple(sorted({_dim(field, key, v) for v in _values(field, key, value)}))
        )
    elif key == "kinds":
        c = replace(c, kinds=_names(field, key, value, KINDS))
    elif key == "precisions":
        c = replace(c, precisions=_names(field, key, value, PRECISIONS))
    elif key == "keep":
        if value not in (True, False, "true", "false", None, ""):
            raise ConfigError(
                f"constraint {field}:keep takes no value (or true/false), got {value!r}"
            )
        c = replace(c, keep=value in (True, "true", None, ""))
    else:
        raise ConfigError(f"constraint {field}:{key}: unknown key {key!r}; keys: {', '.join(KEYS)}")
    if c.min_dim is not None and c.max_dim is not None and c.min_dim > c.max_dim:
        raise ConfigError(
            f"constraint {field}: min_dim={c.min_dim} is above max_dim={c.max_dim}; no dim is left"
        )
    return c


def parse_flag(text: str) -> tuple[str, str, Any]:
    """``FIELD:KEY=VALUE`` (or ``FIELD:keep``) as ``(field, key, value)``; the value is the
    text after ``=`` (``None`` without one)."""
    left, eq, value = text.partition("=")
    name, colon, key = left.rpartition(":")
    if not colon or not name or not key:
        raise ConfigError(f"--constraint {text!r}: write FIELD:KEY=VALUE, e.g. {EXAMPLE}")
    return name, key.strip(), (value if eq else None)


def parse_constraints(raw: Mapping[str, Any] | Iterable[str] | None) -> Constraints:
    """Constraints from a mapping ``{field: {key: value}}`` (a config file, ``config.json``)
    or ``FIELD:KEY=VALUE`` strings (``--constraint``); one :class:`ConfigError` line for an
    unknown key, a value that is not a number, kind or precision, or ``min_dim > max_dim``.
    A key without a value other than ``keep`` is refused. Field names are checked against
    the data by the search space (:func:`~embsearch.search_spaces.constrain.apply`)."""
    out: Constraints = {}
    if raw is None:
        return out
    if isinstance(raw, Mapping):
        items: list[tuple[str, str, Any]] = []
        for name, table in raw.items():
            if not isinstance(table, Mapping):
                raise ConfigError(
                    f"constraints.{name}: expected a table of keys ({', '.join(KEYS)}), "
                    f"e.g. {{min_dim = 8, keep = true}}, not {table!r}"
                )
            items += [(str(name), str(k), v) for k, v in table.items()]
    else:
        items = [parse_flag(t) for t in raw]
    for name, key, value in items:
        if value is None and key != "keep":
            raise ConfigError(f"--constraint {name}:{key} needs a value, e.g. {name}:{key}=8")
        out[name] = _with(out.get(name, FieldConstraint()), name, key, value)
    return out


def constraints_json(constraints: Mapping[str, FieldConstraint]) -> dict[str, dict[str, Any]]:
    """``{field: {key: value}}`` for ``config.json`` and ``plan.json`` (fields in order given)."""
    return {name: c.to_json() for name, c in constraints.items() if c.to_json()}


def merge_flags(table: Any, flags: Iterable[str]) -> dict[str, dict[str, Any]]:
    """A config file's ``constraints`` table with ``--constraint`` flags over it (a flag's key
    replaces the file's for that field), as JSON: what ``RunConfig.constraints`` holds."""
    base = parse_constraints(table if table else None)
    extra = parse_constraints(list(flags))
    out = constraints_json(base)
    for name, c in constraints_json(extra).items():
        out[name] = {**out.get(name, {}), **c}
    constraints_json(parse_constraints(out))  # the merged set checked again (min > max)
    return out
