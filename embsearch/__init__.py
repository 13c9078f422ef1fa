"""embsearch: search embedding dimensions under a byte budget and export the table.

Public names are re-exported here; the layout underneath may change.
"""

from typing import Any

from embsearch.budget import parse_budget
from embsearch.context import SearchContext
from embsearch.controllers.base import AskTellController, Controller
from embsearch.embeddings.mixed_dim import MixedDimEmbedding
from embsearch.errors import EmbsearchError
from embsearch.plan import FieldPlan, GroupPlan, Plan

__all__ = [
    "AskTellController",
    "Controller",
    "EmbsearchError",
    "FieldPlan",
    "GroupPlan",
    "MixedDimEmbedding",
    "Plan",
    "SearchContext",
    "Vocabulary",
    "parse_budget",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``Vocabulary`` (:mod:`embsearch.data.vocab`), imported on first use: it needs pyarrow,
    which the rest of ``import embsearch`` does not load."""
    if name == "Vocabulary":
        from embsearch.data.vocab import Vocabulary

        return Vocabulary
    raise AttributeError(f"module 'embsearch' has no attribute {name!r}")
