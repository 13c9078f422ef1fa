"""The backbones' parameters, declared once: default, kind (type and range), one line of help.

``--backbone-param KEY=VALUE`` and a ``[backbone]`` table in ``--config`` (``backbone_params``)
set them; ``config.json`` and the export's ``model.json`` record them, so ``retrain``,
``export`` and :func:`embsearch.export.load_model` rebuild the same network.

The defaults are the field's standard recipe (FuxiCTR's BARS ``DeepFM_frappe_x1`` config:
batch norm, dropout 0.2, ``embedding_regularizer`` 0.05, learning rate x0.1 on a plateau)
with one change, the MLP's widths: 256-128 rather than 400-400-400. On the frappe split,
full-size DeepFM reaches test AUC 0.9574 (3 seeds) with 256-128 and 0.9580 with 400-400-400
(FuxiCTR: 0.9587), at 2.3x the speed (BENCHMARKS.md, "Backbones"). Batch norm is what
matters most: without it the same recipe scores 0.924. Runs recorded before this recipe
(``config.json`` holds every parameter) rebuild their own networks.

Two kinds of parameter:

- *network* parameters (``hidden_units``, ``activation``, ``batch_norm``, ``dropout``,
  ``cross_layers``) go to the backbone's constructor, ``Class(num_fields, width, **params)``;
- *training* parameters (``weight_decay``, ``embedding_regularizer``, ``lr_plateau_factor``),
  the same for every backbone, a custom one included, never reach the constructor: the
  first two add penalties to the loss of the plan's training
  (:func:`embsearch.backbones.regularize.penalty`); the third decays the learning rate on a
  validation without a better AUC (``TrainConfig.lr_plateau_factor``, every training of
  the run, supernets included).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from embsearch._text import printable
from embsearch.errors import ConfigError

ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "silu", "tanh", "sigmoid")


@dataclass(frozen=True)
class BackboneParam:
    """One declared parameter: its default, its kind (``units``: a non-empty list of integers
    >= 1; ``activation``: one of :data:`ACTIVATIONS`; ``bool``; ``prob``: a number in [0, 1);
    ``count``: an integer >= 0; ``nonneg``: a number >= 0) and one line of help."""

    default: Any
    kind: str
    help: str


_ALLOWED = {
    "units": "a non-empty list of integers >= 1, e.g. [400, 400, 400]",
    "activation": "one of " + ", ".join(ACTIVATIONS),
    "bool": "true or false",
    "prob": "a number >= 0 and < 1",
    "count": "an integer >= 0",
    "nonneg": "a finite number >= 0",
    "factor": "a number > 0 and <= 1",
    "share": "a number >= 0 and <= 0.5",
    "architecture": 'null or an object {"interactions": {"i,j": "inner" | "hadamard" | '
    '"projected", ...}, "mlp": [widths]} (pairs left out: no interaction)',
}

MLP_PARAMS: dict[str, BackboneParam] = {
    "hidden_units": BackboneParam([256, 128], "units", "widths of the MLP's hidden layers"),
    "activation": BackboneParam("relu", "activation", "the MLP's activation after each layer"),
    "batch_norm": BackboneParam(
        True, "bool", "batch norm after each hidden layer's linear map (before the activation)"
    ),
    "dropout": BackboneParam(
        0.2, "prob", "dropout after each hidden layer's activation (training only)"
    ),
}

TRAINING_PARAMS: dict[str, BackboneParam] = {
    "weight_decay": BackboneParam(
        0.0, "nonneg", "L2 on the backbone's weights: (wd/2)*||W||^2 added to the loss"
    ),
    "embedding_regularizer": BackboneParam(
        0.05, "nonneg", "(lambda/2)*||E||^2 over the table's blocks each step (FuxiCTR's, dense)"
    ),
    "base_rate_bias": BackboneParam(
        0.1,
        "share",
        "start the output bias at the training split's log-odds when the rarer class is below "
        "this share (0: never, 0.5: always; extension: from a zero start on rare positives, "
        "early stopping ended at epoch 3 before the ranking was learned)",
    ),
    "lr_plateau_factor": BackboneParam(
        0.1, "factor", "lr times this at each validation without a better AUC, min 1e-6 (1: off)"
    ),
}

NETWORK_PARAMS: dict[str, dict[str, BackboneParam]] = {
    "lr": {},
    "fm": {},
    "dnn": dict(MLP_PARAMS),
    "deepfm": dict(MLP_PARAMS),
    "widedeep": dict(MLP_PARAMS),
    "dcnv2": {
        "cross_layers": BackboneParam(3, "count", "DCN-V2's full-rank cross layers"),
        **MLP_PARAMS,
    },
    "autoias": {
        "architecture": BackboneParam(
            None,
            "architecture",
            "the network AutoIAS searched: each field pair's interaction and the MLP's widths "
            "(an AutoIAS plan sets it; null: every pair's inner product and hidden_units)",
        ),
        **MLP_PARAMS,
    },
}


BUILTIN_KEYS = frozenset(k for table in NETWORK_PARAMS.values() for k in table) | set(
    TRAINING_PARAMS
)  # every parameter some built-in backbone declares


# Backbones without an MLP have nothing to rescale a table the recipe's dense 0.05 shrinks:
# full-size FM on the frappe split scored test AUC 0.57 with it. Their default is FuxiCTR's
# BARS FM_frappe_x1 regularizer, 5e-6 (LR: the same, for the same reason).
TRAINING_DEFAULTS: dict[str, dict[str, Any]] = {
    "fm": {"embedding_regularizer": 5e-6},
    "lr": {"embedding_regularizer": 5e-6},
}


def declared(key: str) -> dict[str, BackboneParam]:
    """Every parameter of built-in backbone ``key`` (network parameters, then training ones,
    with the backbone's own training defaults, :data:`TRAINING_DEFAULTS`)."""
    own = TRAINING_DEFAULTS.get(key, {})
    training = {k: replace(p, default=own.get(k, p.default)) for k, p in TRAINING_PARAMS.items()}
    return {**NETWORK_PARAMS[key], **training}


def defaults(key: str) -> dict[str, Any]:
    """The defaults of built-in backbone ``key``'s parameters."""
    return {k: _copy(p.default) for k, p in declared(key).items()}


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def check_value(name: str, param: BackboneParam, value: Any, backbone: str) -> Any:
    """``value`` if it is of ``param``'s kind (lists normalised to lists of int), else a
    :class:`ConfigError` naming the parameter and the backbone."""
    ok = _ok(param.kind, value)
    if not ok:
        raise ConfigError(
            f"backbone parameter {name} of {backbone} must be {_ALLOWED[param.kind]}, "
            f"got {printable(json_text(value))}"
        )
    if param.kind == "units":
        return [int(v) for v in value]
    if param.kind in ("prob", "nonneg", "factor", "share"):
        return float(value)
    return value


def json_text(value: Any) -> str:
    import json

    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _ok(kind: str, v: Any) -> bool:
    if kind == "units":
        return isinstance(v, (list, tuple)) and len(v) > 0 and all(_is_int(u) and u >= 1 for u in v)
    if kind == "activation":
        return isinstance(v, str) and v in ACTIVATIONS
    if kind == "bool":
        return isinstance(v, bool)
    if kind == "prob":
        return _is_num(v) and 0 <= v < 1
    if kind == "count":
        return _is_int(v) and v >= 0
    if kind == "nonneg":
        return _is_num(v) and v >= 0
    if kind == "factor":
        return _is_num(v) and 0 < v <= 1
    if kind == "share":
        return _is_num(v) and 0 <= v <= 0.5
    if kind == "architecture":
        return v is None or _is_architecture(v)
    raise ValueError(kind)


def _is_architecture(v: Any) -> bool:
    """The shape of an AutoIAS architecture (its pairs are checked against the field count
    when the backbone is built)."""
    if not isinstance(v, dict) or not set(v) <= {"interactions", "mlp"}:
        return False
    inter, widths = v.get("interactions", {}), v.get("mlp", [1])
    ops = ("none", "inner", "hadamard", "projected")
    return (
        isinstance(inter, dict)
        and all(isinstance(k, str) and o in ops for k, o in inter.items())
        and _ok("units", widths)
    )


def resolve_params(key: str, given: Mapping[str, Any], backbone: str) -> dict[str, Any]:
    """Built-in backbone ``key``'s parameters: its defaults with ``given`` checked and laid
    over them. An unknown key is refused in one line that lists the known ones."""
    table = declared(key)
    unknown = sorted(set(given) - set(table))
    if unknown:
        known = ", ".join(table) or "none"
        raise ConfigError(
            f"unknown backbone parameter {printable(unknown[0])!r} for {backbone}; known: {known}"
        )
    out = defaults(key)
    for name, value in given.items():
        out[name] = check_value(name, table[name], value, backbone)
    return out


def split_params(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, float]]:
    """``(network, training)``: the constructor's keyword arguments and the training
    parameters (each one present, its default where absent)."""
    network = {k: v for k, v in params.items() if k not in TRAINING_PARAMS}
    training = {k: float(params.get(k, p.default)) for k, p in TRAINING_PARAMS.items()}
    return network, training


def check_training(given: Mapping[str, Any], backbone: str) -> dict[str, Any]:
    """A custom backbone's training parameters checked (its network ones are its own)."""
    out = dict(given)
    for name, param in TRAINING_PARAMS.items():
        if name in given:
            out[name] = check_value(name, param, given[name], backbone)
    return out


def describe_params(name: str | None = None) -> list[dict[str, Any]]:
    """Each built-in backbone (or only ``name``) with its first docstring line and its
    declared parameters (default, kind, help), for ``embsearch backbones``."""
    from embsearch.backbones.models import BACKBONES
    from embsearch.backbones.registry import builtin_key

    keys = list(BACKBONES)
    if name is not None:
        key = builtin_key(name)
        if key is None:
            raise ConfigError(
                f"unknown backbone {printable(name)!r}; choose one of {', '.join(BACKBONES)}"
            )
        keys = [key]
    return [
        {
            "name": key,
            "doc": (BACKBONES[key].__doc__ or "").strip().splitlines()[0],
            "params": {
                k: {
                    "default": p.default,
                    "kind": p.kind,
                    "allowed": _ALLOWED[p.kind],
                    "help": p.help,
                }
                for k, p in declared(key).items()
            },
        }
        for key in keys
    ]
