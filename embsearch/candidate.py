"""What every search proposes and scores: a candidate layout of the table.

A candidate gives every (field, frequency group) block one key, ``candidate[f][g]``, into
the space's options for it (``space.block_keys(f, g)``): in the dims-only spaces the key is
the dim itself (0 drops the group), in the composed spaces (``search_spaces/composed.py``)
the index of a dim x kind x size x precision option; ``space.dims_of(candidate)`` gives the
dims either way. Nested tuples of ints, so it is hashable (the search loop's memo,
evolution's archive) and JSON-able. Search spaces turn candidates into plans (``search_spaces/base.py``);
supernets play them (``embeddings/``). Defined once here, below both.
"""

from __future__ import annotations

Candidate = tuple[tuple[int, ...], ...]
