"""NIS's parameters (:mod:`.nis`), each with its default, range, help and, where it is not
the paper's, the reason (``embsearch controllers nis`` prints them)."""

from __future__ import annotations

from embsearch.controllers.base import SEARCH_BACKBONE
from embsearch.controllers.param_spec import Param

NIS_SPECS: dict[str, Param] = {
    "blocks": Param(
        4,
        "int",
        "dimension blocks B per embedding (must divide --width)",
        1,
        64,
        extension="the paper sizes B per problem; 4 keeps the action space small",
    ),
    "vocabulary": Param(
        True,
        "bool",
        "a group may keep 0 blocks: its ids leave the vocabulary (the paper searches the "
        "vocabulary size beside the dims)",
    ),
    "supernet_epochs": Param(None, "int", "supernet epochs (None: --epochs)", 1, optional=True),
    "policy_every": Param(
        8,
        "int",
        "supernet weight steps between two policy updates",
        1,
        extension="the paper's alternation rate is not given",
    ),
    "warmup": Param(
        1.0,
        "float",
        "share of the supernet's weight steps trained on warm-up draws (warmup_draws) before "
        "the policy starts learning (1: all of them; the policies then learn in step 6 only)",
        0.0,
        1.0,
        extension="the paper trains the supernet on the learning controller's samples "
        "(warmup=0): it co-adapts to them and the policy keeps what it favours (frappe 25%: "
        "an item group dropped, 0.0056 below uniform); untrained policies' draws score fairly",
    ),
    "warmup_draws": Param(
        "policy",
        "choice",
        "the warm-up's selections: the untrained policies' budget-masked samples, each "
        "budget's feasible block counts ('policy'), or each example's block counts drawn "
        "uniformly, unmasked, every block of every group trained ('uniform')",
        choices=("policy", "uniform"),
        extension="the stored copies of the paper do not say how its warm-up draws; "
        "'uniform' rarely trains selections as small as 10% (frappe 10%: 0.0171 below "
        "uniform)",
    ),
    "policy_batch": Param(
        32, "int", "architectures sampled per policy update", 1, extension="not given"
    ),
    "policy_lr": Param(
        0.2,
        "float",
        "Adam learning rate of the policy's logits",
        0.0,
        open_low=True,
        extension="not given",
    ),
    "baseline_decay": Param(
        0.9,
        "float",
        "decay of the moving-average reward baseline (advantage='moving')",
        0.0,
        1.0,
        extension="REINFORCE with a moving-average baseline replaces the paper's A3C",
    ),
    "entropy": Param(0.0, "float", "weight of an entropy bonus on the policy", 0.0),
    "advantage": Param(
        "batch",
        "choice",
        "each sample's advantage: reward minus the mean of the batch's other samples, divided "
        "by the batch's spread ('batch'), or minus the moving-average baseline ('moving')",
        choices=("batch", "moving"),
        extension="the paper's A3C critic; 'batch' gave larger planted margins than 'moving'",
    ),
    "reward_metric": Param(
        "logloss",
        "choice",
        "the reward's quality: minus the validation log loss ('logloss') or the AUC ('auc')",
        choices=("logloss", "auc"),
        extension="the AUC is the paper's ranking metric; the log loss is smoother on a "
        "small validation split and gave larger planted margins",
    ),
    "cost_weight": Param(
        1.0, "float", "lambda of the memory cost lambda * max(0, bytes/budget - 1)", 0.0
    ),
    "search_updates": Param(
        100,
        "int",
        "policy updates per budget on the trained supernet (the ask/tell loop)",
        0,
        extension="policy updates after the supernet is trained: embsearch's (100: with the "
        "full warm-up, every update the policy gets)",
    ),
    "val_rows": Param(
        1024,
        "int",
        "rows of the fixed validation subsample rewards are measured on (None: whole split)",
        1,
        optional=True,
        extension="a validation subsample: embsearch's",
    ),
    "fill": Param(
        True,
        "bool",
        "spend the bytes the most likely architecture leaves: upgrade the (field, group)s "
        "whose larger options the policy rates most likely, while the budget allows",
        extension="a budget fill: the policy learns on inherited weights, where more blocks "
        "seldom pay before retraining",
    ),
    "search_backbone": SEARCH_BACKBONE,
}
