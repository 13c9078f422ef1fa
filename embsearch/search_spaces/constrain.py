"""Per-field constraints applied to a search space (issue 21 item 6; ``embsearch/constraints.py``).

A constrained space offers each (field, group) block only the keys its field's constraint
allows (:meth:`SearchSpace.block_keys <embsearch.search_spaces.base.SearchSpace.block_keys>`);
everything built on the keys follows: a field's options, the knapsack
(``best_under_budget``), sampling, ``repair`` (which also projects a candidate that breaks a
constraint onto the nearest allowed keys), ``uniform`` / ``max_candidate``, ``min_bytes`` and
so the budget check, which names the smallest plan the constraints allow. ``to_plan`` refuses
a candidate that breaks one (an internal error: a controller that bypassed the space), and
the plan records the constraints.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from embsearch.candidate import Candidate
from embsearch.constraints import FieldConstraint
from embsearch.errors import BudgetError, ConfigError

#: a :class:`~embsearch.search_spaces.base.SearchSpace` (not imported: base imports this module)
SearchSpace = Any

#: the spaces a key needs: kinds need a meta_table axis, precisions a precision axis
_AXIS_OF = {"kinds": "meta_table", "precisions": "precision"}


def apply(space: SearchSpace, constraints: Mapping[str, FieldConstraint]) -> SearchSpace:
    """A copy of ``space`` under ``constraints``; one :class:`ConfigError` line for a field
    the data lack (naming its fields), a key the space cannot express (kinds without
    ``meta_table``, precisions without ``precision``), a dim it does not offer, or a block
    left with no option."""
    names = space.schema.names
    unknown = [n for n in constraints if n not in names]
    if unknown:
        raise ConfigError(
            f"--constraint names no field of the data: {', '.join(unknown)}; fields: {', '.join(names)}"
        )
    axes = getattr(space, "axes", ("dims",))
    for name, c in constraints.items():
        for key, axis in _AXIS_OF.items():
            if getattr(c, key) is not None and axis not in axes:
                raise ConfigError(
                    f"constraint {name}:{key} needs a space that searches {axis} (e.g. --space "
                    f"field_dims+{axis}); the {space.name} space does not"
                )
        offered = set(space.dim_choices) | ({0} if 0 in space.candidates else set())
        missing = sorted(set(c.dims or ()) - offered)
        if missing:
            raise ConfigError(
                f"constraint {c.text(name)}: dim(s) {', '.join(map(str, missing))} are not offered "
                f"by the {space.name} space (dims {', '.join(map(str, sorted(offered)))}; "
                "--candidates sets them)"
            )
    clone = space.__copy__()
    clone.constraints = {n: constraints[n] for n in names if n in constraints}
    check_blocks(clone)
    return clone


def check_blocks(space: SearchSpace) -> None:
    """One :class:`ConfigError` line when a constraint leaves a block of ``space`` no option
    (also for a controller's copy with other candidates, e.g. NIS's and RULE's block dims)."""
    for f, name in enumerate(space.schema.names):
        if name in space.constraints:
            for g in range(len(space.groups[f])):
                if not space.block_keys(f, g):
                    a, b = space.groups[f][g]
                    raise ConfigError(
                        f"constraint {space.constraints[name].text(name)} leaves field {name!r} "
                        f"(ids {a}..{b - 1}) no option in the {space.name} space (dims "
                        f"{', '.join(map(str, space.dim_choices))}); loosen it"
                    )


def allowed_keys(space: SearchSpace, f: int, g: int) -> tuple[int, ...]:
    """The keys of block ``(f, g)`` its field's constraint allows (all without one)."""
    keys = space.all_keys(f, g)
    c = space.constraints.get(space.schema.fields[f].name)
    if c is None:
        return keys
    memo = space.__dict__.setdefault("_allowed", {})
    at = (f, g, space.width, space.candidates, space.precision, id(c))
    if at not in memo:
        out = []
        for k in keys:
            spec = space.block_spec(f, g, k)
            if c.allows(spec.dim, spec.kind, spec.precision):
                out.append(k)
        memo[at] = tuple(out)
    return memo[at]


def conforms(space: SearchSpace, cand: Candidate) -> bool:
    """Whether every block of a constrained field of ``cand`` takes a key its constraint
    allows (unconstrained fields are not looked at)."""
    if not space.constraints:
        return True
    names = space.schema.names
    return all(
        int(k) in space.block_keys(f, g)
        for f, keys in enumerate(cand)
        if names[f] in space.constraints
        for g, k in enumerate(keys)
    )


def nearest(space: SearchSpace, cand: Candidate) -> Candidate:
    """``cand`` with every key of a constrained field that its constraint does not allow
    replaced by the nearest allowed one (``space.key_distance``; ties to the larger dim),
    budget aside; other fields as they are."""
    if conforms(space, cand):
        return cand
    out = []
    for f, keys in enumerate(cand):
        if space.schema.names[f] not in space.constraints:
            out.append(tuple(keys))
            continue
        row = []
        for g, k in enumerate(keys):
            allowed = space.block_keys(f, g)
            if int(k) in allowed:
                row.append(int(k))
                continue
            if not allowed:  # a narrowed copy (with_width) below what the constraint allows
                name = space.schema.names[f]
                raise BudgetError(
                    f"no block of width {space.width} obeys {space.constraints[name].text(name)}"
                )
            row.append(
                min(
                    allowed,
                    key=lambda b, f=f, g=g, k=k: (
                        space.key_distance(f, g, int(k), b),
                        -space.block_spec(f, g, b).dim,
                    ),
                )
            )
        out.append(tuple(row))
    return tuple(out)


def check_candidate(space: SearchSpace, cand: Candidate, controller: str) -> None:
    """Refuse (``RuntimeError``: a bug, not the user's input) a plan whose candidate breaks a
    constraint: a controller built it without the space's options."""
    for f, keys in enumerate(cand):
        for g, k in enumerate(keys):
            if int(k) not in space.block_keys(f, g):
                name = space.schema.fields[f].name
                spec = space.block_spec(f, g, k)
                raise RuntimeError(
                    f"internal: controller {controller} chose dim {spec.dim} {spec.kind} "
                    f"{spec.precision} for field {name!r} group {g}, which breaks "
                    f"{space.constraints[name].text(name)}"
                )


def describe(space: SearchSpace) -> str:
    """The constraints as flags (for messages), empty without any."""
    return " ".join(c.text(n) for n, c in space.constraints.items())


def mask_costs(space: SearchSpace, costs: np.ndarray) -> np.ndarray:
    """``costs[s, o]`` (bytes of the (field, group) slots, in order, at ``space.candidates``)
    with every option a constraint rules out at ``+inf``: a policy that masks what the budget
    rules out (NIS's and AutoIAS's) then never draws it, so it learns inside the constraints."""
    if not space.constraints:
        return costs
    out = np.array(costs, dtype=np.float64)
    slot = 0
    for f, groups in enumerate(space.groups):
        for g in range(len(groups)):
            allowed = space.block_keys(f, g)
            out[slot, [c not in allowed for c in space.candidates]] = np.inf
            slot += 1
    return out
