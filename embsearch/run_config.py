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

from embsearch.blocks import PRECISIONS
from embsearch.constraints import parse_constraints
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
    precision: str = "fp32"  # of the table's rows (blocks.PRECISIONS); the % budget stays fp32
    epochs: int = 30
    batch_size: int = 4096
    lr: float = 1e-3
    eval_every: int = 0  # also validate every this many steps (0: once an epoch)
    device: str = "auto"
    seed: int = 0
    max_seconds: float | None = None
    synthetic_rows: int = 60_000
    threads: int | None = None  # CPU threads for torch (None: train.device.default_threads)
    executor: str = "serial"  # where trials run (embsearch.executors): serial, local or ray
    jobs: int | None = None  # trials in flight at once (local: worker processes)
    address: str | None = None  # the Ray cluster of --executor ray (auto or HOST:PORT)
    stream: bool = False  # the train split read once in its recorded time order (ESAPN)
    column_ptq: bool = False  # int8c/int4c tables trained in fp32 and rounded after (not QAT)
    constraints: dict[str, Any] = field(default_factory=dict)  # per field (constraints.py)

    def to_json(self) -> dict[str, Any]:
        """The options as saved in ``config.json``: a data directory as an absolute path, so
        ``retrain`` and ``export`` find it from any working directory."""
        raw = asdict(self)
        if not raw["constraints"]:  # absent when empty: earlier runs' fingerprints still match
            del raw["constraints"]
        if not raw["column_ptq"]:  # absent when off (the default), for the same reason
            del raw["column_ptq"]
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
        for opt in OPTIONS:
            value = getattr(self, opt.name)
            if value is None and opt.optional:
                continue
            if not opt.accepts(value):
                where = opt.flag if source == "options" or opt.name in flags else None
                where = where or f"{source}: {opt.name}"
                raise ConfigError(f"{where} must be {opt.allowed}, got {value!r}")
        parse_constraints(self.constraints)  # keys and values (fields: by the search space)


@dataclass(frozen=True)
class Option:
    """One search option, declared once: the :class:`RunConfig` field, the type and range
    :meth:`RunConfig.validate` checks (``allowed`` is what its message says), and the
    ``embsearch search`` flag with its help (``help`` empty: a ``--config`` key only). The
    CLI builds its arguments from :data:`OPTIONS`; width and groups keep the search spaces'
    own range checks, the parameter tables their controller's and backbone's."""

    name: str
    kind: str  # "str", "int", "num", "bool", "list" or "dict"
    allowed: str
    help: str = ""
    optional: bool = False  # None (absent) allowed
    positive: bool = False  # finite and > 0
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    flag_name: str | None = None  # default: --name-with-dashes

    @property
    def flag(self) -> str:
        return self.flag_name or "--" + self.name.replace("_", "-")

    def accepts(self, value: Any) -> bool:
        ok = _is_type(value, self.kind)
        if ok and self.name == "budgets":
            ok = all(isinstance(b, (str, int)) and not isinstance(b, bool) for b in value)
        if ok and self.name == "candidates":
            ok = all(_is_type(c, "int") and c >= 0 for c in value) and any(c > 0 for c in value)
        if ok and self.name == "eval_every":
            ok = value >= 0
        if ok and self.positive:
            ok = math.isfinite(value) and value > 0
        return ok


