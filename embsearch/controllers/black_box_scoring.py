"""How a black-box trial is scored (issue 22 item 1), here or in a worker (item 5).

- ``scoring="supernet"``: the validation AUC of the candidate's sub-network with the
  inherited weights of one weight-sharing supernet
  (:class:`~embsearch.evaluator.InheritedWeightEvaluator`; the supernet is built by
  :func:`make_supernet`, trained once per search by the controller and saved as
  ``RUN_DIR/supernet.pt``);
- ``scoring="scratch"``: the candidate's plan trained from scratch (:class:`ScratchEvaluator`:
  a fresh model seeded with the run's seed, ``trial_epochs`` epochs with the recipe's early
  stopping), scored by its best validation AUC: the issue's "trained from scratch", the
  costliest and least biased score (no weight sharing).

A trial can run away from the search's process (``--executor local`` or ``ray``,
:mod:`embsearch.executors`) because both scorings can be rebuilt from files: the recipe
(:func:`trial_recipe`) names the scoring and, for ``supernet``, the saved checkpoint, and
:func:`remote_evaluator` rebuilds the evaluator in the worker from the run's options.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from embsearch.backbones import CTRModel
from embsearch.context import SearchContext
from embsearch.controllers.base import AskTellController
from embsearch.controllers.block_proxy import BlockProxyEvaluator
from embsearch.controllers.weight_sharing import load_trained, supernet_recipe
from embsearch.embeddings.supernets import MaskedSupernet
from embsearch.evaluator import Evaluator, InheritedWeightEvaluator
from embsearch.search_spaces.base import Candidate, SearchSpace
from embsearch.search_spaces.composed import ComposedSpace


class ScratchEvaluator:
    """Validation AUC of a candidate's plan trained from scratch (``scoring="scratch"``).

    Each call builds the plan's model afresh (seeded with the run's seed, so a candidate's
    score does not depend on when or where it runs), trains it for at most ``epochs``
    epochs with early stopping on validation AUC, and returns the best validation AUC;
    ``last_metrics`` holds its log loss, the epochs run and the training seconds."""

    name = "scratch"

    def __init__(self, ctx: SearchContext, space: SearchSpace, controller: str, epochs: int):
        self.ctx = replace(ctx, train=replace(ctx.train, epochs=int(epochs), progress=False))
        self.space, self.controller = space, controller
        self.last_metrics: dict[str, float] = {}

    def __call__(self, candidate: Candidate) -> float:
        plan = self.space.to_plan(candidate, self.controller, self.space.bytes_of(candidate))
        _, result = self.ctx.train_plan(plan, desc=f"{self.controller} trial")
        self.last_metrics = {
            "logloss": float(result.val_logloss),
            "epochs_run": float(result.epochs_run),
            "train_seconds": float(result.seconds),
        }
        return float(result.val_auc)


def make_supernet(ctrl: AskTellController, ctx: SearchContext, space: SearchSpace) -> CTRModel:
    """The weight-sharing supernet of ``scoring="supernet"`` (untrained, seeded): the masked
    max-width table, drawing dims as ``sampling`` says, before the search backbone."""
    emb = MaskedSupernet(
        space.width,
        space.dim_choices,  # a composed space's dims (its kinds and precisions: the proxy)
        space.groups,
        space.schema.names,
        seed=ctx.seed,
        sampling=str(ctrl.config["sampling"]),
    )
    return CTRModel(emb, ctrl.supernet_context(ctx).make_backbone())


def trial_epochs(ctrl: AskTellController, ctx: SearchContext) -> int:
    """A ``scratch`` trial's epochs: ``trial_epochs``, else the run's ``--epochs``."""
    return int(ctrl.config["trial_epochs"] or ctx.train.epochs)


def trial_recipe(ctrl: AskTellController, ctx: SearchContext) -> dict[str, Any] | None:
    """What a worker needs beyond the run's options to score this search's trials (``None``:
    they cannot leave this process, e.g. a supernet with no run directory to save it in)."""
    if ctrl.config["scoring"] == "scratch":
        return {"scoring": "scratch"}
    recipe = supernet_recipe(ctx)
    return None if recipe is None else {"scoring": "supernet", **recipe}


def remote_evaluator(
    ctrl: AskTellController, ctx: SearchContext, recipe: dict[str, Any]
) -> Evaluator:
    """The evaluator of :func:`trial_recipe`'s ``recipe``, rebuilt in a worker from the run's
    options (``ctx``) and files."""
    space = ctrl.search_space(ctx)
    if recipe["scoring"] == "scratch":
        return ScratchEvaluator(ctx, space, ctrl.name, trial_epochs(ctrl, ctx))
    build = lambda: make_supernet(ctrl, ctx, space)  # noqa: E731
    model = load_trained(recipe, build, ctx.device, who=f"{ctrl.name} trial")
    return inherited_evaluator(ctrl, ctx, space, model)


def inherited_evaluator(
    ctrl: AskTellController, ctx: SearchContext, space: SearchSpace, model: CTRModel
) -> Evaluator:
    """``scoring="supernet"``'s evaluator of a trained supernet: its sub-networks'
    validation AUC (:class:`InheritedWeightEvaluator`) or, in a composed space, the block
    proxy's (:class:`~embsearch.controllers.block_proxy.BlockProxyEvaluator`: the supernet's
    rows fitted to each block's kind and precision)."""
    val, batch = ctx.data.split("val"), ctx.train.eval_batch_size
    rows = ctrl.config["val_rows"]
    if isinstance(space, ComposedSpace):
        return BlockProxyEvaluator(model, space, val, batch, max_rows=rows)
    return InheritedWeightEvaluator(model, val, batch, max_rows=rows)
