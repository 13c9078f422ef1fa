"""The options of a search, as one dataclass: read from the CLI or a ``--config`` file,
saved in the run directory so ``retrain`` and ``export`` rebuild exactly the same setup."""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Collection
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
    backbone_params: dict[str, Any] = field(default_factory=dict)  # backbones.backbone_params
    space: str | None = None
    width: int = 16
    candidates: list[int] | None = None
    groups: int = 4
    projection: str | None = None  # None: the controller's own (linear, or its projection param)
    epochs: int = 30
    batch_size: int = 4096
    lr: float = 1e-3
    eval_every: int = 0  # also validate every this many steps (0: once an epoch)
    device: str = "auto"
    seed: int = 0
    max_seconds: float | None = None
    synthetic_rows: int = 60_000
    threads: int | None = None  # CPU threads for torch (None: train.device.default_threads)

    def to_json(self) -> dict[str, Any]:
        """The options as saved in ``config.json``: a data directory as an absolute path, so
        ``retrain`` and ``export`` find it from any working directory."""
        raw = asdict(self)
        if self.data != "synthetic":
            raw["data"] = str(Path(self.data).expanduser().resolve())
        return raw

    @classmethod
    def from_mapping(
        cls, raw: dict[str, Any], source: str = "config", flags: Collection[str] = ()
    ) -> RunConfig:
        """Options from a mapping (a ``--config`` file merged with ``flags``, the keys the
        command line gave), checked by :meth:`validate`."""
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: expected a table of options, not {type(raw).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = set(raw) - names
        if unknown:
            raise ConfigError(
                f"{source}: unknown option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}"
            )
        raw = _backbone_table(raw, source)
        if isinstance(raw.get("budgets"), (str, int)):
            raw = {**raw, "budgets": [str(raw["budgets"])]}
        cfg = cls(**raw)
        cfg.validate(source, flags)
        return cfg

    def validate(self, source: str = "options", flags: Collection[str] = ()) -> None:
        """Refuse a value of the wrong type or range in one line that names the option (a
        config file's ``epochs = "x"`` or ``lr = -1`` would otherwise fail deep in training).
        ``flags``: the options given on the command line (named as flags, not as ``source``'s
        keys)."""
        for name, kind, allowed, optional in _CHECKS:
            value = getattr(self, name)
            if value is None and optional:
                continue
            ok = _is_type(value, kind)
            if ok and name == "budgets":
                ok = all(isinstance(b, (str, int)) and not isinstance(b, bool) for b in value)
            if ok and name == "candidates":
                ok = all(_is_type(c, "int") and c >= 0 for c in value) and any(c > 0 for c in value)
            if ok and name == "eval_every":
                ok = value >= 0
            if ok and name in _POSITIVE:
                ok = math.isfinite(value) and value > 0
            if not ok:
                flag = _FLAGS.get(name, "--" + name.replace("_", "-"))
                where = flag if source == "options" or name in flags else f"{source}: {name}"
                raise ConfigError(f"{where} must be {allowed}, got {value!r}")


# (option, type, what is allowed, None allowed); width and groups keep their own range checks
# (the search spaces'), controller_params its controller's
_CHECKS: list[tuple[str, str, str, bool]] = [
    ("data", "str", "a string ('synthetic' or a prepared directory)", False),
    ("budgets", "list", 'a list of budgets, e.g. ["25%", "4MiB"]', False),
    ("controller", "str", "a controller name (see `embsearch controllers`)", False),
    ("controller_params", "dict", "a table of controller parameters", False),
    ("backbone", "str", "a backbone name", False),
    ("backbone_params", "dict", "a table of backbone parameters", False),
    ("space", "str", "a search space name, or absent", True),
    ("width", "int", "an integer", False),
    (
        "candidates",
        "list",
        "a list of integers >= 0 with one > 0 (dim 0 alone keeps no embedding at all), "
        "e.g. [2, 4, 8, 16], or absent",
        True,
    ),
    ("groups", "int", "an integer", False),
    ("projection", "str", "'linear' or 'pad', or absent", True),
    ("epochs", "int", "an integer >= 1", False),
    ("batch_size", "int", "an integer >= 1", False),
    ("lr", "num", "a number > 0", False),
    ("eval_every", "int", "an integer >= 0 (steps between validations; 0: once an epoch)", False),
    ("device", "str", "'auto', 'cpu' or 'cuda'", False),
    ("seed", "int", "an integer", False),
    ("max_seconds", "num", "a number of seconds > 0, or absent", True),
    ("synthetic_rows", "int", "an integer >= 1", False),
    ("threads", "int", "an integer >= 1 (CPU threads), or absent", True),
]
_FLAGS = {
    "budgets": "--budget",
    "controller_params": "--param",
    "backbone_params": "--backbone-param",
}
_POSITIVE = {"epochs", "batch_size", "lr", "max_seconds", "synthetic_rows", "threads"}
_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "num": (int, float),
    "list": (list, tuple),
    "dict": (dict,),
}


def _is_type(value: object, kind: str) -> bool:
    return isinstance(value, _TYPES[kind]) and not isinstance(value, bool)


def _backbone_table(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """A ``[backbone]`` table (``name`` = the backbone, the other keys its parameters) as the
    options ``backbone`` and ``backbone_params``; the parameters may be given in only one of
    the two places."""
    table = raw.get("backbone")
    if not isinstance(table, dict):
        return raw
    raw = dict(raw)
    params = {k: v for k, v in table.items() if k != "name"}
    if params and raw.get("backbone_params"):
        raise ConfigError(
            f"{source}: give backbone parameters either in the [backbone] table or as "
            "backbone_params, not both"
        )
    if "name" in table:
        raw["backbone"] = table["name"]
    else:
        raw.pop("backbone")
    if params:
        raw["backbone_params"] = params
    return raw


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a ``--config`` file (JSON or TOML, by extension) into a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        raw = (
            tomllib.loads(path.read_text())
            if path.suffix.lower() == ".toml"
            else json.loads(path.read_text())
        )
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot parse config file {path}: {exc}") from None
    return _backbone_table(raw, str(path)) if isinstance(raw, dict) else raw
