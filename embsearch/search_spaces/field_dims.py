"""``field_dims``: one dimension per field, from a candidate list (AutoDim, MDE, OptEmbed, ...)."""

from __future__ import annotations

from embsearch.search_spaces.base import SearchSpace


class FieldDimsSpace(SearchSpace):
    """Every field is one group; a candidate picks one dim per field."""

    name = "field_dims"
