"""The Plan: what a search found, JSON in and out through one function each.

A plan gives every field its rows, its frequency groups (contiguous id ranges, see
``data/schema.py``) with one dim each, and the exact bytes of that field's share of the
table. ``table_bytes`` is their sum and never exceeds ``budget_bytes``.

Formats: ``embsearch.plan/1`` holds dims only (every block ``full``, fp32);
``embsearch.plan/2`` adds each block's kind, sizes and precision (``blocks.BlockSpec``).
A plan that needs nothing of format 2 is written as format 1 (older readers take it, and a
dims-only export stays byte-identical); both load. A plan whose ``pruned`` blocks carry
learned id -> row maps (:attr:`Plan.row_maps`) keeps them in a file beside ``plan.json``,
named with its SHA-256 under ``row_maps`` (``row_maps.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embsearch._atomic import read_json, strict_json, write_json
from embsearch.blocks import BlockSpec, check_precision, spec_from_json
from embsearch.budget import specs_bytes
from embsearch.errors import ConfigError, RunDirError
from embsearch.row_maps import RowMaps, check_map, map_name, read_maps, reference, write_maps

PLAN_FORMAT_1 = "embsearch.plan/1"
PLAN_FORMAT = "embsearch.plan/2"
FORMATS = (PLAN_FORMAT_1, PLAN_FORMAT)


@dataclass
class GroupPlan:
    """Ids ``start..stop-1`` of a field share one embedding ``dim`` (0 means dropped);
    ``block`` is the block's kind, sizes and precision as ``BlockSpec.to_json`` writes them
    (``None``: a ``full`` block at the plan's precision)."""

    start: int
    stop: int
    dim: int
    block: dict[str, Any] | None = None

    @property
    def rows(self) -> int:
        return self.stop - self.start


@dataclass
class FieldPlan:
    name: str
    rows: int
    groups: list[GroupPlan]
    bytes: int = 0

    @property
    def dims(self) -> list[int]:
        return [g.dim for g in self.groups]

    @property
    def dim(self) -> int:
        """The field's largest dim (its only dim when it has one group)."""
        return max(self.dims)


@dataclass
class Plan:
    """A searched embedding layout and the facts that chose it."""

    controller: str
    space: str
    width: int
    fields: list[FieldPlan]
    budget_bytes: int
    projection: str = "linear"
    precision: str = "fp32"
    metrics: dict[str, Any] = field(default_factory=dict)  # floats; null_reasons if any is null
    data_fingerprint: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: Optional trained weights (a ``CTRModel`` state dict) a controller attaches when its
    #: supernet already serves the plan (RULE); the runner then skips retraining. Not JSON.
    weights: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    #: The id -> row map of each ``pruned`` block, ``emb.<field>.<group>.map`` -> int array
    #: (``row_maps.py``), when they were learned rather than the kind's default (the first
    #: ``kept`` ids); set with :meth:`set_row_maps`, saved beside ``plan.json``.
    row_maps: RowMaps | None = field(default=None, repr=False, compare=False)
    #: ``plan.json``'s ``row_maps`` entry (file, SHA-256) when the maps were not read with
    #: it (:meth:`from_json` of a mapping): kept so the plan writes the same JSON back.
    row_maps_ref: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_precision(self.precision)
        for f in self.fields:
            for g, grp in enumerate(f.groups):
                if grp.block is not None:
                    where = f"field {f.name!r} ids {grp.start}..{grp.stop - 1}"
                    self.block_spec(f, g).check(where)
            f.bytes = specs_bytes(
                [self.block_spec(f, g) for g in range(len(f.groups))],
                self.width,
                self.projection,
                self.precision,
            )

    def block_spec(self, f: FieldPlan, g: int) -> BlockSpec:
        """Group ``g`` of field ``f`` as a :class:`~embsearch.blocks.BlockSpec`."""
        grp = f.groups[g]
        return spec_from_json(grp.block or {}, grp.rows, grp.dim, self.precision)

    def set_row_maps(self, maps: RowMaps) -> None:
        """Give every ``pruned`` block its map (``maps``: one per pruned block, named
        ``emb.<field>.<group>.map``, none for other blocks); ``ConfigError`` (one line) for a
        missing, extra or malformed map."""
        want = {
            map_name(f.name, g): self.block_spec(f, g)
            for f in self.fields
            for g in range(len(f.groups))
            if self.block_spec(f, g).kind == "pruned" and f.groups[g].dim > 0
        }
        if set(maps) != set(want):
            raise ConfigError(
                f"id->row maps {sorted(maps)} do not match the plan's pruned blocks {sorted(want)}"
            )
        for name, spec in want.items():
            try:
                check_map(name, maps[name], spec.rows, spec.kept)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        self.row_maps, self.row_maps_ref = dict(maps), None

    @property
    def dims_only(self) -> bool:
        """Every block ``full`` at the plan's precision (the layout format 1 describes)."""
        return all(
            self.block_spec(f, g) == BlockSpec("full", grp.rows, grp.dim, self.precision)
            for f in self.fields
            for g, grp in enumerate(f.groups)
        )

    @property
    def format(self) -> str:
        """``embsearch.plan/1`` for a dims-only fp32 plan, else ``embsearch.plan/2``."""
        return PLAN_FORMAT_1 if self.precision == "fp32" and self.dims_only else PLAN_FORMAT

    @property
    def live_inputs(self) -> int:
        """How many of the backbone's ``fields x width`` inputs can be non-zero: with
        ``projection='pad'`` each field's largest dim (the rest is padding), otherwise all
        of them (a projection spans the width). Backbones initialise their input layers for
        this many inputs (``make_backbone``)."""
        if self.projection != "pad":
            return len(self.fields) * self.width
        return max(1, sum(min(f.dim, self.width) for f in self.fields))

    @property
    def notes(self) -> list[str]:
        """Lines a controller wants read under the plan (``extra["notes"]``): the search's
        reporter prints them, whatever the controller."""
        return [str(n) for n in self.extra.get("notes", [])]

    def add_note(self, line: str) -> None:
        """Add a line for the reporter to print under this plan (see :attr:`notes`)."""
        self.extra.setdefault("notes", []).append(str(line))

    @property
    def interrupted(self) -> bool:
        """The search was stopped (Ctrl-C) before it finished: the best plan so far, which
        the runner saves untrained (``extra["interrupted"]``, set by the search loop)."""
        return bool(self.extra.get("interrupted"))

    @property
    def table_bytes(self) -> int:
        return sum(f.bytes for f in self.fields)

    @property
    def field_dims(self) -> dict[str, list[int]]:
        return {f.name: f.dims for f in self.fields}

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "controller": self.controller,
            "space": self.space,
            "budget_bytes": int(self.budget_bytes),
            "table_bytes": int(self.table_bytes),
            "width": self.width,
            "projection": self.projection,
            "precision": self.precision,
            "data_fingerprint": self.data_fingerprint,
            "metrics": strict_json(  # NaN/inf: null, with its reason under null_reasons
                {k: float(v) if _is_number(v) else v for k, v in self.metrics.items()}
            ),
            "fields": [
                {
                    "name": f.name,
                    "rows": f.rows,
                    "dim": f.dim,
                    "groups": [self._group_json(f, g) for g in range(len(f.groups))],
                    "bytes": f.bytes,
                }
                for f in self.fields
            ],
            "extra": self.extra,
            **self._row_maps_json(),
        }

    def _row_maps_json(self, file_name: str = "plan.row_maps.safetensors") -> dict[str, Any]:
        if self.row_maps:
            return {"row_maps": reference(self.row_maps, file_name)}
        return {"row_maps": self.row_maps_ref} if self.row_maps_ref else {}

    def _group_json(self, f: FieldPlan, g: int) -> dict[str, Any]:
        grp = f.groups[g]
        out: dict[str, Any] = {"start": grp.start, "stop": grp.stop, "dim": grp.dim}
        if self.format != PLAN_FORMAT_1:
            out.update(self.block_spec(f, g).to_json())
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any], source: str | None = None) -> Plan:
        """A plan from its ``plan.json`` mapping; a malformed one raises ``RunDirError``
        (naming ``source``, the file, when given)."""
        where = f"{source}: " if source else ""
        try:
            if not isinstance(raw, dict):
                raise ValueError(f"a JSON object was expected, not {type(raw).__name__}")
            if raw.get("format") not in FORMATS:
                raise ValueError(f"format is {raw.get('format')!r}, expected one of {FORMATS}")
            v2 = raw["format"] == PLAN_FORMAT
            fields = [
                FieldPlan(
                    f["name"],
                    int(f["rows"]),
                    [
                        GroupPlan(
                            int(g["start"]),
                            int(g["stop"]),
                            int(g["dim"]),
                            _block_json(g) if v2 else None,
                        )
                        for g in f["groups"]
                    ],
                )
                for f in raw["fields"]
            ]
            plan = cls(
                controller=raw["controller"],
                space=raw["space"],
                width=int(raw["width"]),
                fields=fields,
                budget_bytes=int(raw["budget_bytes"]),
                projection=raw.get("projection", "linear"),
                precision=raw.get("precision", "fp32"),
                metrics=dict(raw.get("metrics", {})),
                data_fingerprint=raw.get("data_fingerprint", ""),
                extra=dict(raw.get("extra", {})),
                row_maps_ref=dict(raw["row_maps"]) if raw.get("row_maps") else None,
            )
            _check_layout(plan)
            claimed = int(raw.get("table_bytes", plan.table_bytes))
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise RunDirError(
                f"{where}not a valid plan ({exc}); was it written by embsearch?"
            ) from None
        if claimed != plan.table_bytes:
            raise RunDirError(
                f"{where}plan says table_bytes={claimed} but its fields add up to {plan.table_bytes}"
            )
        return plan

    def save(self, path: str | Path) -> None:
        """Write ``plan.json`` at ``path`` (and the id -> row maps beside it, first)."""
        raw = self.to_json()
        if self.row_maps:
            raw["row_maps"] = write_maps(path, self.row_maps)
        write_json(path, raw)

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        path = Path(path)
        if path.is_dir():
            path = path / "plan.json"
        if not path.is_file():
            raise RunDirError(f"{path} does not exist; point at a run directory holding plan.json")
        raw = read_json(path)
        plan = cls.from_json(raw, str(path))
        if plan.row_maps_ref:
            try:
                plan.set_row_maps(read_maps(path, plan.row_maps_ref))
            except ConfigError as exc:
                raise RunDirError(f"{path}: {exc}") from None
        return plan


