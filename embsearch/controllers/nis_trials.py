"""NIS (:mod:`embsearch.controllers.nis`) beyond one process (issue 22 items 4 and 5).

- *Resume*: the supernet trains alternating with the policies (steps 3-5), so the policies
  (logits, Adam states, baselines, generators), the reward history and whether the
  warm-up has ended are the training hooks' state (:meth:`NISTrials.hook_state`): saved in
  every per-epoch checkpoint and with the trained supernet
  (:func:`~embsearch.controllers.weight_sharing.train_weight_sharing_supernet`). A resume
  continues the supernet after its last epoch with the policies as they were then, or
  loads the trained supernet with the policies as they were at its end; step 6 (ask/tell
  on the trained supernet) is then replayed through the run's storage
  (:class:`~embsearch.trial_store.LoopStudy`): each sample the killed run scored is served
  from there, so the policies take the same updates and go on where it stopped.
- *Executors*: step 6 scores samples with the trained supernet's fixed weights, so its
  trials run in workers (``--executor local|ray``), which rebuild :meth:`NISTrials.scorer`
  from the saved ``RUN_DIR/supernet.pt``; rewards are told in ask order and no sample of
  the next batch is drawn before the batch's update (:class:`~embsearch.controllers.
  rl_state.InOrder`), so the plan is the serial run's. Steps 3-5 stay in this process:
  their rewards come from a supernet whose weights change between policy updates.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from embsearch.backbones import CTRModel
from embsearch.context import SearchContext
from embsearch.controllers.rl_state import InOrder, PolicyStates
from embsearch.controllers.weight_sharing import SupernetTrials
from embsearch.embeddings.supernets import RuleSupernet
from embsearch.evaluator import InheritedWeightEvaluator, stratified_rows
from embsearch.search_loop import Trial
from embsearch.search_spaces.base import Candidate, SearchSpace


class QualityEvaluator(InheritedWeightEvaluator):
    """Inherited-weight scores whose value is the reward's quality: the AUC, or minus the log
    loss (``metric``); both are recorded."""

    def __init__(self, *args: Any, metric: str = "auc", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.metric = metric

    def __call__(self, candidate: Candidate) -> float:
        m = self.metrics(candidate)
        self.last_metrics = {"auc": m["auc"], "logloss": m["logloss"]}
        return m["auc"] if self.metric == "auc" else -m["logloss"]


class NISTrials(SupernetTrials):
    """NIS's hooks for resume and executors (mixed into :class:`~embsearch.controllers.nis.
    NIS`; ``self.config``, ``self.state`` and ``supernet_context`` are NIS's)."""

    remote_trials: ClassVar[bool] = True  # step 6's samples run on any executor
    config: Any
    state: Any
    supernet_context: Any
    search_space: Any

    def hook_state(self) -> PolicyStates:
        """Steps 3-5's state outside the supernet (see the module docstring)."""
        return PolicyStates(self.state, extra=("warm_over",))

    def build_supernet(self, ctx: SearchContext, space: SearchSpace) -> CTRModel:
        """Step 3's one-shot model, untrained: RULE's block supernet (each example its own
        selection) in front of the supernet's backbone."""
        emb = RuleSupernet(
            space.width,
            space.candidates,
            space.groups,
            space.schema.names,
            seed=ctx.seed,
            blocks=int(self.config["blocks"]),
            sampling="example",
        )
        return CTRModel(emb, self.supernet_context(ctx).make_backbone())

    def reward_rows(self, ctx: SearchContext) -> Any:
        """Step 4's fixed class-stratified validation rows (``val_rows``)."""
        y = ctx.data.split("val").y.cpu().numpy()
        return stratified_rows(y, min(int(self.config["val_rows"] or len(y)), len(y)))

    def scorer(self, ctx: SearchContext, model: nn.Module) -> QualityEvaluator:
        """Step 4's quality of a sample with ``model``'s weights, on :meth:`reward_rows`."""
        rows = self.state.rows if self.state.rows is not None else self.reward_rows(ctx)
        return QualityEvaluator(
            model,
            ctx.data.split("val"),
            ctx.train.eval_batch_size,
            rows=rows,
            metric=self.config["reward_metric"],
        )

    def ask_trial(self) -> Trial | None:
        """Step 6's next sample, or "nothing now" while a whole batch awaits its rewards."""
        if self.state.trials is None:
            batch = int(self.config["policy_batch"])
            self.state.trials = InOrder(self, lambda: len(self.state.asked) >= batch)  # type: ignore[arg-type]
        return self.state.trials.ask_trial()
