"""The black-box controllers' encoding of a composed space's candidates (:mod:`.black_box`).

In a dims-only space a trial has one Optuna parameter per (field, group), ``<field>/<group>``,
over its candidate dims. In a composed space (``search_spaces/composed.py``) it has one
categorical parameter per (field, group) and axis, ``<field>/<group>/<axis>`` (``dim``,
``kind``, ``level``, ``precision``: ``space.axis_values``), whose values name one option of
the block (``space.key_from_axes``; ``space.axes_of_key`` back): each axis is drawn on its
own, so full rows come one draw in four where a draw over the ~40 options of a block would
almost always share rows.

A fresh study's first trial is enqueued (:func:`composed_start`, embsearch's): the largest
candidate repaired onto the budget. Uniform draws in a composed space mostly fall far below
the budget, where a dims-only draw is mostly over it and repaired up to it.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution

from embsearch.candidate import Candidate
from embsearch.search_spaces.base import SearchSpace
from embsearch.search_spaces.composed import ComposedSpace


def param_name(space: SearchSpace, f: int, g: int) -> str:
    """The Optuna parameter of (field ``f``, group ``g``): ``<field>/<group>``."""
    return f"{space.schema.fields[f].name}/{g}"


def composed_start(space: ComposedSpace, budget: int) -> Candidate:
    """A composed study's first trial: the largest candidate (full fp32 rows at the largest
    dim) repaired onto ``budget`` (module docstring)."""
    return space.repair(space.max_candidate(), budget)


def composed_distributions(space: ComposedSpace, f: int, g: int) -> dict[str, Any]:
    """Block ``(f, g)``'s parameters, one categorical per axis."""
    name = param_name(space, f, g)
    return {
        f"{name}/{axis}": CategoricalDistribution(values)
        for axis, values in space.axis_values(f, g).items()
    }


def composed_params(space: ComposedSpace, cand: Candidate) -> dict[str, Any]:
    """A candidate as its trial's parameters."""
    return {
        f"{param_name(space, f, g)}/{axis}": value
        for f, keys in enumerate(cand)
        for g, k in enumerate(keys)
        for axis, value in space.axes_of_key(f, g, k).items()
    }


def composed_candidate(space: ComposedSpace, params: dict[str, Any]) -> Candidate:
    """The candidate of a trial's parameters."""

    def values(name: str) -> dict[str, Any]:
        return {k[len(name) + 1 :]: v for k, v in params.items() if k.startswith(name + "/")}

    return tuple(
        tuple(space.key_from_axes(f, g, values(param_name(space, f, g))) for g in range(len(gs)))
        for f, gs in enumerate(space.groups)
    )


def composed_sample(trial: optuna.trial.Trial, space: ComposedSpace) -> Candidate:
    """The candidate ``trial`` suggests, axis by axis."""
    params = {
        name: trial.suggest_categorical(name, dist.choices)
        for f, gs in enumerate(space.groups)
        for g in range(len(gs))
        for name, dist in composed_distributions(space, f, g).items()
    }
    return composed_candidate(space, params)
