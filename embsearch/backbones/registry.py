"""Find backbones: the built-ins, the ``embsearch.backbones`` entry-point group, and
``package.module:Class`` names (as controllers are found, :mod:`embsearch.controllers.registry`).

A backbone is any ``nn.Module`` class built as ``Class(num_fields=..., width=..., **params)``
that maps embeddings ``[batch, fields, width]`` to logits ``[batch]``
(:func:`embsearch.testing.check_backbone` checks one)."""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points
from typing import Any

from torch import nn

from embsearch._plugins import allow_cwd_modules, import_target
from embsearch._text import printable
from embsearch.backbones.models import BACKBONES
from embsearch.errors import ConfigError

ENTRY_POINT_GROUP = "embsearch.backbones"


def builtin_key(name: str) -> str | None:
    """The built-in backbone ``name`` stands for (case-insensitive; ``wide&deep``,
    ``wide_deep`` accepted), or ``None``."""
    key = name.lower().replace("&", "").replace("_", "").replace("-", "")
    return key if key in BACKBONES else None


def _entry_points() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def resolve(name: str) -> type[nn.Module]:
    """The backbone class ``name`` names: a built-in, a registered entry point, or
    ``package.module:Class``; else one line saying what is known."""
    key = builtin_key(name)
    if key is not None:
        return BACKBONES[key]
    if ":" in name:
        allow_cwd_modules()
        return _load(name, name)
    registered = _entry_points()
    if name in registered:
        return _load(registered[name], name)
    known = ", ".join([*BACKBONES, *sorted(registered)])
    raise ConfigError(
        f"unknown backbone {printable(name)!r}; choose one of {known} "
        "(or name your own as package.module:Class)"
    )


def _load(target: str, name: str) -> type[nn.Module]:
    usage = "mypkg.mymod:MyBackbone), or a built-in name"
    cls = import_target(target, name, "backbone", usage, ConfigError)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConfigError(f"backbone {target!r} is not a torch.nn.Module subclass")
    return cls


def constructor_keys(cls: type[nn.Module]) -> set[str] | None:
    """The keyword parameters ``cls`` accepts beside ``num_fields`` and ``width`` (``None``:
    any, it takes ``**kwargs``)."""
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return {
        n
        for n, p in sig.parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    } - {"num_fields", "width"}


def constructor_defaults(cls: type[nn.Module]) -> dict[str, Any]:
    """The defaults of ``cls``'s keyword parameters that JSON records exactly (numbers,
    strings, booleans, None), so a run records its custom backbone completely and rebuilds
    the same network should the class's defaults change later."""
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):
        return {}
    return {
        n: p.default
        for n, p in sig.parameters.items()
        if n not in ("num_fields", "width")
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        and (p.default is None or type(p.default) in (int, float, str, bool))
    }
