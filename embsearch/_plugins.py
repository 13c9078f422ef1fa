"""Resolve a plug-in named ``package.module:Class`` (a controller or a backbone): one way to
check the name, import the module and walk to the attribute, with one-line errors."""

from __future__ import annotations

import importlib
import os
import re
import sys

from embsearch._text import printable

_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def allow_cwd_modules() -> None:
    """Like ``python -m``, let users name modules beside them (the working directory)."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def import_target(target: str, name: str, kind: str, usage: str, error: type[Exception]) -> object:
    """The object ``target`` (``package.module:Attr.Inner``) names, or ``None`` when the
    module has no such attribute; ``error`` (one line) for a malformed name or a module that
    does not import. ``name`` is what the user wrote, ``kind`` what it should be
    ("controller", "backbone") and ``usage`` the end of the how-to line."""
    module_name, _, attr = target.partition(":")
    if not _DOTTED.match(module_name) or not _DOTTED.match(attr):
        raise error(
            f"{kind} {printable(name)!r}: write package.module:Class (absolute dotted names, "
            f"e.g. {usage}"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise error(
            f"cannot import {kind} module {module_name!r} for {printable(name)!r}: {printable(exc)}"
        ) from None
    obj: object = module
    for part in attr.split("."):  # Outer.Inner
        obj = getattr(obj, part, None)
    return obj
