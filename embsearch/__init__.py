"""embsearch: search embedding dimensions under a byte budget and export the table.

Public names are re-exported here; the layout underneath may change. Each is imported on
first use (PEP 562), so ``import embsearch`` alone loads nothing else, and loading an
exported table (``embsearch.MixedDimEmbedding.load``) never loads the search runner or a
controller.
"""

from importlib import import_module
from typing import Any

_HOMES = {
    "AskTellController": "embsearch.controllers.base",
    "Controller": "embsearch.controllers.base",
    "EmbsearchError": "embsearch.errors",
    "FieldPlan": "embsearch.plan",
    "GroupPlan": "embsearch.plan",
    "MixedDimEmbedding": "embsearch.embeddings.mixed_dim",
    "Param": "embsearch.controllers.param_spec",
    "Plan": "embsearch.plan",
    "SearchContext": "embsearch.context",
    "Vocabulary": "embsearch.data.vocab",  # needs pyarrow, which the table does not
    "parse_budget": "embsearch.budget",
}
__all__ = sorted(_HOMES)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """A public name, imported from its home module on first use."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'embsearch' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
