"""Search spaces: what may vary, what it costs, and how to fit a budget.

Later stages add ``row_masks`` (pruning), ``meta_table`` (hashing/QR) and ``precision``
behind the same contract.
"""

from embsearch.search_spaces.base import Candidate, SearchSpace, default_candidates
from embsearch.search_spaces.feature_dims import FeatureDimsSpace
from embsearch.search_spaces.field_dims import FieldDimsSpace
from embsearch.search_spaces.knapsack import solve_mckp

SPACES = {"field_dims": FieldDimsSpace, "feature_dims": FeatureDimsSpace}

__all__ = [
    "SPACES",
    "Candidate",
    "FeatureDimsSpace",
    "FieldDimsSpace",
    "SearchSpace",
    "default_candidates",
    "solve_mckp",
]
