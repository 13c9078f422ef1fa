"""ESAPN's parameters (:mod:`.esapn`), each with its default, range, help and, where it is not
the paper's, the reason (``embsearch controllers esapn`` prints them)."""

from __future__ import annotations

from embsearch.controllers.base import SEARCH_BACKBONE
from embsearch.controllers.param_spec import Param

ESAPN_SPECS: dict[str, Param] = {
    "batch_size": Param(
        500,
        "int",
        "rows per step of the pass (the policies decide once per batch for its ids)",
        1,
    ),
    "epochs": Param(
        1,
        "int",
        "passes over the shuffled train split without --stream (--stream: one pass in time order)",
        1,
        extension="the paper reads its stream once; shuffled passes are for data without a "
        "time order",
    ),
    "hidden": Param(
        32,
        "int",
        "hidden units of each field's policy network",
        1,
        extension="the paper's 512 with batch norm; a small tanh layer over a 16 x 6 state "
        "space costs less on a CPU",
    ),
    "buckets": Param(
        16,
        "int",
        "frequency buckets of the state: floor(log2(1 + count so far)), capped",
        1,
        64,
        extension="the paper embeds the raw frequency; log2 buckets share what rare "
        "frequencies learn",
    ),
    "policy_lr": Param(
        0.01,
        "float",
        "Adam learning rate of the policy networks",
        0.0,
        open_low=True,
        extension="the paper's 1e-4 on a summed loss over batches of 500; a mean loss here",
    ),
    "reward_base": Param(
        "paired",
        "choice",
        "what an id's loss now is compared with: the same rows' loss at its size before the "
        "growth ('paired'; a keep earns 0), the mean of its last last_losses losses "
        "('average', the paper's) or its last loss ('last')",
        choices=("paired", "average", "last"),
        extension="'paired' compares the sizes on the same rows, so the labels' noise "
        "cancels; the paper's baseline compares different rows",
    ),
    "decide_at": Param(
        "doubling",
        "choice",
        "when an id decides: each time its count so far reaches a power of two ('doubling') "
        "or at every batch it is in ('every', the paper's)",
        choices=("doubling", "every"),
        extension="a grown column trains until the id's next decision, which judges it: "
        "one step (the paper's) is too few to tell a useful column from a useless one",
    ),
    "pool": Param(
        True,
        "bool",
        "with reward_base 'paired', each growth earns the mean paired gain of the batch's "
        "growths of its field at its size, not its own",
        extension="one id's gain is measured on a row or two: pooling a field's growths "
        "cuts the reward's noise, at the cost of credit to the single id",
    ),
    "probe_every": Param(
        1,
        "int",
        "with reward_base 'paired', measure the growths' gains every this many batches "
        "(one forward more each time)",
        1,
        extension="2 halves the probe's cost, but on the planted data the informative/noise "
        "ratio fell to 0.9-1.3 (1.2-1.7 at 1)",
    ),
    "adapt_price": Param(
        True,
        "bool",
        "the price of a growth's bytes (starting at cost_weight) rises after a batch whose "
        "growths the budget refused and falls after one it did not",
        extension="a budget's dual price: the paper has no budget",
    ),
    "pace": Param(
        True,
        "bool",
        "release the budget's growth evenly over the pass's batches",
        extension="without a pace the first batches' ids take the whole budget before the "
        "policies have learned anything",
    ),
    "last_losses": Param(5, "int", "T: the losses the 'average' reward base keeps per id", 1),
    "cost_weight": Param(
        1.0,
        "float",
        "the growth's price: with reward_base 'paired', the (starting) multiple of the "
        "batch's mean gain per byte its bytes are charged at; otherwise lambda x its bytes "
        "in shares of the budget per id",
        0.0,
        extension="the paper has no budget in its reward",
    ),
    "advantage": Param(
        "field",
        "choice",
        "the advantage of a reward: minus its field's batch mean, over its spread ('field'), "
        "or the reward itself ('reward', the paper's)",
        choices=("field", "reward"),
        extension="the paper's baseline is the id's own past losses; over many fields the "
        "batch's mean per field removes the drift every id shares as the model learns",
    ),
    "fill": Param(
        True,
        "bool",
        "the plan's group dims follow the ids' mean sizes scaled to fill the budget "
        "(false: the nearest candidate to each group's mean size, cut to the budget)",
        extension="sizes grow only as ids appear: the pass alone left frappe's 25% budget "
        "half spent",
    ),
    "search_backbone": SEARCH_BACKBONE,
}