OPTIONS: tuple[Option, ...] = (
    Option(
        "data", "str", "a string ('synthetic' or a prepared directory)",
        "'synthetic' or a directory from `embsearch data prepare` (default synthetic)",
    ),
    Option(
        "budgets", "list", 'a list of budgets, e.g. ["25%", "4MiB"]',
        "byte budget; repeat for several plans (default 25%%)", flag_name="--budget",
    ),
    Option(
        "controller", "str", "a controller name (see `embsearch controllers`)",
        "registered name (see `embsearch controllers`) or package.module:Class (default mde)",
    ),
    Option(
        "controller_params", "dict", "a table of controller parameters",
        "controller parameter key=value (repeatable; JSON values)", flag_name="--param",
        metavar="KEY=VALUE",
    ),
    Option(
        "backbone", "str", "a backbone name",
        "lr, fm, dnn, deepfm, dcnv2, widedeep (default deepfm), a registered "
        "embsearch.backbones entry point, or package.module:Class",
    ),
    Option(
        "backbone_params", "dict", "a table of backbone parameters",
        "backbone parameter (repeatable; JSON values), e.g. hidden_units=[400,400,400], "
        "activation=relu, batch_norm=true, dropout=0.2, cross_layers=3 (dcnv2), "
        "weight_decay=1e-5, embedding_regularizer=0.05; the defaults are the field's recipe "
        "(`embsearch backbones` lists them)",
        flag_name="--backbone-param", metavar="KEY=VALUE",
    ),
    Option(
        "space", "str", "a search space name, or absent",
        "field_dims, feature_dims, or a composed space searching table kinds and precision "
        "too: field_dims+meta_table, field_dims+precision, field_dims+meta_table+precision, "
        "meta_table, precision (default: the controller's)", optional=True,
    ),
    Option(
        "width", "int", "an integer",
        "base dimension: width of the full-size table and the backbone (default 16)",
    ),
    Option(
        "candidates", "list",
        "a list of integers >= 0 with one > 0 (dim 0 alone keeps no embedding at all), "
        "e.g. [2, 4, 8, 16], or absent",
        "candidate dims, e.g. 2,4,8,16 (default powers of two up to width)", optional=True,
    ),
    Option(
        "groups", "int", "an integer", "frequency groups per field in feature_dims (default 4)"
    ),
    Option(
        "projection", "str", "'linear' or 'pad', or absent",
        "how small dims reach the width: linear (a learned projection) or pad (zeros); "
        "default: the controller's own (linear; pad for dnis, optembed and rule)",
        optional=True, choices=("linear", "pad"),
    ),
    Option(
        "precision", "str", "'fp32', 'fp16', 'int8', 'int8c' or 'int4c'",
        "the table's weights: fp32, fp16, int8 rows (row-wise, with an fp32 scale and "
        "offset a row), or int8c / int4c (column-wise: one fp32 scale and offset per column "
        "of a table; int4c packs two codes a byte); counted in every plan's bytes, so a "
        "budget buys more dims at lower precision (a %% budget is still a share of the fp32 "
        "table; default fp32)",
        choices=PRECISIONS,
    ),
    Option(
        "epochs", "int", "an integer >= 1",
        "most training epochs for supernets and the final plan; early stopping on "
        "validation AUC (patience 2) ends most runs sooner (default 30; 5 is a quick look "
        "that costs about 0.02 test AUC on frappe: 0.935 against 0.957)",
        positive=True,
    ),
    Option("batch_size", "int", "an integer >= 1", "default 4096", positive=True),
    Option("lr", "num", "a number > 0", "Adam learning rate (default 1e-3)", positive=True),
    Option(
        "eval_every", "int", "an integer >= 0 (steps between validations; 0: once an epoch)",
        "also validate every STEPS training steps, not only at each epoch's end; early "
        "stopping then counts validations (default 0: once an epoch; for data whose "
        "models peak within an epoch)",
        metavar="STEPS",
    ),
    Option(
        "device", "str", "'auto', 'cpu' or 'cuda'", "default auto",
        choices=("auto", "cpu", "cuda"),
    ),
    Option("seed", "int", "an integer", "default 0"),
    Option(
        "max_seconds", "num", "a number of seconds > 0, or absent",
        "stop sample-based searches after this long, keeping the best so far",
        optional=True, positive=True,
    ),
    Option("synthetic_rows", "int", "an integer >= 1", positive=True),  # --config only
    Option(
        "threads", "int", "an integer >= 1 (CPU threads), or absent",
        "CPU threads for training (default: half the cores, 1 to 8; torch's own default, "
        "every core, stalls when another process takes one)",
        optional=True, positive=True,
    ),
    Option(
        "executor", "str", "'serial', 'local' or 'ray'",
        "where trials run: serial (one at a time in this process; default), local (--jobs "
        "worker processes on this machine) or ray (Ray tasks on a cluster, --address); "
        "tpe, random, cmaes, nsga2, optembed, rule and nis (its samples on the trained "
        "supernet; what trains a supernet stays in this process)",
        choices=("serial", "local", "ray"),
    ),
    Option(
        "jobs", "int", "an integer >= 1, or absent",
        "trials in flight at once with --executor local (worker processes; default: the "
        "cores) or ray (default: the cluster's CPUs)",
        optional=True, positive=True,
    ),
    Option(
        "address", "str", "'auto' or a Ray head's HOST:PORT, or absent",
        "the Ray cluster of --executor ray: auto (the one `ray start` runs here) or the "
        "head's HOST:PORT (default: a private one-machine cluster for this search)",
        optional=True,
    ),
    Option(
        "stream", "bool", "true or false",
        "read the train split once, in the time order `data prepare --order-by` recorded, "
        "without shuffling (the streaming setting of ESAPN's paper; controllers that take "
        "it: esapn)",
    ),
    Option(
        "column_ptq", "bool", "true or false",
        "train int8c/int4c tables in fp32 and round them after training (post-training "
        "quantisation); default: quantisation-aware training (an extension: 16 levels a "
        "column lose about 0.003 test AUC on frappe when rounded after training)",
    ),
    Option(
        "constraints", "dict", "a table of per-field constraints, e.g. {user = {min_dim = 8}}",
        "constrain one field (repeatable), as TorchRec's ParameterConstraints per table: "
        "min_dim=N, max_dim=N, dims=8,16, kinds=full,qr (spaces with meta_table), "
        "precisions=fp32,fp16 (spaces with precision), keep (never dropped: no dim 0); "
        "e.g. --constraint user:min_dim=8 --constraint item:keep",
        flag_name="--constraint", metavar="FIELD:KEY=VALUE",
    ),
)  # fmt: skip
_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "num": (int, float),
    "bool": (bool,),
    "list": (list, tuple),
    "dict": (dict,),
}


def _is_type(value: object, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
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
