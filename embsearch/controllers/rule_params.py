"""RULE's parameters (:class:`~embsearch.controllers.rule.Rule`), declared once: the
evolution's (:data:`~embsearch.controllers.evolution.EVOLUTION_SPECS`) and its own."""

from __future__ import annotations

from dataclasses import replace

from embsearch.controllers.base import SEARCH_BACKBONE
from embsearch.controllers.evolution import EVOLUTION_SPECS
from embsearch.controllers.param_spec import Param
from embsearch.embeddings.supernets import SAMPLINGS

RULE_SPECS: dict[str, Param] = {
    **EVOLUTION_SPECS,
    # step 4 scores with the estimator (microseconds), not inherited weights: at OptEmbed's
    # 20 x 10 the evolution ended with most cells of the frequent groups (~75% of lookups,
    # ~12% of bytes) where the random first generation drew them (planted fixture)
    "population": replace(
        EVOLUTION_SPECS["population"],
        default=40,
        help="candidates per generation (scored by the estimator: cheap)",
    ),
    "generations": replace(
        EVOLUTION_SPECS["generations"],
        default=20,
        help="generations bred after the random first one (patience may stop it sooner)",
    ),
    "supernet_epochs": Param(None, "int", "supernet epochs (None: --epochs)", 1, optional=True),
    "blocks": Param(16, "int", "dimension blocks B per embedding (must divide --width)", 1, 64),
    "diversity": Param(0.01, "float", "weight of the block-diversity regulariser", 0.0),
    "estimator_samples": Param(
        128, "int", "block selections scored to fit the performance estimator", 4
    ),
    "ridge": Param(1.0, "float", "ridge penalty of the estimator's regression", 0.0, open_low=True),
    "pooling": Param(
        4.0,
        "float",
        "partial pooling: the ridge penalty on a (field, group)'s deviation from its field's "
        "shared coefficient, as a multiple of the shared one's (0: each (field, group) alone)",
        0.0,
        extension="pooling the estimator's (field, group) coefficients by field: embsearch's",
    ),
    "estimator": Param(
        "linear",
        "choice",
        "estimator features: 'linear' (block counts) or 'onehot' (one per (field, group, count))",
        choices=("linear", "onehot"),
        extension="'onehot' is an ablation of the linear estimator",
    ),
    "final_checks": Param(
        5,
        "int",
        "best candidates by the estimator re-scored with inherited weights",
        1,
        extension="re-scoring the best candidates on held-out rows: embsearch's",
    ),
    "retrain": Param(
        False, "bool", "retrain the chosen plan from scratch instead of serving its blocks"
    ),
    "val_rows": Param(
        2048,
        "int",
        "rows of the fixed validation subsample the estimator's samples are scored on (None: "
        "the whole split)",
        1,
        optional=True,
        extension="scoring estimator samples on a validation subsample: embsearch's",
    ),
    "sampling": Param(
        "band",
        "choice",
        "supernet training draws each example's block counts around a random level ('band'), "
        "independently per example ('example') or once per batch ('step')",
        choices=SAMPLINGS,
        extension="'band' (default) and 'example' draw per example; 'step' is an ablation",
    ),
    "supernet_val": Param(
        "budgets",
        "choice",
        "the supernet's epochs are judged by the mean val AUC of the budgets' uniform block "
        "selections ('budgets') or by its full width ('full')",
        choices=("budgets", "full"),
        extension="judging supernet epochs by the budgets' selections: embsearch's",
    ),
    "scales": Param(
        True,
        "bool",
        "switchable scales: each block count has its own learned per-column factors on the "
        "shared blocks, folded into the served table (false: the paper's plain blocks)",
        extension="switchable per-column factors per block count; false serves plain blocks",
    ),
    "final_margin": Param(
        2.0,
        "float",
        "step 5 serves the uniform selection or a measured estimator sample over the "
        "evolution's best only when it validates better by more than this many standard errors "
        "(paired, DeLong; 0: the best held-out score)",
        0.0,
        extension="the safety checks' margin over the evolution: embsearch's",
    ),
    "search_backbone": replace(
        SEARCH_BACKBONE, help=SEARCH_BACKBONE.help + " (needs retrain=true)"
    ),
}
