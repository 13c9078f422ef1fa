"""The options of a search, as one dataclass: read from the CLI or a ``--config`` file,
saved in the run directory so ``retrain`` and ``export`` rebuild exactly the same setup."""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from embsearch.errors import ConfigError


@dataclass
class RunConfig:
    data: str = "synthetic"
    budgets: list[str] = field(default_factory=lambda: ["25%"])
    controller: str = "mde"
    controller_params: dict[str, Any] = field(default_factory=dict)
    backbone: str = "deepfm"
    space: str | None = None
    width: int = 16
    candidates: list[int] | None = None
    groups: int = 4
    projection: str | None = None  # None: the controller's own (linear, or its projection param)
    epochs: int = 5
    batch_size: int = 4096
    lr: float = 1e-3
    device: str = "auto"
    seed: int = 0
    max_seconds: float | None = None
    synthetic_rows: int = 60_000

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, raw: dict[str, Any], source: str = "config") -> RunConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(raw) - names
        if unknown:
            raise ConfigError(
                f"{source}: unknown option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}"
            )
        if isinstance(raw.get("budgets"), (str, int)):
            raw = {**raw, "budgets": [str(raw["budgets"])]}
        return cls(**raw)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a ``--config`` file (JSON or TOML, by extension) into a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(path.read_text())
        return json.loads(path.read_text())
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot parse config file {path}: {exc}") from None
