"""Backbones (LR, FM, DNN, DeepFM, DCNv2, Wide&Deep) and the model that joins them to a table."""

from collections.abc import Mapping
from typing import Any

from torch import nn

from embsearch._text import printable
from embsearch.backbones.layers import scale_input_layers
from embsearch.backbones.models import BACKBONES, DNN, FM, LR, DCNv2, DeepFM, WideDeep
from embsearch.backbones.params import (
    NETWORK_PARAMS,
    TRAINING_PARAMS,
    check_training,
    resolve_params,
    split_params,
)
from embsearch.backbones.registry import (
    builtin_key,
    constructor_defaults,
    constructor_keys,
    resolve,
)
from embsearch.errors import ConfigError


def backbone_params(name: str, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Backbone ``name``'s parameters, complete and checked: for a built-in, its declared
    defaults (:mod:`embsearch.backbones.params`) with ``given`` laid over them; for a custom
    backbone, its constructor's scalar defaults and the training parameters' defaults with
    ``given`` laid over them (the training parameters checked, a key its constructor does
    not take refused; its own values are its constructor's to check). An unknown key or a
    value of the wrong type or range is one :class:`ConfigError` naming the parameter."""
    given = dict(given or {})
    key = builtin_key(name)
    if key is not None:
        return resolve_params(key, given, name)
    cls = resolve(name)
    params = check_training(given, name)
    network, _ = split_params(params)
    accepted = constructor_keys(cls)
    unknown = sorted(set(network) - accepted) if accepted is not None else []
    if unknown:
        raise ConfigError(
            f"unknown backbone parameter {printable(unknown[0])!r} for {name} "
            f"({cls.__qualname__} takes: {', '.join(sorted(accepted or ())) or 'none'})"
        )
    training = {k: p.default for k, p in TRAINING_PARAMS.items()}
    return {**constructor_defaults(cls), **training, **params}


ARCHITECTURE_KEY = "architecture"  # plan.extra[...]: the network a controller searched (AutoIAS)


def plan_backbone_params(
    name: str, params: Mapping[str, Any] | None, architecture: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The backbone parameters that rebuild a plan's network: the run's ``params`` with the
    plan's searched ``architecture`` (``plan.extra["architecture"]``, AutoIAS) laid over them
    (``None``: the run's alone). A backbone that takes no ``architecture`` parameter cannot
    rebuild such a plan: one :class:`ConfigError` line."""
    params = dict(params or {})
    if architecture is None:
        return params
    key = builtin_key(name)
    if key is not None:
        takes = ARCHITECTURE_KEY in NETWORK_PARAMS[key]
    else:
        keys = constructor_keys(resolve(name))
        takes = keys is None or ARCHITECTURE_KEY in keys
    if not takes:
        raise ConfigError(
            f"this plan's network was searched (plan.extra['architecture'], AutoIAS) and backbone "
            f"{printable(name)} cannot rebuild it; the run needs --backbone autoias"
        )
    return {**params, ARCHITECTURE_KEY: dict(architecture)}


def make_backbone(
    name: str,
    num_fields: int,
    width: int,
    live_inputs: int | None = None,
    params: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Build a backbone by name (a built-in, case-insensitive, ``wide&deep`` and ``wide_deep``
    accepted; an ``embsearch.backbones`` entry point; or ``package.module:Class``) as
    ``Class(num_fields=..., width=..., **network_params)``; ``params`` are checked by
    :func:`backbone_params` (the training parameters among them are not passed on).

    ``live_inputs``: how many of the ``num_fields * width`` inputs can be non-zero (a
    zero-padded plan's ``Plan.live_inputs``). The input layers are then initialised for
    that fan-in rather than for the padded one, so a padded table starts training exactly
    as the narrow table of the same dims would (PyTorch's default scales a linear layer's
    initial weights by ``1/sqrt(fan_in)``, which padding would shrink by
    ``sqrt(live/padded)``; the weights on padding get no gradient either way)."""
    cls = resolve(name)
    network, _ = split_params(backbone_params(name, params))
    try:
        backbone = cls(num_fields=num_fields, width=width, **network)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"backbone {cls.__qualname__} cannot be built with {network}: {printable(exc)}"
        ) from None
    if not isinstance(backbone, nn.Module):
        raise ConfigError(f"backbone {cls.__qualname__} did not build a torch.nn.Module")
    n_in = num_fields * width
    if live_inputs is not None and 0 < live_inputs < n_in:
        scale_input_layers(backbone, n_in, live_inputs)
    return backbone


def dense_bytes(backbone: nn.Module) -> int:
    """The backbone's own bytes: every parameter and persistent buffer (batch norm's running
    statistics), as the export's ``backbone.safetensors`` holds them."""
    return sum(t.numel() * t.element_size() for t in backbone.state_dict().values())


class CTRModel(nn.Module):
    """An embedding module followed by a backbone; ``forward(x) -> logits [batch]``."""

    def __init__(self, embedding: nn.Module, backbone: nn.Module) -> None:
        super().__init__()
        self.embedding = embedding
        self.backbone = backbone

    def forward(self, x):  # noqa: ANN001, ANN201 - torch signature
        return self.backbone(self.embedding(x))


__all__ = [
    "ARCHITECTURE_KEY",
    "BACKBONES",
    "CTRModel",
    "DCNv2",
    "DNN",
    "DeepFM",
    "FM",
    "LR",
    "WideDeep",
    "backbone_params",
    "dense_bytes",
    "make_backbone",
    "plan_backbone_params",
]
