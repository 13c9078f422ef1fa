"""AutoIAS: Zhikun Wei, Xin Wang and Wenwu Zhu, "AutoIAS: Automatic Integrated Architecture
Searcher for Click-Through Rate Prediction" (CIKM 2021, DOI 10.1145/3459637.3482234).

Steps, as in the paper:

1. *Integrated search space*: per field an embedding dim (the ``field_dims`` candidates,
   zero-padded to the width: ``pad``), per field pair an interaction function (``none``,
   inner product, Hadamard product, projected product; :mod:`embsearch.backbones.autoias`)
   and per MLP layer a width (``mlp_width`` and its halvings, ``mlp_width_options`` in
   all; ``mlp_layers`` layers). The byte budget holds the embedding table, as for every
   controller; the network after it is reported beside it (``backbone_bytes``).
2. *Supernet*: one max-width table (:class:`MaskedSupernet`, a dim keeps the leading
   columns) in front of :class:`AutoIASSupernet` (every op of every pair, the widest
   MLP); a sub-architecture inherits its weights by masks. Each training example plays its
   own sub-architecture, drawn from the (untrained, so uniform within the budget)
   generators of the search's budgets: one-shot training.
3. *Knowledge distillation*: in the same step the whole supernet (the teacher) is trained
   on the labels and each example's sub-architecture also fits the teacher's prediction
   (``kd_weight``; the trainer's ``batch_loss`` hook), so that sub-architectures rank as
   their standalone versions would.
4. *Architecture generator*, trained by policy gradient on the trained supernet: dims,
   then interactions given dims, then MLP widths layer by layer
   (:mod:`embsearch.controllers.autoias_policy`); the reward is the sampled architecture's
   validation quality with inherited weights on a fixed, class-stratified subsample
   (``val_rows``), by default minus the log loss after Platt scaling on those rows
   (``reward_metric``: inherited weights' calibration depends on the sub-architecture's MLP
   width, which the plain log loss then rewards; :func:`recalibrated_logloss`); REINFORCE with
   the batch advantage (``policy_batch`` samples, ``search_updates`` updates per budget).
5. *Final plan*: the generator's most likely architecture (the dims by the exact knapsack
   over their log-probabilities within the budget, then each pair's most likely op given
   those dims, then the most likely widths layer by layer) and ``derive_samples`` draws
   from the generator are scored on held-out validation rows; the best is the plan
   (ENAS's derivation, :mod:`~embsearch.controllers.autoias_derive`; an extension: the most
   likely alone retrained 0.0036 below it at frappe 25%, seeds 0-2); ``plan.extra["architecture"]``
   records the network (``{"interactions": {"i,j": op}, "mlp": [widths]}``), which the
   ``autoias`` backbone rebuilds in retrain, export and ``load_model``. The plan is
   retrained from scratch by the runner.

Budget (issue 23, item 4): dims are sampled masked (every sample fits); there is no memory
penalty in the reward, since no sample can exceed the budget.

Cost (issue 23: a search at most 4x one full training; ``benchmarks/autoias_cost.py``):
per-example sub-architectures make every student step a pass over all of the pairs'
products into a ``F*w + P*(w+2)``-input first layer (1,380 on the 12-field synthetic
data, DeepFM's 192). Kept from the paper: the one-shot supernet, per-example sampling and
the distillation every step. Extensions that cut the cost (each a parameter with its
reason): the teacher on half of each batch (``teacher_rows``), 16 generator samples per
update (``policy_batch``) and the supernet stopped at its first validation without a better
AUC (``supernet_patience``; its best weights kept). Search / one full training in CPU time,
synthetic (10 epochs), seeds 0-2: 3.99x, 3.74x, 3.94x with step 5's derivation (0.9 s of
about 29; 6.0x with teacher_rows 1, policy_batch 32 and the run's patience).

Resume (``--resume``, issue 22 item 4): the generators the supernet's examples are drawn from
are its training hooks' state, saved with every per-epoch checkpoint and with the trained
supernet (:func:`~embsearch.controllers.weight_sharing.train_weight_sharing_supernet`), and
step 4 saves them, with their rewards, after every update (``RUN_DIR/generator.pt``): a
killed search continues the supernet after its last epoch, or the generators after their
last update. Step 4 stays in this process (``--executor local|ray`` is refused): a sample's
score is one masked forward over cached embeddings, milliseconds, less than a round trip.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from embsearch.backbones import ARCHITECTURE_KEY, CTRModel, backbone_params, plan_backbone_params
from embsearch.backbones.autoias import OPS, AutoIASSupernet, architecture_record, field_pairs
from embsearch.backbones.params import MLP_PARAMS
from embsearch.budget import field_bytes
from embsearch.context import SearchContext
from embsearch.controllers._signal import PROVENANCE_KEY, SIGNAL_KEY, signal_record
from embsearch.controllers.autoias_derive import HELD_OUT, Arch, derive, held_out_rows, skip_reason
from embsearch.controllers.autoias_params import AUTOIAS_SPECS
from embsearch.controllers.autoias_policy import (
    ArchitecturePolicy,
    Architectures,
    recalibrated_logloss,
)
from embsearch.controllers.base import Controller, SearchState
from embsearch.controllers.param_spec import Param
from embsearch.controllers.rl_state import GENERATOR_NAME, PolicyStates, load_state, save_state
from embsearch.controllers.weight_sharing import train_weight_sharing_supernet
from embsearch.embeddings.supernets import MaskedSupernet
from embsearch.errors import ConfigError
from embsearch.evaluator import stratified_rows
from embsearch.plan import Plan
from embsearch.search_loop import deadline_of
from embsearch.search_spaces import constrain
from embsearch.search_spaces.base import Candidate, SearchSpace
from embsearch.search_spaces.floor import check_fits
from embsearch.train.metrics import roc_auc


@contextmanager
def small_forwards(device: torch.device) -> Iterator[None]:
    """Run the generator phase's many small inherited-weight forwards on one CPU thread
    (restored after): each is a few thousand rows, too small for intra-op threads to pay,
    and with them each operator waits on its threads; on a loaded 2-core box a score took
    258 ms on 2 threads against 20 ms on one (the conformance context)."""
    before = torch.get_num_threads()
    if device.type == "cpu" and before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@dataclass
class AutoIASState(SearchState):
    """AutoIAS's search state: one generator per budget, the reward's validation rows and
    their full-width embeddings (looked up once), each budget's mean reward per update."""

    policies: dict[int, ArchitecturePolicy] = field(default_factory=dict)
    x: torch.Tensor | None = None
    y: torch.Tensor | None = None
    rows: torch.Tensor | None = None  # full-width embeddings of x under the trained supernet
    held_rows: torch.Tensor | None = None  # the derivation's held-out rows' (autoias_derive)
    held_y: torch.Tensor | None = None
    held_skip: str | None = None  # why the derivation keeps the most likely (autoias_derive)
    history: dict[int, list[float]] = field(default_factory=dict)
    updates_run: dict[int, int] = field(default_factory=dict)


