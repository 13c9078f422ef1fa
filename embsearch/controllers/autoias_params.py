"""AutoIAS's parameters (:mod:`.autoias`), each with its default, range, help and, where it
is not the paper's, the reason (``embsearch controllers autoias`` prints them)."""

from __future__ import annotations

from embsearch.controllers.base import SEARCH_BACKBONE
from embsearch.controllers.param_spec import Param

AUTOIAS_SPECS: dict[str, Param] = {
    "mlp_layers": Param(
        2,
        "int",
        "hidden layers of the searched MLP (each layer's width is searched)",
        1,
        6,
        extension="the paper also searches the depth; embsearch fixes it (the recipe's two)",
    ),
    "mlp_width": Param(
        256,
        "int",
        "the widest option of every hidden layer; the options are mlp_width / 2^k for "
        "k < mlp_width_options (256, 128, 64 by default)",
        1,
        extension="not given; the recipe's first layer",
    ),
    "mlp_width_options": Param(
        3, "int", "how many width options each hidden layer has (halving)", 1, 8
    ),
    "supernet_epochs": Param(None, "int", "supernet epochs (None: --epochs)", 1, optional=True),
    "supernet_patience": Param(
        1,
        "int",
        "validations without a better AUC of the whole supernet before its training stops "
        "(its best weights kept; None: the run's patience)",
        1,
        optional=True,
        extension="the supernet's weights only rank sub-architectures; one epoch less of a "
        "supernet epoch that costs about 5 DeepFM epochs (the run's patience is 2)",
    ),
    "kd_weight": Param(
        1.0,
        "float",
        "weight of the distillation term: each sampled sub-architecture's log loss against "
        "the whole supernet's predictions (the teacher, trained on the labels in the same step)",
        0.0,
        extension="the paper distils into the sub-architectures; the teacher (the supernet "
        "playing every op and the widest MLP, in-place) and the weight are embsearch's reading",
    ),
    "teacher_rows": Param(
        0.5,
        "float",
        "the share of each training batch the teacher (the whole supernet) is trained on and "
        "distils into the sub-architectures",
        0.0,
        1.0,
        open_low=True,
        extension="the teacher's pass cost as much as the student's (every op of every pair "
        "into a 1,380-input first layer on the 12-field synthetic data); on half the batch "
        "a supernet epoch costs about 5 DeepFM epochs instead of 6.1 (CPU time; 1.0: the "
        "whole batch)",
    ),
    "policy_batch": Param(
        16,
        "int",
        "architectures sampled per generator update",
        2,
        extension="not given; 16 halves the generator phase against 32 (which cost about two "
        "full trainings of the synthetic data); planted informative/noise 2.7-5.2 over "
        "seeds 0-2",
    ),
    "search_updates": Param(
        20, "int", "generator updates per budget on the trained supernet", 0, extension="not given"
    ),
    "policy_lr": Param(
        0.1,
        "float",
        "Adam learning rate of the generator's tables",
        0.0,
        open_low=True,
        extension="not given",
    ),
    "reward_metric": Param(
        "recalibrated",
        "choice",
        "the reward: minus the validation log loss after the best affine change of the "
        "logits on the scoring rows ('recalibrated', Platt scaling), minus the plain log loss "
        "('logloss') or the AUC ('auc')",
        choices=("recalibrated", "logloss", "auc"),
        extension="the paper's reward is the validation AUC; a log loss is smoother on a "
        "small validation subsample (planted informative/noise 2.0-3.0 over seeds 0-2, the "
        "AUC 1.2-2.9), recalibrated because inherited weights' calibration depends on the "
        "MLP width (batch norm's statistics mix every sub-architecture's): the plain log "
        "loss picked the narrowest MLP (64-64) on frappe, which retrained 0.009 below",
    ),
    "derive_samples": Param(
        16,
        "int",
        "the final architecture: the best by the reward on held-out validation rows of the "
        "generator's most likely architecture within the budget and this many draws (0: the "
        "most likely)",
        0,
        extension="ENAS's derivation (the best of draws scored with inherited weights; AutoIAS's "
        "own rule is not given): the most likely gave frappe 25% 0.0036 below it (seeds 0-2)",
    ),
    "val_rows": Param(
        2048,
        "int",
        "rows of the fixed, class-stratified validation subsample the reward is measured on "
        "(None: the whole split)",
        1,
        optional=True,
        extension="a validation subsample: embsearch's",
    ),
    "search_backbone": SEARCH_BACKBONE,
}