def _block_json(group: dict[str, Any]) -> dict[str, Any]:
    """A format-2 group's block fields (kind, precision and the kind's sizes)."""
    return {k: v for k, v in group.items() if k not in ("start", "stop", "dim")}


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_layout(plan: Plan) -> None:
    """Refuse (``ValueError``) a plan no table can be built from: a field's groups must tile
    its ids ``0..rows-1`` in order, with dims in ``[0, width]``."""
    if plan.width < 1:
        raise ValueError(f"width {plan.width} must be at least 1")
    for f in plan.fields:
        edge = 0
        for g in f.groups:
            if g.start != edge or g.stop <= g.start:
                raise ValueError(f"field {f.name!r}: groups must tile ids 0..{f.rows - 1} in order")
            if not 0 <= g.dim <= plan.width:
                raise ValueError(f"field {f.name!r}: dim {g.dim} is outside [0, {plan.width}]")
            edge = g.stop
        if edge != f.rows or not f.groups:
            raise ValueError(f"field {f.name!r}: groups must tile ids 0..{f.rows - 1} in order")
    if plan.fields and all(d == 0 for f in plan.fields for d in f.dims):
        raise ValueError(NO_EMBEDDING)


#: why a plan whose every dim is 0 is refused (it embeds nothing: the model sees no input)
NO_EMBEDDING = "every field has dim 0, so the plan keeps no embedding at all"