class AutoIAS(Controller):
    name = "autoias"
    family = "rl"
    paper = (
        "Zhikun Wei, Xin Wang, Wenwu Zhu. AutoIAS: Automatic Integrated Architecture Searcher "
        "for Click-Through Rate Prediction. CIKM 2021"
    )
    default_space = "field_dims"
    supported_spaces: ClassVar[tuple[str, ...]] = ("field_dims",)
    param_specs: ClassVar[dict[str, Param]] = AUTOIAS_SPECS
    state_class: ClassVar[type[SearchState]] = AutoIASState
    state: AutoIASState
    fixed_projection = "pad"
    null_signal = "an untrained architecture generator (uniform over every component)"
    in_process_reason = (  # --executor local|ray refused (embsearch.executors.check_executor)
        "its generator scores an architecture in milliseconds on embeddings cached here, less "
        "than a worker's round trip"
    )

    def validate(self) -> None:
        top, n = int(self.config["mlp_width"]), int(self.config["mlp_width_options"])
        if top >> (n - 1) < 1:
            raise ConfigError(
                f"autoias: mlp_width={top} cannot be halved {n - 1} times; give a larger "
                f"mlp_width or fewer mlp_width_options"
            )

    @property
    def mlp_widths(self) -> list[int]:
        """Each hidden layer's width options, ascending."""
        top, n = int(self.config["mlp_width"]), int(self.config["mlp_width_options"])
        return sorted({top >> k for k in range(n)})

    def check_space(self, ctx: SearchContext) -> None:
        """The ``field_dims`` space, and a run backbone that rebuilds the searched network
        (``--backbone autoias``), refused in one line before any work. (The search itself
        trains its own supernet whatever the run's backbone, as the conformance suite runs it.)"""
        super().check_space(ctx)
        plan_backbone_params(ctx.backbone, ctx.backbone_params, {"interactions": {}, "mlp": [1]})

    # -- step 1 ---------------------------------------------------------------------------------
    def search_space(self, ctx: SearchContext) -> SearchSpace:
        return ctx.space.with_projection("pad")

    def _costs(self, space: SearchSpace) -> np.ndarray:
        """``[fields, dims]`` bytes of each field at each candidate dim (``inf`` where a
        ``--constraint`` rules the dim out: the policy never draws it)."""
        return constrain.mask_costs(
            space,
            np.array(
                [
                    [
                        field_bytes([f.cardinality], [c], space.width, "pad", space.precision)
                        for c in space.candidates
                    ]
                    for f in space.schema.fields
                ],
                dtype=np.float64,
            ),
        )

    def _mlp_settings(self, ctx: SearchContext) -> dict[str, Any]:
        """The supernet MLP's activation, batch norm and dropout: the run's backbone's where
        it has them (``search_backbone`` applied), else the recipe's defaults."""
        params = backbone_params(ctx.backbone, ctx.backbone_params)
        keys = ("activation", "batch_norm", "dropout")
        return {k: params.get(k, MLP_PARAMS[k].default) for k in keys}

    def to_candidate(self, dims: list[int]) -> Candidate:
        return tuple((self.state.space.candidates[int(i)],) for i in dims)

    def architecture(self, ops: list[int], widths: list[int]) -> dict[str, Any]:
        """The JSON form of op indices per pair and width options per layer."""
        mlp = [self.mlp_widths[w] for w in widths]
        return architecture_record(ops, mlp, self.state.space.num_fields)

    def hook_state(self) -> PolicyStates:
        """The generators (tables, Adam states, random generators), their rewards and updates:
        what a resume puts back (issue 22 item 4; the module docstring)."""
        return PolicyStates(self.state, extra=("updates_run",))

    # -- steps 2-3 ------------------------------------------------------------------------------
    def _train_supernet(self, ctx: SearchContext, deadline: float | None) -> CTRModel:
        space, cfg = self.state.space, self.config
        values = torch.tensor(space.candidates, dtype=torch.long)
        mlp_values = torch.tensor(self.mlp_widths, dtype=torch.long)
        policies = list(self.state.policies.values())
        sctx = self.supernet_context(ctx)
        built: list[AutoIASSupernet] = []  # the supernet's backbone, built (seeded) by build()

        def outside(n: int) -> torch.Tensor:
            """Step 2: each example's sub-architecture, the examples split among budgets."""
            share = -(-n // len(policies))
            drawn = [p.sample(share) for p in policies]
            ops = torch.cat([a.ops for a in drawn])[:n]
            widths = mlp_values[torch.cat([a.widths for a in drawn])[:n]]
            built[0].sampled = (ops.to(ctx.device), widths.to(ctx.device))
            return values[torch.cat([a.dims for a in drawn])[:n]]

        def build() -> CTRModel:
            emb = MaskedSupernet(
                space.width, space.candidates, space.groups, space.schema.names, seed=ctx.seed
            )
            emb.outside_sampler = outside
            built[:] = [
                AutoIASSupernet(
                    space.num_fields,
                    space.width,
                    [max(self.mlp_widths)] * int(cfg["mlp_layers"]),
                    **self._mlp_settings(sctx),
                )
            ]
            return CTRModel(emb, built[0])

        kd, share = float(cfg["kd_weight"]), float(cfg["teacher_rows"])

        def distil(model: nn.Module, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor):  # noqa: ANN202
            """Step 3: the whole supernet learns the labels; each sub-architecture its output
            (both on the batch's first ``teacher_rows`` share: the batches are shuffled)."""
            if kd == 0:
                return logits.new_zeros(())
            n = max(1, math.ceil(share * len(x)))
            x, y, logits = x[:n], y[:n], logits[:n]
            teacher = model.backbone.play(model.embedding.lookup(x), None).float()
            soft = torch.sigmoid(teacher).detach()
            return F.binary_cross_entropy_with_logits(teacher, y) + kd * (
                F.binary_cross_entropy_with_logits(logits, soft)
            )

        epochs = cfg["supernet_epochs"] or ctx.train.epochs
        patience = cfg["supernet_patience"] or sctx.train.patience
        sctx = replace(sctx, train=replace(sctx.train, patience=int(patience)))
        cpu = time.process_time()
        model, summary = train_weight_sharing_supernet(
            sctx,
            build,
            epochs,
            deadline,
            desc="autoias supernet",
            batch_loss=distil,
            hook_state=self.hook_state(),  # the generators whose samples it trained on
        )
        summary["cpu_seconds"] = round(time.process_time() - cpu, 3)  # the process's
        model.embedding.outside_sampler = None
        self.state.supernet_summary = summary
        ctx.record(event="supernet", controller=self.name, **summary)
        return model

    # -- step 4 ---------------------------------------------------------------------------------
    @torch.no_grad()
    def score(
        self,
        dims: list[int],
        ops: list[int],
        widths: list[int],
        auc: bool = True,
        held: bool = False,
    ) -> dict[str, float]:
        """Validation AUC (unless not ``auc``) and log loss of one architecture with inherited
        weights, on the reward's rows (``held``: on the held-out rows of the derivation)."""
        model, st = self.state.supernet, self.state
        rows, y = (st.held_rows, st.held_y) if held else (st.rows, st.y)
        dim_values = torch.tensor([st.space.candidates[i] for i in dims], device=rows.device)
        e = rows * model.embedding.column_mask(dim_values)
        mlp = [self.mlp_widths[w] for w in widths]
        logits = model.backbone.play_fixed(e, ops, mlp).float()
        out = {"logloss": float(F.binary_cross_entropy_with_logits(logits, y))}
        if self.config["reward_metric"] == "recalibrated":
            out["recalibrated_logloss"] = recalibrated_logloss(logits, y)
        if auc:
            out["auc"] = roc_auc(y.cpu().numpy(), torch.sigmoid(logits).cpu().numpy())
        return out

    def reward(self, metrics: dict[str, float]) -> float:
        """The quality: minus the (recalibrated) log loss, or the AUC; a constant prediction's
        if not finite."""
        if self.config["reward_metric"] == "auc":
            q = metrics["auc"]
            return q if math.isfinite(q) else 0.5
        recalibrated = self.config["reward_metric"] == "recalibrated"
        q = -metrics["recalibrated_logloss" if recalibrated else "logloss"]
        return q if math.isfinite(q) else -math.log(2.0)

    def _learn(self, ctx: SearchContext, budget: int, deadline: float | None) -> None:
        policy, cfg = self.state.policies[budget], self.config
        history = self.state.history.setdefault(budget, [])
        for _ in range(int(cfg["search_updates"]) - policy.updates):  # a resume: those left
            if deadline is not None and time.perf_counter() > deadline:
                ctx.log("autoias: time limit reached; the plan is the generator's so far")
                break
            arch: Architectures = policy.sample(int(cfg["policy_batch"]))
            need_auc = cfg["reward_metric"] == "auc"
            rewards = [
                self.reward(self.score(*arch.row(i), auc=need_auc)) for i in range(len(arch))
            ]
            history.append(policy.update(arch, rewards)["reward"])
            best = int(np.argmax(rewards))
            ctx.record(
                event="generator_update",
                controller=self.name,
                budget=budget,
                mean_reward=history[-1],
                best_reward=rewards[best],
            )
            save_state(ctx, GENERATOR_NAME, self.hook_state())  # a resume goes on from here
        self.state.updates_run[budget] = policy.updates

    # -- the search -----------------------------------------------------------------------------
    def search(self, ctx: SearchContext) -> Plan:
        return self.search_budgets(ctx.with_budget(ctx.budget))[0]

    def search_budgets(self, ctx: SearchContext) -> list[Plan]:
        """Steps 1-5: one supernet for every budget, then each budget's generator."""
        super().check_space(ctx)
        self.new_state()
        deadline = deadline_of(ctx)
        self.state.space = space = self.search_space(ctx)
        check_fits(
            min(ctx.budgets),
            space.min_bytes(),
            what="table (every field at its smallest candidate dim)",
            prefix="autoias: ",
            remedy=" or add smaller dims (--candidates, 0 drops a field)",
        )
        costs, cfg = self._costs(space), self.config
        pairs = field_pairs(space.num_fields)
        self.state.policies = {
            b: ArchitecturePolicy(
                costs,
                b,
                pairs,
                len(OPS),
                int(cfg["mlp_layers"]),
                len(self.mlp_widths),
                lr=cfg["policy_lr"],
                seed=ctx.seed * 1009 + i,
            )
            for i, b in enumerate(ctx.budgets)
        }
        self.state.supernet = self._train_supernet(ctx, deadline)
        if load_state(ctx, GENERATOR_NAME, self.hook_state()):
            ctx.log("autoias: continuing the generators from their last saved update")
        val = ctx.data.split("val")
        y = val.y.cpu().numpy()
        n = min(int(cfg["val_rows"] or len(y)), len(y))
        first = stratified_rows(y, n)
        idx = torch.as_tensor(first, device=val.x.device)
        self.state.x, self.state.y = val.x[idx], val.y[idx].float()
        held_np = held_out_rows(y, first, HELD_OUT * n)
        held = torch.as_tensor(held_np, device=val.x.device)
        self.state.held_skip = skip_reason(y[held_np], n)
        with torch.no_grad():
            self.state.rows = self.state.supernet.embedding.lookup(self.state.x)
            if cfg["derive_samples"] and self.state.held_skip is None:  # else finish says why
                self.state.held_rows = self.state.supernet.embedding.lookup(val.x[held])
                self.state.held_y = val.y[held].float()
        plans = []
        with small_forwards(ctx.device):
            for budget in ctx.budgets:
                self._learn(ctx, budget, deadline)
                plans.append(self.finish(ctx, budget))
        return plans

    # -- step 5 ---------------------------------------------------------------------------------
    def discretise(
        self, policy: ArchitecturePolicy, budget: int, *, untrained: bool = False
    ) -> tuple[list[int], list[int], list[int]]:
        """The most likely architecture within ``budget``: dim options (knapsack over their
        log-probabilities), ops given them, widths layer by layer. ``untrained``: the same
        from a generator whose tables are all zero (the null signal)."""
        space = self.state.space
        log_probs = policy.dim_log_probs()
        if untrained:
            log_probs = np.zeros_like(log_probs)
        cand = space.best_under_budget([row[None, :] for row in log_probs], budget)
        dims = [space.candidates.index(d[0]) for d in cand]
        if untrained:
            return dims, [0] * len(policy.left), [0] * policy.layers
        return dims, policy.best_ops(dims), policy.best_widths()

    def null_candidate(self, ctx: SearchContext, budget: int) -> Candidate | None:
        dims, _, _ = self.discretise(self.state.policies[budget], budget, untrained=True)
        return self.to_candidate(dims)

    def finish(self, ctx: SearchContext, budget: int) -> Plan:
        policy, n = self.state.policies[budget], int(self.config["derive_samples"] or 0)
        dims, ops, widths = self.discretise(policy, budget)
        derivation = None
        if n and self.state.held_rows is None:  # the best on the reward's rows: their noise
            derivation = {"rule": self.state.held_skip}
        elif n:  # ENAS's derivation (autoias_derive): the best by the held-out rows' reward

            def held(a: Arch) -> float:
                auc = self.config["reward_metric"] == "auc"
                return self.reward(self.score(*a, auc=auc, held=True))

            (dims, ops, widths), derivation = derive(policy, (dims, ops, widths), n, held)
        cand = self.to_candidate(dims)
        arch = self.architecture(ops, widths)
        m = self.score(dims, ops, widths)
        history = self.state.history.get(budget, [])
        counts = {op: sum(1 for o in ops if OPS[o] == op) for op in OPS}
        plan = self.make_plan(
            ctx,
            cand,
            budget,
            self.state.space,
            extra={
                ARCHITECTURE_KEY: arch,
                "architecture_fields": list(self.state.space.schema.names),
                "interaction_counts": counts,
                "supernet": self.state.supernet_summary,
                "policy_updates": self.state.updates_run.get(budget, 0),
                "mean_reward_first_last": [history[0], history[-1]] if history else None,
                "dim_probabilities": {
                    name: [round(float(p), 4) for p in np.exp(row)]
                    for name, row in zip(self.state.space.schema.names, policy.dim_log_probs())
                },
                "inherited_val_auc": m["auc"],
                "inherited_val_logloss": m["logloss"],
                "derivation": derivation,
                PROVENANCE_KEY: "architecture generator (most likely architecture within the "
                "budget)",
                **self.search_backbone_record(),
            },
        )
        plan.extra[SIGNAL_KEY] = signal_record(
            cand, self.null_candidate(ctx, budget), self.null_signal
        )
        return plan
