"""``feature_dims``: features grouped by frequency, one dimension per (field, group).

Used by AutoEmb, CpRec, DNIS, NIS, RULE and ESAPN. Groups are contiguous ranges of the
frequency-ranked ids (see ``_groups.py``); a field with fewer ids than groups gets fewer.
"""

from __future__ import annotations

from collections.abc import Sequence

from embsearch.data.schema import Schema
from embsearch.errors import ConfigError
from embsearch.search_spaces._groups import frequency_groups
from embsearch.search_spaces.base import SearchSpace


class FeatureDimsSpace(SearchSpace):
    name = "feature_dims"

    def __init__(
        self,
        schema: Schema,
        width: int = 16,
        candidates: Sequence[int] | None = None,
        projection: str = "linear",
        precision: str = "fp32",
        n_groups: int = 4,
    ) -> None:
        if n_groups < 1:
            raise ConfigError(f"--groups must be at least 1, got {n_groups}")
        self.n_groups = int(n_groups)
        super().__init__(schema, width, candidates, projection, precision)

    def _make_groups(self) -> list[list[tuple[int, int]]]:
        return [frequency_groups(f.frequencies(), self.n_groups) for f in self.schema.fields]
