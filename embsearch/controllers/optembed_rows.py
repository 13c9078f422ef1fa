"""OptEmbed's pruned rows leave the table: the plan's id -> row maps and what the credit saved
(``optembed.py``'s ``prune_rows``; the uniform table of the kept rows, the uniform gate's
rival, is ``uniform.uniform_choice`` with ``kept``).

Lyu et al. (CIKM 2022) prune rows first (step 1's thresholds) and then search dims for the
rows that are left; the official code serves a pruned id as the zero vector (its default
``mode_oov='zero'``; ``'oov'``, a shared trained row per field, is not offered here), which
is what a ``pruned`` block's map entry ``-1`` looks up (``blocks.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from embsearch.blocks import BlockSpec
from embsearch.budget import specs_bytes
from embsearch.plan import Plan
from embsearch.row_maps import RowMaps, keep_to_map, map_name


def row_maps_of(plan: Plan, keep: Sequence[np.ndarray]) -> RowMaps:
    """The map of each ``pruned`` block of ``plan`` from its field's kept ids ``keep[f]``
    (kept ids take rows in id order; the others ``-1``, the zero vector)."""
    maps: RowMaps = {}
    for f, fp in enumerate(plan.fields):
        for g, grp in enumerate(fp.groups):
            if grp.dim > 0 and plan.block_spec(fp, g).kind == "pruned":
                maps[map_name(fp.name, g)] = keep_to_map(keep[f][grp.start : grp.stop])
    return maps


def uncredited_bytes(plan: Plan) -> int:
    """Bytes of ``plan``'s dims with every row stored (``full`` blocks)."""
    return sum(
        specs_bytes(
            [BlockSpec("full", g.rows, g.dim, plan.precision) for g in fp.groups],
            plan.width,
            plan.projection,
            plan.precision,
        )
        for fp in plan.fields
    )


def row_record(plan: Plan) -> dict[str, object]:
    """``plan.extra``'s facts on the credit: the fields stored pruned, the rows and bytes
    left out."""
    pruned = [
        (fp.name, plan.block_spec(fp, g))
        for fp in plan.fields
        for g in range(len(fp.groups))
        if plan.block_spec(fp, g).kind == "pruned"
    ]
    return {
        "pruned_fields": [name for name, _ in pruned],
        "rows_left_out": sum(s.rows - s.kept for _, s in pruned),
        "bytes_credited": uncredited_bytes(plan) - plan.table_bytes,
    }
