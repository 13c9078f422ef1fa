"""ESAPN: Liu, Zhao, Wang, Liu and Tang, "Automated Embedding Size Search in Deep Recommender
Systems" (SIGIR 2020).

Steps, as in the paper:

1. *Candidate sizes*: the space's candidates up to the width (the paper's 2, 4, 8, 16, 64,
   128); every id starts at the smallest and its size only grows, one candidate at a time.
2. *Policy networks* (:mod:`.esapn_policy`): one per field (the paper has one for users and
   one for items); an id's state is its frequency so far and its current size, the action
   *keep* or *enlarge*. The id's frequency is in its state, so the frequency groups of a
   field share its network.
3. *The recommendation model trains on the data stream* with each id at its current size:
   one max-width table, an id keeping the first ``d`` columns of its row
   (:class:`~embsearch.embeddings.supernets.GrowingSupernet`; the paper keeps a table per
   size and copies a transformed embedding into the larger one). With ``--stream`` the
   train split is read once in its recorded time order, unshuffled (the paper's setting);
   without it, ``epochs`` shuffled passes (said in the plan's notes).
4. *Per batch* (:mod:`.esapn_walk`): the policies decide for ids of the batch, the model
   takes its training step with the new sizes, and the decisions are rewarded by the
   model's loss change on the ids' next data. The paper's reward is
   ``R = mean(last T losses of the id) - loss now`` (``reward_base='average'``, T =
   ``last_losses`` = 5; ``'last'``: the last loss alone).
5. *Policy update*: REINFORCE on the batch's rewarded decisions.
6. *Final sizes*: each id's size when the pass ends.

Choices the paper leaves open, or that embsearch adds (one line each; the measurements on
NIS's planted fixture, tests/test_esapn.py, informative/noise dims per id over seeds):

- Budget: a growth that would take the ids' bytes over the budget is masked at sampling
  time (enlarge ruled out by a finite logit; no ``-inf`` reaches an update); a batch's
  growths are accepted in a random order while they fit, and ``pace`` releases the budget
  evenly over the pass (without it the first batches' ids took it all).
- The decision taken is the sampled one (the paper samples for its update and trains the
  model on the greedy choice); a grown id's new columns start at zero, so a growth changes
  nothing until they are trained, as the paper's copy of the transformed embedding.
- Default reward (``reward_base='paired'``): an enlarge earns the loss of the id's rows at
  its size before the growth minus their loss now, on the same rows (one more forward per
  batch), averaged over the batches until its next decision; a keep earns 0. The paper's
  reward compares different rows, whose labels' noise buried the size's effect (ratios
  1.01 and 0.95 on seeds 0-1, before the choices below).
- Decisions at each doubling of an id's count (``decide_at='doubling'``; the paper: every
  batch), so a grown column trains before it is judged; each growth earns the mean gain of
  the batch's growths in its field at its size (``pool``), less its bytes at a price in the
  batch's mean gain per byte that rises while the budget refuses growths and falls while it
  does not (``cost_weight``, ``adapt_price``). Ratios with these: 1.41, 1.68, 1.18 (seeds
  0-2), 1.10, 1.10, 1.29 (3-5); without pooling 0.8-2.0. On an Intel Sapphire Rapids the
  same code gave 1.25, 1.50, 1.02, 1.41, 0.82, 0.82 (seeds 0-5): noise. That fixture does not
  reward wider informative fields (trained at fixed dims: -0.006 to +0.003 validation AUC),
  so these choices rest on a signal the data lacks; see tests/test_esapn.py.
- Advantage (``advantage='field'``): each reward minus its field's batch mean, over the
  spread.
- Plan: the ``feature_dims`` space holds a dim per (field, frequency group), not per id.
  By default (``fill``) the groups' dims follow their ids' mean sizes scaled to the budget
  (an exact knapsack over ``rows x mean size x log2 dim``): sizes grow only as ids appear,
  and on frappe the pass left over half of a 25% budget unspent (test AUC 0.931-0.937
  against uniform's 0.946-0.954, seeds 0-2; with ``fill`` 0.935-0.946). ``fill=false``: each group at the candidate nearest its
  ids' mean size, projected by the same knapsack where that is over. The provenance says
  which.
- Null signal: the same batches' decisions from the untrained policies (no model, hence no
  rewards), through the same aggregation and knapsack.
- ``--resume`` (issue 22): finished passes kept, the pass in progress checkpointed
  (:mod:`.esapn_resume`); no ``--executor``: the pass has no trials to ship.

Cost (issue 23's target: a streaming pass at most 1.5x one plain epoch; benchmarks/results/
esapn/cost19): the paired probe is one more forward per batch (no backward), run after the
training forward with its dropout masks replayed and its read of the batch's rows reused
(:mod:`.esapn_probe`); the policies' table and every state's log-probabilities are
computed once per batch without a graph, sampled on numpy, and updated by an analytic
gradient through the kernels autograd runs (:mod:`.esapn_policy`); the walk's per-id
bookkeeping runs on numpy views of its tensors. Every shortcut is bit-identical: the same
pass records, plans, walk state and model weights as the code before it. A pass took 1.41x
a plain epoch in CPU time on frappe and 1.46-1.53x on synthetic (median 1.50), against
1.59-1.63x and 1.66-1.73x before this round (the same runs, a loaded 2-core box): the
floor is the probe (about 0.25 of an epoch: a forward's GEMMs, 70% of the training
forward's compute) plus 0.15-0.25 of small per-batch operations. Probing every 2nd batch
(``probe_every=2``) or updating every 2nd batch cut it but lost the planted signal
(informative/noise 0.88-1.26 over seeds 0-5 against 1.10-1.68).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from embsearch.backbones import CTRModel
from embsearch.budget import field_bytes
from embsearch.context import SearchContext
from embsearch.controllers._signal import PROVENANCE_KEY, SIGNAL_KEY, signal_record
from embsearch.controllers.base import Controller, SearchState
from embsearch.controllers.esapn_params import ESAPN_SPECS
from embsearch.controllers.esapn_policy import SizePolicy
from embsearch.controllers.esapn_resume import Passes, PassInProgress, restore_finished
from embsearch.controllers.esapn_walk import Walk, WalkSettings, walk
from embsearch.controllers.param_spec import Param
from embsearch.embeddings.supernets import GrowingSupernet
from embsearch.errors import ConfigError
from embsearch.plan import Plan
from embsearch.search_spaces.base import Candidate, SearchSpace
from embsearch.search_spaces.floor import check_fits
from embsearch.train.device import seed_everything
from embsearch.train.trainer import evaluate, make_adam


@dataclass
class ESAPNState(SearchState):
    """One search: per budget, the walk's final per-id sizes (``walks``), the untrained
    policies' seed state (``initial``, for the null signal) and each pass's record."""

    walks: dict[int, Walk] = field(default_factory=dict)
    initial: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    records: dict[int, dict[str, Any]] = field(default_factory=dict)
    passes: Passes | None = None  # finished passes and the one in progress (a resume's)


class ESAPN(Controller):
    name = "esapn"
    family = "rl"
    paper = (
        "Haochen Liu, Xiangyu Zhao, Chong Wang, Xiaobing Liu, Jiliang Tang. Automated "
        "Embedding Size Search in Deep Recommender Systems. SIGIR 2020"
    )
    default_space = "feature_dims"
    param_specs: ClassVar[dict[str, Param]] = ESAPN_SPECS
    state_class: ClassVar[type[SearchState]] = ESAPNState
    state: ESAPNState
    fixed_projection = "pad"
    streams = True
    # --executor local|ray refused with this reason (embsearch.executors.check_executor)
    in_process_reason = "it decides sizes while its model trains on the data: no trials to ship"
    null_signal = "untrained policy networks (the same pass's decisions, no model)"

    # -- steps 1-2 ------------------------------------------------------------------------------
    def search_space(self, ctx: SearchContext) -> SearchSpace:
        """Step 1: the space's candidates, as ``pad`` dims of one max-width table."""
        return ctx.space.with_projection("pad")

    def _row_costs(self, space: SearchSpace) -> torch.Tensor:
        """Bytes of one row at each candidate (``pad``: linear in the rows)."""
        return torch.tensor(
            [field_bytes([1], [c], space.width, "pad", space.precision) for c in space.candidates],
            dtype=torch.float64,
        )

    def _total_batches(self, ctx: SearchContext) -> int:
        size = int(self.config["batch_size"])
        return self._passes(ctx) * -(-len(ctx.dataset.split("train")) // size)

    def _settings(self, ctx: SearchContext) -> WalkSettings:
        cfg = self.config
        return WalkSettings(
            buckets=int(cfg["buckets"]),
            last_losses=int(cfg["last_losses"]),
            reward_base=str(cfg["reward_base"]),
            cost_weight=float(cfg["cost_weight"]),
            advantage=str(cfg["advantage"]),
            pace=bool(cfg["pace"]),
            decide_at=str(cfg["decide_at"]),
            adapt_price=bool(cfg["adapt_price"]),
            pool=bool(cfg["pool"]),
            probe_every=int(cfg["probe_every"]),
            batches=self._total_batches(ctx),
        )

    def _batches(self, ctx: SearchContext, epoch: int):  # noqa: ANN202 - an iterator of batches
        train = ctx.data.split("train")
        size = int(self.config["batch_size"])
        if ctx.stream:
            return train.batches(size, shuffle=False)
        g = torch.Generator().manual_seed(ctx.seed * 7919 + epoch)
        return train.batches(size, shuffle=True, generator=g)

    def _passes(self, ctx: SearchContext) -> int:
        return 1 if ctx.stream else int(self.config["epochs"])

    # -- steps 3-6 ------------------------------------------------------------------------------
    def _search_one(self, ctx: SearchContext, space: SearchSpace, budget: int, i: int) -> None:
        sctx = self.supernet_context(ctx)
        seed_everything(ctx.seed)
        start = space.candidates[0]
        emb = GrowingSupernet(
            space.width, space.candidates, space.groups, space.schema.names, start, seed=ctx.seed
        )
        model = CTRModel(emb, sctx.make_backbone()).to(ctx.device)
        policy = SizePolicy(
            space.num_fields,
            int(self.config["buckets"]),
            len(space.candidates),
            hidden=int(self.config["hidden"]),
            seed=ctx.seed * 1009 + i,
        )
        self.state.initial[budget] = copy.deepcopy(policy.state_dict())
        state = Walk(
            self._row_costs(space), float(budget), emb.field_of_row.cpu(), self._settings(ctx)
        )
        opt = make_adam(model.parameters(), ctx.train.lr, ctx.train.weight_decay)
        policy_opt = make_adam(policy.parameters(), float(self.config["policy_lr"]))
        progress = PassInProgress(
            self.state.passes, budget, model, policy, (opt, policy_opt), state, self._passes(ctx)
        )
        if progress.restore():
            ctx.log(f"esapn [budget {budget} B]: continuing its pass after {progress.seen} batches")
        values = torch.tensor(space.candidates, dtype=torch.long)
        t0, c0 = time.perf_counter(), time.process_time()
        model.train()
        batches = progress.seen  # a resumed pass's batches done before
        for epoch in range(progress.epoch, self._passes(ctx)):
            batches += walk(
                progress.batches(self._batches(ctx, epoch), epoch),
                state,
                policy,
                emb.offsets,
                values,
                model=model,
                opt=opt,
                policy_opt=policy_opt,
                extra_loss=sctx.penalty(),
            )
        seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
        model.eval()
        auc, ll = evaluate(model, ctx.data.split("val"), ctx.train.eval_batch_size)
        self.state.walks[budget] = state
        self.state.supernet = model
        self.state.records[budget] = {
            "stream": bool(ctx.stream),
            "passes": self._passes(ctx),
            "batches": batches,
            "seconds": round(seconds, 3),
            "cpu_seconds": round(cpu_seconds, 3),  # the process's: steadier on a shared box
            "val_auc": auc,
            "val_logloss": ll,
            "grown": state.grown,
            "refused_over_budget": state.refused,
            "policy_updates": state.updates,
            "bytes_of_ids": int(state.spent),
            "enlarge_probability": [
                [[round(float(p), 4) for p in row] for row in f]
                for f in policy.enlarge_probabilities()
            ],
        }
        ctx.record(event="esapn pass", controller=self.name, budget=budget, **{
            k: v for k, v in self.state.records[budget].items() if k != "enlarge_probability"
        })  # fmt: skip
        self.state.passes.finished(budget, state, self.state.records[budget], self.state.initial[budget])  # fmt: skip

    def search(self, ctx: SearchContext) -> Plan:
        return self.search_budgets(ctx.with_budget(ctx.budget))[0]

    def search_budgets(self, ctx: SearchContext) -> list[Plan]:
        """One pass per budget (the sizes grow under that budget), then its plan."""
        self.check_space(ctx)
        if ctx.stream and not ctx.dataset.schema.meta.get("order_by"):
            raise ConfigError(
                "--stream needs a dataset with a recorded time order; prepare it with "
                "`embsearch data prepare ... --order-by COLUMN`, or drop --stream"
            )
        self.new_state()
        self.state.space = space = self.search_space(ctx)
        rows = sum(f.cardinality for f in space.schema.fields)
        cost = self._row_costs(space)
        check_fits(
            min(ctx.budgets),
            int(cost[0]) * rows,
            what=f"table with every id at the smallest dim ({space.candidates[0]})",
            prefix="esapn: ",
        )
        plans = []
        self.state.passes = Passes(ctx)  # on a resume: the killed run's passes (esapn_resume)
        for i, budget in enumerate(ctx.budgets):
            if not restore_finished(self, ctx, budget):
                self._search_one(ctx, space, budget, i)
            plans.append(self.finish(ctx, budget))
        return plans

    # -- the plan -------------------------------------------------------------------------------
    def group_means(self, sizes: torch.Tensor) -> list[list[tuple[int, float]]]:
        """Per field, per group: its rows and its ids' mean dim (``sizes``: each table row's
        candidate index)."""
        space = self.state.space
        dims = np.asarray(space.candidates, dtype=np.float64)[sizes.numpy()]
        out, base = [], 0
        for spec, groups in zip(space.schema.fields, space.groups):
            out.append(
                [
                    (b - a, float(dims[base + a : base + b].mean()) if b > a else 0.0)
                    for a, b in groups
                ]
            )
            base += spec.cardinality
        return out

    def preferences(self, sizes: torch.Tensor) -> list[np.ndarray]:
        """Per field ``[groups, candidates]``. ``fill``: ``rows x mean dim x log2(dim)`` of
        each group, whose knapsack optimum gives each group a dim in proportion to its ids'
        mean (the continuous optimum of ``sum w log c`` under ``sum rows c <= budget`` is
        ``c ~ w / rows``); otherwise minus each dim's distance to the mean."""
        space = self.state.space
        values = np.asarray(space.candidates, dtype=np.float64)
        total = sum(f.cardinality for f in space.schema.fields) * space.width
        logs = np.where(values > 0, np.log2(np.maximum(values, 1.0)), -1e3)
        out = []
        for groups in self.group_means(sizes):
            if self.config["fill"]:
                out.append(np.array([rows * mean * logs / total for rows, mean in groups]))
            else:
                out.append(np.array([-np.abs(values - mean) / space.width for _, mean in groups]))
        return out

    def discretise(self, sizes: torch.Tensor, budget: int) -> tuple[Candidate, str]:
        """The plan's dims from the ids' sizes, within the budget, and how they were chosen:
        ``fill``: the exact knapsack over :meth:`preferences` (the learned sizes scaled to
        the budget); otherwise each group at the candidate nearest its ids' mean dim,
        projected onto the budget by the same knapsack where that is over."""
        space = self.state.space
        pref = self.preferences(sizes)
        if self.config["fill"]:
            how = "policy (the ids' mean sizes per group, scaled to the budget by the knapsack)"
            return space.best_under_budget(pref, budget), how
        nearest = space.argmax(pref)
        if space.bytes_of(nearest) <= budget:
            return nearest, "policy (each group at the candidate nearest its ids' mean dim)"
        best = space.best_under_budget(pref, budget)
        moved = sum(a != b for fa, fb in zip(best, nearest) for a, b in zip(fa, fb))
        return best, f"policy, projected onto the budget by the knapsack ({moved} group dims moved)"

    def null_candidate(self, ctx: SearchContext, budget: int) -> Candidate | None:
        """Steps 4 and 6 with the untrained policies: the same batches' decisions, no model."""
        space = self.state.space
        policy = SizePolicy(
            space.num_fields,
            int(self.config["buckets"]),
            len(space.candidates),
            hidden=int(self.config["hidden"]),
        )
        policy.load_state_dict(self.state.initial[budget])
        i = list(self.state.initial).index(budget)
        policy.generator.manual_seed(ctx.seed * 1009 + i)
        offsets = self.state.supernet.embedding.offsets
        state = Walk(
            self._row_costs(space),
            float(budget),
            self.state.supernet.embedding.field_of_row.cpu(),
            self._settings(ctx),
        )
        values = torch.tensor(space.candidates, dtype=torch.long)
        for epoch in range(self._passes(ctx)):
            walk(self._batches(ctx, epoch), state, policy, offsets, values)
        return self.discretise(state.size, budget)[0]

    def finish(self, ctx: SearchContext, budget: int) -> Plan:
        walk_state = self.state.walks[budget]
        best, how = self.discretise(walk_state.size, budget)
        record = self.state.records[budget]
        plan = self.make_plan(
            ctx,
            best,
            budget,
            self.state.space,
            extra={
                "pass": record,
                "dims_per_field_mean": self._field_means(walk_state.size),
                PROVENANCE_KEY: how,
                **self.search_backbone_record(),
            },
        )
        if not ctx.stream:
            plan.add_note(
                f"esapn ran {record['passes']} shuffled pass(es) over the train split, not the "
                "paper's stream: prepare the data with --order-by COLUMN and search with --stream"
            )
        plan.extra[SIGNAL_KEY] = signal_record(
            best, self.null_candidate(ctx, budget), self.null_signal
        )
        return plan

    def _field_means(self, sizes: torch.Tensor) -> dict[str, float]:
        space = self.state.space
        dims = np.asarray(space.candidates, dtype=np.float64)[sizes.numpy()]
        out, base = {}, 0
        for spec in space.schema.fields:
            out[spec.name] = round(float(dims[base : base + spec.cardinality].mean()), 3)
            base += spec.cardinality
        return out
