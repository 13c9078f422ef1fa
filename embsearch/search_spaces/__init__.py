"""Search spaces: what may vary, what it costs, and how to fit a budget.

``field_dims`` and ``feature_dims`` vary dims only; the composed spaces (``composed.py``:
``meta_table``, ``precision`` and their sums with ``field_dims``) vary each block's kind,
meta-table size and precision too, behind the same contract.
"""

from embsearch.search_spaces.base import Candidate, SearchSpace, default_candidates
from embsearch.search_spaces.composed import COMPOSED_SPACES, BlockOption, ComposedSpace
from embsearch.search_spaces.feature_dims import FeatureDimsSpace
from embsearch.search_spaces.field_dims import FieldDimsSpace
from embsearch.search_spaces.knapsack import solve_mckp

SPACES: dict[str, type[SearchSpace]] = {
    "field_dims": FieldDimsSpace,
    "feature_dims": FeatureDimsSpace,
    **COMPOSED_SPACES,
}

__all__ = [
    "COMPOSED_SPACES",
    "SPACES",
    "BlockOption",
    "Candidate",
    "ComposedSpace",
    "FeatureDimsSpace",
    "FieldDimsSpace",
    "SearchSpace",
    "default_candidates",
    "solve_mckp",
]
