"""Find controllers: built-ins, the ``embsearch.controllers`` entry-point group, and
``package.module:Class`` names given on the command line."""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points
from typing import Any

from embsearch._plugins import allow_cwd_modules, import_target
from embsearch.controllers.base import Controller
from embsearch.errors import ControllerNotFoundError

ENTRY_POINT_GROUP = "embsearch.controllers"

# name -> "module:Class"; imported lazily so listing stays fast.
BUILTIN: dict[str, str] = {
    "uniform": "embsearch.controllers.uniform:Uniform",
    "mde": "embsearch.controllers.mde:MDE",
    "cprec": "embsearch.controllers.cprec:CpRec",
    "optembed": "embsearch.controllers.optembed:OptEmbed",
    "rule": "embsearch.controllers.rule:Rule",
    "autodim": "embsearch.controllers.autodim:AutoDim",
    "autoemb": "embsearch.controllers.autoemb:AutoEmb",
    "dnis": "embsearch.controllers.dnis:DNIS",
    "tpe": "embsearch.controllers.tpe:TPE",
    "random": "embsearch.controllers.random_search:RandomSearch",
    "cmaes": "embsearch.controllers.cma_es:CmaEs",
    "nsga2": "embsearch.controllers.nsga2:NSGA2",
    "nis": "embsearch.controllers.nis:NIS",
    "esapn": "embsearch.controllers.esapn:ESAPN",
    "autoias": "embsearch.controllers.autoias:AutoIAS",
}


def _load(target: str, name: str) -> type[Controller]:
    usage = "mypkg.mymod:MyController), or a registered name (see `embsearch controllers`)"
    cls = import_target(target, name, "controller", usage, ControllerNotFoundError)
    if not (isinstance(cls, type) and issubclass(cls, Controller)):
        raise ControllerNotFoundError(f"{target!r} is not a subclass of embsearch.Controller")
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        raise ControllerNotFoundError(
            f"{target!r} is abstract (it does not implement {missing}); name a subclass that does"
        )
    return cls


def _entry_points() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> dict[str, str]:
    """Every registered controller name -> its ``module:Class``."""
    return {**_entry_points(), **BUILTIN}


def get_controller(name: str) -> type[Controller]:
    """Resolve a registered name or a ``package.module:Class`` path."""
    if ":" in name:
        allow_cwd_modules()
        return _load(name, name)
    registered = available()
    if name not in registered:
        raise ControllerNotFoundError(
            f"unknown controller {name!r}; registered: {', '.join(sorted(registered))} "
            "(or name your own as package.module:Class)"
        )
    return _load(registered[name], name)


def _summary(name: str, cls: type[Controller]) -> dict[str, Any]:
    """The fields ``embsearch controllers`` lists for every controller."""
    return {
        "name": name,
        "family": cls.family,
        "paper": cls.paper,
        "space": cls.default_space,
        "params": dict(cls.params),
        "param_help": {k: cls.param_line(k) for k in cls.params},
        "allowed": {k: p.describe() for k, p in cls.param_specs.items()},
    }


def describe_all() -> list[dict[str, Any]]:
    """Name, family, paper, default space and parameters of every registered controller."""
    return [_summary(name, get_controller(name)) for name in sorted(available())]


#: how a controller meets ``--constraint`` unless it says otherwise (``constraints_note``)
CONSTRAINTS_NOTE = (
    "obeyed: its plans come from the space's options (knapsack, samples, repair), which the "
    "constraints narrow"
)


def describe(name: str) -> dict[str, Any]:
    """One controller in full: :func:`describe_all`'s fields, the spaces it supports, a
    projection its structure fixes, and its documentation (the module's docstring, which
    names the paper's steps and the choices the paper leaves open, then the class's own)."""
    cls = get_controller(name)
    docs = [inspect.getdoc(inspect.getmodule(cls)), cls.__doc__ and inspect.getdoc(cls)]
    return {
        **_summary(cls.name or name, cls),
        "supported_spaces": list(cls.supported_spaces),
        "fixed_projection": cls.fixed_projection,
        "constraints": getattr(cls, "constraints_note", CONSTRAINTS_NOTE),
        "doc": "\n\n".join(d for d in docs if d and d != inspect.getdoc(Controller)),
    }
