"""What every search proposes and scores: a candidate layout of the table.

A candidate gives every field one dim per frequency group, ``candidate[f][g]`` (0 drops the
group), as nested tuples so it is hashable (the search loop's memo, evolution's archive)
and JSON-able. Search spaces turn candidates into plans (``search_spaces/base.py``);
supernets play them (``embeddings/``). Defined once here, below both.
"""

from __future__ import annotations

Candidate = tuple[tuple[int, ...], ...]
