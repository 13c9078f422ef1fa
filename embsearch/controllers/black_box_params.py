"""The parameters every black-box controller (``tpe``, ``random``, ``cmaes``, ``nsga2``;
:mod:`.black_box`) declares: trials per budget and how a trial is scored."""

from __future__ import annotations

from embsearch.controllers.base import SEARCH_BACKBONE
from embsearch.controllers.param_spec import Param
from embsearch.embeddings.supernets import SAMPLINGS

BLACK_BOX_SPECS: dict[str, Param] = {
    "trials": Param(64, "int", "trials per budget (each a candidate scored on validation)", 1),
    "scoring": Param(
        "supernet",
        "choice",
        "how a trial is scored: 'supernet' (inherited weights of one weight-sharing "
        "supernet) or 'scratch' (its plan trained from scratch, trial_epochs epochs)",
        choices=("supernet", "scratch"),
    ),
    "trial_epochs": Param(
        None, "int", "epochs of a 'scratch' trial (None: --epochs)", 1, optional=True
    ),
    "supernet_epochs": Param(None, "int", "supernet epochs (None: --epochs)", 1, optional=True),
    "sampling": Param(
        "example",
        "choice",
        "how supernet training draws dims: 'example' (a dim per example and (field, group)), "
        "'step' or 'band'",
        choices=SAMPLINGS,
    ),
    "val_rows": Param(
        2048,
        "int",
        "rows of the fixed validation subsample trials are scored on (None: the whole split)",
        1,
        optional=True,
    ),
    "projection": Param(
        "pad",
        "choice",
        "plans' projection: 'pad' (what the inherited weights play) or 'linear'",
        choices=("pad", "linear"),
    ),
    "search_backbone": SEARCH_BACKBONE,
}
