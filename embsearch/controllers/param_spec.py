"""One declarative spec per controller parameter, as scikit-learn's ``_parameter_constraints``.

A controller declares ``param_specs = {"name": Param(default, kind, ...), ...}``; everything
else is derived from it: ``Controller.params`` (the defaults), ``param_help``, ``extensions``,
the check :meth:`Controller.__init__ <embsearch.controllers.base.Controller>` runs on every
given value (one line naming the controller, the parameter, what is allowed and the value
given), and what ``embsearch controllers NAME`` prints. Checks between parameters (e.g.
``temperature_min <= temperature``) stay in the controller's ``validate()``, which can
reuse a spec with another bound: ``replace(spec, high=...).check(name, key, value)``.

A plug-in that still declares the older plain dicts (``params`` of defaults, ``param_help``,
``extensions``) keeps working: :func:`declared_specs` builds its specs from them, keeping the
checks of any parameter a base class declares and accepting any value of one it adds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from embsearch.errors import ConfigError

KINDS = ("int", "float", "bool", "choice", "object", "any")


@dataclass(frozen=True)
class Param:
    """One controller parameter.

    ``kind``: ``int`` (an integer, never a bool), ``float`` (any real number, never a bool),
    ``bool``, ``choice`` (one of ``choices``), ``object`` (a JSON object with string keys)
    or ``any`` (unchecked: a plug-in's plain-dict parameter). ``low``/``high`` bound an
    ``int`` or ``float`` (``open_low``: ``low`` itself is refused). ``optional``: ``None`` is
    allowed too (``help`` says what it means). ``extension``: why this parameter, or one of
    its values, is not the paper's (``embsearch controllers NAME`` labels it). ``allowed``:
    words that replace the kind's own in messages and listings, where those are too vague.
    """

    default: Any
    kind: str
    help: str = ""
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    choices: tuple[Any, ...] = ()
    optional: bool = False
    extension: str | None = None
    allowed: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Param kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if (self.kind == "choice") != bool(self.choices):
            raise ValueError("a 'choice' Param needs choices, and only it takes them")
        if (self.low is not None or self.high is not None) and self.kind not in ("int", "float"):
            raise ValueError(f"a {self.kind!r} Param takes no range")

    def describe(self) -> str:
        """What is allowed, in words: ``an integer in [1, 10000] or None``."""
        if self.allowed is not None:
            return self.allowed
        if self.kind == "any":
            return ""
        text = {
            "bool": "true or false",
            "choice": " or ".join(repr(c) for c in self.choices),
            "object": "a JSON object",
        }.get(self.kind) or ("an integer" if self.kind == "int" else "a number") + self._range()
        return f"{text} or None" if self.optional else text

    def _range(self) -> str:
        lo, hi = self.low, self.high
        if lo is not None and hi is not None:
            return f" in {'(' if self.open_low else '['}{_num(lo)}, {_num(hi)}]"
        if lo is not None:
            return f" {'>' if self.open_low else '>='} {_num(lo)}"
        return f" <= {_num(hi)}" if hi is not None else ""

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is allowed."""
        if self.kind == "any" or (value is None and self.optional):
            return True
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "choice":
            return value in self.choices
        if self.kind == "object":
            return isinstance(value, dict) and all(isinstance(k, str) for k in value)
        kinds = (int, np.integer) if self.kind == "int" else (int, float, np.integer, np.floating)
        if isinstance(value, bool) or not isinstance(value, kinds):
            return False
        if self.low is not None and not (value > self.low if self.open_low else value >= self.low):
            return False
        return self.high is None or value <= self.high

    def check(self, controller: str, key: str, value: Any) -> None:
        """Raise a one-line :class:`ConfigError` unless ``value`` is allowed."""
        if not self.accepts(value):
            raise ConfigError(f"{controller}: {key} must be {self.describe()}, got {value!r}")

    def line(self) -> str:
        """The line ``embsearch controllers NAME`` prints after ``key=default``: the help,
        what is allowed and, for an extension, ``[extension: why]``."""
        allowed = self.describe()
        text = f"{self.help} ({allowed})" if allowed and self.help else self.help or allowed
        return f"{text} [extension: {self.extension}]" if self.extension else text


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and math.isfinite(x) else f"{x:g}"


def check_params(controller: str, specs: Mapping[str, Param], config: Mapping[str, Any]) -> None:
    """Check every value of ``config`` that ``specs`` declares, in declaration order."""
    for key, spec in specs.items():
        if key in config:
            spec.check(controller, key, config[key])


def defaults_of(specs: Mapping[str, Param]) -> dict[str, Any]:
    return {k: p.default for k, p in specs.items()}


def help_of(specs: Mapping[str, Param]) -> dict[str, str]:
    return {k: p.help for k, p in specs.items()}


def extensions_of(specs: Mapping[str, Param]) -> dict[str, str]:
    return {k: p.extension for k, p in specs.items() if p.extension}


def specs_from_dicts(
    inherited: Mapping[str, Param],
    params: Mapping[str, Any] | None,
    param_help: Mapping[str, str] | None,
    extensions: Mapping[str, str] | None,
) -> dict[str, Param]:
    """Specs for a class that declares the older plain dicts (``None``: the dict is not
    declared, so the inherited one stands). A parameter the base class declares keeps its
    check (unless the new default fails it); one it does not is ``kind='any'``."""
    keys = inherited if params is None else params
    out = {}
    for key in keys:
        spec = inherited.get(key)
        default = inherited[key].default if params is None else params[key]
        if spec is None:
            spec = Param(default, "any")
        elif not spec.accepts(default):
            spec = Param(default, "any", help=spec.help, extension=spec.extension)
        spec = replace(spec, default=default)
        if param_help is not None:
            spec = replace(spec, help=param_help.get(key, ""))
        if extensions is not None:
            spec = replace(spec, extension=extensions.get(key))
        out[key] = spec
    return out
