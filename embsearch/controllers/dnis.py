"""DNIS: Cheng, Shen and Huang, "Differentiable Neural Input Search for Recommender
Systems" (arXiv:2006.04466, 2020), in the ``feature_dims`` space.

Steps:
1. ids grouped by frequency (the space's groups); every id keeps a width-wide embedding,
   zero-padded rather than projected (plans default to ``projection='pad'``);
2. the soft selection layer: a mask in [0, 1]^width per (field, group) scales the
   embeddings (:class:`~embsearch.embeddings.supernets.DNISSupernet`);
3. DARTS-style training: weight steps on training batches alternate with mask steps on
   validation batches, the mask's loss adding ``l1 * mean |m|``; the mask is clipped into
   [0, 1] after each step. As in the official code, the mask's optimiser is plain SGD on
   its gradient divided, per (field, group), by its mean absolute value
   (:class:`NormalisedSGD`, ``optimizer='sgd'``), after a warm start (``warm_start=1``
   epoch of weight steps only). The first version used Adam from the first step
   (``optimizer='adam', warm_start=0``): there the L1 term closed 51-56% of the mask
   entries exactly (clipped at 0) within the search, against 29-33% with the official
   optimiser; the retrained plans' test AUC over uniform on the synthetic data (seeds
   0/1/2, 10/25/50%, 5 epochs) averages +0.0121/+0.0122/+0.0076 with it and
   +0.0105/+0.0132/+0.0078 with Adam (the 10% gap is one Adam seed at +0.0033), and the
   planted test's informative/noise mask ratio is 5.04/3.68/2.56 against 6.20/2.39/1.61;
4. magnitude pruning of the masked weights ``m * e`` (not exactly zero after the search,
   so DNIS prunes them by magnitude): a group keeping ``d`` dims keeps the ``d`` columns of
   largest mean ``|m * e|`` over its ids, and the value of dim ``d`` is the group's ids
   times the ``sum`` over them of ``(magnitude - threshold)`` (the magnitude the kept
   weights hold), so that the per-group argmax (``discretise='argmax'``) is the paper's
   threshold pruning and the knapsack is that pruning under a byte budget (columns under
   the threshold are never worth keeping). Ranking by the mask alone was tried first: an
   embedding can grow to undo a small mask, and on frappe it starved the user field.
   Under a budget (``discretise='knapsack'``), columns whose mask the L1 term closed
   exactly (kept magnitude 0, so no value) still fill what the pruning leaves unspent,
   the groups of most frequent ids first (MDE's rule; :func:`fill_by_frequency`): the
   plan is retrained from scratch, where those columns are capacity, not closed masks.
   Without it DNIS's 50% plans on synthetic-wide used 16-24% of their budget;
5. the plan is retrained from scratch by the search runner. The exported pad table keeps
   each block's first ``d`` columns: the retrained table learns its own, so no
   permutation is needed; ``DNISSupernet.export`` reorders the kept columns when the
   searched weights themselves are wanted.

Plans retrain zero-padded, the paper's structure; ``projection='linear'`` retrains them behind
learned projections instead (converged: better on frappe, worse on the planted synthetic
data, whose dim-1 fields lose under a projection; `git show 964ade3:BENCHMARKS.md`, before the recipe).

``plan.extra['mask']`` holds each group's learned mask.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from embsearch.context import SearchContext
from embsearch.controllers.base import SEARCH_BACKBONE
from embsearch.controllers.differentiable import COMMON_SPECS, DartsController
from embsearch.controllers.param_spec import Param
from embsearch.embeddings.supernets import DNISSupernet
from embsearch.search_spaces.base import SearchSpace


class DNIS(DartsController):
    name = "dnis"
    paper = (
        "Weiyu Cheng, Yanyan Shen, Linpeng Huang. Differentiable Neural Input Search for Recommender "
        "Systems. arXiv:2006.04466 (CoRR abs/2006.04466), 2020"
    )
    default_space = "feature_dims"
    supported_spaces = ("feature_dims", "field_dims")
    param_specs: ClassVar[dict[str, Param]] = {
        **COMMON_SPECS,
        "l1": Param(0.01, "float", "weight of the mask's L1 sparsity penalty (mean |m|)", 0, 100),
        "mask_init": Param(
            0.5, "float", "initial value of every mask entry", 0.0, 1.0, open_low=True
        ),
        "threshold": Param(
            0.0,
            "float",
            "columns of mean |m * e| at or below this are pruned whatever the budget",
            0.0,
            1.0,
        ),
        "projection": Param(
            "pad",
            "choice",
            "plans' projection: 'pad' (DNIS's structure) or 'linear'",
            choices=("pad", "linear"),
            extension="'linear' retrains behind projections; DNIS pads",
        ),
        "optimizer": Param(
            "sgd",
            "choice",
            "the mask's optimiser: 'sgd' (the official code's: plain SGD at arch_lr on the "
            "gradient divided, per (field, group), by its mean absolute value) or 'adam'",
            choices=("sgd", "adam"),
            extension="'adam' is embsearch's first optimiser, kept for comparison",
        ),
        "warm_start": Param(
            1, "int", "epochs of weight steps before the first mask step", 0, 1_000
        ),
        "search_backbone": replace(
            SEARCH_BACKBONE,
            default={"batch_norm": False},
            extension="the supernet's MLP trains without batch norm: the mask's magnitudes are "
            "DNIS's signal, and batch norm undoes any scaling of the MLP's inputs, so every "
            "field's mask shrank alike under the L1 (planted data: 0.48 vs 0.41); plans keep it",
        ),
    }

    def search_space(self, ctx: SearchContext) -> SearchSpace:
        """Step 1: the context's space with the plan projection set to ``projection``."""
        return ctx.space.with_projection(str(self.config["projection"]))

    def build_supernet(self, ctx: SearchContext, space: SearchSpace) -> nn.Module:
        """Steps 1-2."""
        return DNISSupernet(space.groups, space.width, float(self.config["mask_init"]))

    def penalty(self, supernet: nn.Module) -> Callable[[], torch.Tensor] | None:
        """Step 3: the mask's L1 sparsity term."""
        l1 = float(self.config["l1"])
        return (lambda: l1 * supernet.penalty()) if l1 > 0 else None

    def after_arch(self, supernet: nn.Module) -> Callable[[], None]:
        return supernet.clip_

    def arch_optimizer(self) -> Callable[[list[nn.Parameter]], torch.optim.Optimizer] | None:
        """Step 3's optimiser: :class:`NormalisedSGD` at ``arch_lr`` (``optimizer='sgd'``)."""
        if self.config["optimizer"] == "adam":
            return None
        lr = float(self.config["arch_lr"])
        return lambda params: NormalisedSGD(params, lr=lr)

    def warm_steps(self, ctx: SearchContext) -> int:
        """Step 3's warm start: ``warm_start`` epochs of weight steps before any mask step."""
        rows = len(ctx.dataset.split("train"))
        return int(self.config["warm_start"]) * -(-rows // int(ctx.train.batch_size))

    def preference(self, supernet: nn.Module, space: SearchSpace) -> list[np.ndarray]:
        """Step 4: ``value[g, k]`` = ids of g times the sum of its ``d_k`` largest
        ``mean |m * e| - threshold``."""
        value = supernet.kept_mass(space.candidates, float(self.config["threshold"]))
        if self.config["discretise"] == "argmax":
            return value
        return fill_by_frequency(value, space)

    null_signal: ClassVar[str] = "zero learned value (every masked magnitude 0)"

    def null_preference(self, space: SearchSpace) -> list[np.ndarray]:
        """Step 4's value with every mean ``|m * e|`` zero (:attr:`null_signal`): ids of g
        times ``-threshold * d_k``, then the same frequency fill under a budget."""
        t, dims = float(self.config["threshold"]), np.asarray(space.candidates, dtype=np.float64)
        value = [
            np.array([(b - a) * -t * dims for a, b in groups]).reshape(len(groups), len(dims))
            for groups in space.groups
        ]
        if self.config["discretise"] == "argmax":
            return value
        return fill_by_frequency(value, space)

    def describe(self, supernet: nn.Module, space: SearchSpace) -> dict[str, Any]:
        return {
            "mask": {
                n: np.round(m, 6).tolist() for n, m in zip(space.schema.names, supernet.masks())
            },
            "preference_kind": "kept magnitude: ids x sum of the d largest mean |m * e| - threshold",
        }


def fill_by_frequency(value: list[np.ndarray], space: SearchSpace) -> list[np.ndarray]:
    """Step 4 under a budget: ``value`` plus, for each (field, group), a tie-breaker growing
    with its dim in proportion to the training occurrences of its ids.

    The tie-breaker's whole sum over the table stays a thousandth of the smallest non-zero
    step of ``value`` between two candidates, so it outweighs no single kept column (nor a
    pruned one's negative value when ``threshold > 0``): it decides between plans whose
    kept magnitudes (almost) tie, toward the one spending more of the budget on frequent
    ids. Per byte it is worth the mean training count of a group's ids.
    """
    steps = np.concatenate([np.abs(np.diff(v, axis=1)).ravel() for v in value])
    steps = steps[steps > 0]
    unit = 1e-3 * (float(steps.min()) if steps.size else 1.0)
    total = max(1, space.num_fields)
    dims = np.asarray(space.candidates, dtype=np.float64) / max(max(space.candidates), 1)
    out = []
    for f, v in enumerate(value):
        counts = space.schema.fields[f].frequencies().astype(np.float64)
        occurrences = np.array([counts[a:b].sum() for a, b in space.groups[f]])
        share = occurrences / max(occurrences.sum(), 1.0)  # sums to 1 over the field
        out.append(v + unit / total * share[:, None] * dims[None, :])
    return out


class NormalisedSGD(torch.optim.Optimizer):
    """DNIS's mask optimiser, as its official code trains the mask: plain SGD on the gradient
    divided, row by row (the last axis: one (field, group)'s mask over the width), by its
    mean absolute value, so every row moves by about ``lr`` per step whatever the frequency
    of its ids (rows whose gradient is all zero stay put)."""

    def __init__(self, params: Any, lr: float) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                scale = g.abs().mean(dim=-1, keepdim=True).add_(1e-8)
                p.sub_(g / scale, alpha=group["lr"])
        return loss
