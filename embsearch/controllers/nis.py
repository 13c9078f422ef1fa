"""NIS: Joglekar et al., "Neural Input Search for Large Scale Recommendation Models"
(KDD 2020, arXiv:1907.04471).

Steps, as in the paper:

1. *Multi-size embedding* search space: each field's ids, sorted by frequency, fall into G
   groups (the ``feature_dims`` space's groups; ``--groups``), and the base dimension is cut
   into B blocks of ``width / B`` columns (``blocks``; RULE's ``block_space``). A (field,
   group) keeps its first ``k`` blocks (``pad`` projection), as the paper's Multi-size
   Embedding gives frequent ids more blocks than rare ones; ``k = 0`` drops the group's
   ids from the vocabulary (``vocabulary``: the paper searches the vocabulary size beside
   the dims), which also makes budgets under one block per group feasible.
2. *Controller*: a policy that picks, for every (field, group), how many blocks to keep
   (:class:`~embsearch.controllers.nis_policy.BlockPolicy`).
3. *One-shot model trained on the controller's samples*: the masked block supernet of RULE
   (``RuleSupernet``, plain blocks, no diversity term) takes each training example's
   selection from the policy (its ``outside_sampler`` hook), so sub-architectures inherit
   its weights; every ``policy_every`` weight steps the policy is updated (alternation).
   That is the paper's, ``warmup=0``. By default (``warmup=1``, an extension) the whole
   training is a warm-up: the supernet trains on the *untrained* policies' budget-masked
   samples (``warmup_draws='policy'``: each budget's feasible block counts, each training
   batch split among the budgets), and the policies learn in step 6 only, on a supernet
   that did not co-adapt to them. Why: trained on the learning policy's samples, the
   policy collapses (probabilities 0.97-0.99) onto architectures the supernet co-adapts
   to: frappe, 25%, seed 0, its plan scored above the uniform plan on inherited weights
   (val AUC 0.9407 against 0.9387) and below it once retrained (test 0.9546 against
   0.9575), having dropped an item group that holds a quarter of the field's occurrences.
   Frappe test AUC minus uniform, seeds 0-2, at 10% / 25% / 50%
   (benchmarks/results/nis/frappe_untrained_draws): these defaults +0.0010/+0.0023/-0.0074,
   +0.0035/-0.0000/+0.0002, +0.0041/-0.0069/-0.0023; the paper's alternation
   -0.0023/-0.0017/-0.0037, -0.0029/-0.0078/-0.0062, +0.0027/-0.0059/+0.0004; the
   supernet's own unmasked uniform draws (``warmup_draws='uniform'``, every block of every
   group, rarely a selection as small as 10%) -0.0344/-0.0091/-0.0078,
   +0.0017/-0.0050/+0.0013, +0.0030/-0.0005/+0.0002; half the steps of warm-up on those
   (then alternation) +0.0060/-0.0038/-0.0424, -0.0042/-0.0077/-0.0014,
   +0.0011/-0.0023/-0.0010. A supernet per budget (the paper runs one search per budget),
   trained on its learning policy's samples, was worse than one shared by 10/25/50%
   (frappe 25% alone, seeds 0-2: 0.9476/0.9586/0.9355 against 0.9546/0.9517/0.9524).
4. *Reward*: the quality of a sampled architecture with the supernet's current weights on
   a fixed class-stratified validation subsample (``val_rows``), minus the memory cost,
   zero within the budget and linear above it:
   ``R = Q - cost_weight * max(0, bytes / budget - 1)``. The paper's objective is quality
   under a memory budget, the cost counted in parameters (bytes here: the same ratio at one
   precision); the stored copies of the paper we could read (its abstract and introduction
   on arxiv-vanity and DeepAI, KDD 2020 slides on SlideShare, the survey in shared/seed)
   do not give the reward's formula, so the hinge is embsearch's reading. Every sample
   fits the budget (masked sampling), so the cost only reaches a sample the loop rejects.
   ``Q`` is minus the validation log loss (``reward_metric``, an extension; the AUC, the
   paper's ranking metric, is ``reward_metric='auc'``), smoother than the AUC of a few
   thousand rows: on the planted data it gave the larger margins.
5. *Policy update*: REINFORCE over ``policy_batch`` samples per step. The paper trains its
   controller with A3C (asynchronous workers, a learned value baseline); with one process
   and a one-step episode (a whole architecture is one action) the critic reduces to an
   estimate of the mean reward: by default (``advantage='batch'``, an extension) the mean
   of the same batch's other samples, the advantage divided by the batch's spread;
   ``advantage='moving'`` is the moving average of earlier rewards (``baseline_decay``).
6. After the supernet is trained, each budget's policy learns (keeps learning, with
   ``warmup < 1``) for ``search_updates`` updates on the trained supernet through the
   shared ask/tell loop (every sample recorded as an evaluation).
7. *Final plan*: the policy's most likely architecture within the budget (the exact
   knapsack over its log-probabilities), retrained from scratch by the runner;
   ``plan.extra`` records the policy's probabilities per (field, group), the best sampled
   architecture and its score, and the null-signal record (an untrained policy through the
   same knapsack).

``--resume`` and ``--executor`` (issue 22): :mod:`.nis_trials`.

Choices the paper leaves open (one line each):

- Budget: samples are masked at sampling time (``nis_policy``), so every sample fits; the
  cost term then only matters for a sample told ``-inf`` by the loop (over budget), whose
  quality is a constant prediction's (AUC 0.5, log loss ln 2): finite, no NaN. Measured
  and not kept (benchmarks/results/nis/frappe_prior_cost): the paper's unmasked samples
  paying the cost's ramp (frappe 25%, one budget, seeds 1-2: 0.9517/0.9562 against
  uniform's 0.9595/0.9586; planted 1.43/1.09/1.53), and a policy started on the uniform
  plan's block count (logit 2; frappe protocol minus uniform, seeds 0-2, 25%:
  -0.0048/-0.0103/-0.0016, the middle item group still dropped; planted seed 2: 1.08).
- Policy: independent per-(field, group) logits (no LSTM over the decisions), one policy
  per budget on one shared supernet; each training batch is split among the budgets'
  policies (untrained ones at the defaults: step 3).
- Supernet: each training example draws its own selection (RULE's measured reason: far
  less gradient noise than one per step).
- Defaults (``blocks=4``, ``vocabulary``, ``advantage='batch'``, ``reward_metric='logloss'``,
  ``policy_lr=0.2``; the warm-up: step 3): the best of the settings measured on the planted
  synthetic data (tests/test_nis.py, 40%, informative/noise dims per id on seeds 0-2):
  1.35/1.35/1.69 with the earlier defaults (moving baseline, AUC, 32 samples, no vocabulary
  option), 1.86/1.17/0.48 with the vocabulary option alone, 4.31/2.06/1.26 adding the batch
  advantage, 3.09/2.90/2.45 with all four; 128 samples on 512 validation rows gave 0.90-1.01
  (seeds 1-2), a warm-up of a quarter of the supernet's steps on masked samples and
  ``blocks=8`` did worse; half the steps on unmasked draws gave 2.82/11.8/4.14. With the
  paper's alternation (``warmup=0``, ``search_updates=20``) 2.24/13.14/4.72; the defaults
  (step 3) 2.21/3.01/2.13.
- Cost (``policy_batch=32``, ``val_rows=1024``, ``search_updates=100``): the policies'
  evaluations set it. With the alternation, scoring 64 samples on 2,048 rows at every
  weight step cost 36x one full training (frappe, seed 0, 10 epochs); ``policy_every=8``
  and 20 step-6 updates cost 3.3x there (AUC 0.9358/0.9452/0.9595 at 10/25/50% against
  0.8869/0.9457/0.9558), planted 2.24/13.14/4.72 (the earlier 3.09/2.70/2.46). Fewer
  rows (512) lost planted seed 2 (0.86-0.95); per-example rewards (each validation
  example under two sampled architectures) learned too little (0.66-1.9). The defaults:
  see benchmarks/results/nis/frappe_untrained_draws.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from embsearch.backbones import CTRModel
from embsearch.budget import field_bytes
from embsearch.context import SearchContext
from embsearch.controllers._signal import PROVENANCE_KEY, SIGNAL_KEY, signal_record
from embsearch.controllers.base import AskTellController, SearchState
from embsearch.controllers.nis_fill import fill
from embsearch.controllers.nis_params import NIS_SPECS
from embsearch.controllers.nis_policy import BlockPolicy
from embsearch.controllers.nis_trials import NISTrials, QualityEvaluator
from embsearch.controllers.param_spec import Param
from embsearch.controllers.rule import block_space
from embsearch.controllers.weight_sharing import train_weight_sharing_supernet
from embsearch.errors import ConfigError
from embsearch.evaluator import InheritedWeightEvaluator
from embsearch.plan import Plan
from embsearch.search_loop import LoopResult
from embsearch.search_spaces import constrain
from embsearch.search_spaces.base import Candidate, SearchSpace
from embsearch.search_spaces.floor import check_fits

# the quality part of the reward of a sample the loop did not score: a constant prediction's
UNSCORED = {"auc": 0.5, "logloss": -math.log(2.0)}


@dataclass
class NISState(SearchState):
    """NIS's search state, beyond :class:`SearchState`: one policy per budget
    (``policies``), the validation rows every reward is measured on (``rows``), each
    budget's mean reward per update (``history``), the supernet's quality ``scorer``, and
    the budget being searched: its ``budget``, ``policy``, the samples asked and the rewards
    told since the last update, and the updates ``left``; whether the warm-up has ended
    (``warm_over``; with the policies and history, the training hooks' state a resume puts
    back: :mod:`.nis_trials`)."""

    policies: dict[int, BlockPolicy] = field(default_factory=dict)
    rows: np.ndarray | None = None
    history: dict[int, list[float]] = field(default_factory=dict)
    scorer: InheritedWeightEvaluator | None = None
    budget: int = 0
    policy: BlockPolicy | None = None
    asked: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    told: list[float] = field(default_factory=list)
    left: int = 0
    drawn: tuple[torch.Tensor, torch.Tensor] | None = None
    next: int = 0
    costs: np.ndarray | None = None  # [slots, options] bytes (``_costs``)
    warm_over: bool = False


class NIS(NISTrials, AskTellController):
    name = "nis"
    family = "rl"
    paper = (
        "Manas R. Joglekar, Cong Li, Mei Chen, Taibai Xu, Xiaoming Wang, Jay K. Adams, Pranav "
        "Khaitan, Jiahui Liu, Quoc V. Le. Neural Input Search for Large Scale Recommendation "
        "Models. KDD 2020 (arXiv:1907.04471)"
    )
    default_space = "feature_dims"
    param_specs: ClassVar[dict[str, Param]] = NIS_SPECS
    state_class: ClassVar[type[SearchState]] = NISState
    state: NISState
    fixed_projection = "pad"
    null_signal = "an untrained policy (uniform over the block counts)"

    def check_options(
        self, *, width: int, candidates: Sequence[int] | None, projection: str | None = None
    ) -> None:
        """The dims are the multiples of ``width / blocks``; ``--candidates`` may only add 0."""
        super().check_options(width=width, candidates=candidates, projection=projection)
        self._check_blocks(width)
        if candidates is None:
            return
        step = width // int(self.config["blocks"])
        dims = {k * step for k in range(1, int(self.config["blocks"]) + 1)}
        if set(candidates) - {0} != dims:
            raise ConfigError(
                f"nis's dims are the multiples of width/blocks ({width}/{self.config['blocks']}); "
                f"--candidates can only add 0 to them: drop --candidates or pass "
                f"0,{','.join(str(d) for d in sorted(dims))}"
            )

    def _check_blocks(self, width: int) -> None:
        blocks = int(self.config["blocks"])
        if blocks > width or width % blocks:
            raise ConfigError(
                f"nis: blocks={blocks} must divide the width {width} (B blocks of width/B "
                f"columns); pick a divisor of {width}"
            )

    def _check_groups(self, ctx: SearchContext) -> None:
        """G must fit some field: a field with fewer ids than G gets fewer groups (the
        ``feature_dims`` space), but G above every field's ids is a mistake."""
        groups = int(getattr(ctx.space, "n_groups", 1))
        large = max(ctx.space.schema.fields, key=lambda f: f.cardinality)
        if groups > large.cardinality:
            raise ConfigError(
                f"nis: --groups {groups} is more than the {large.cardinality} ids of the "
                f"largest field {large.name!r}; use at most {large.cardinality} groups"
            )

    def search_space(self, ctx: SearchContext) -> SearchSpace:
        """Step 1: the block dims, and 0 (out of the vocabulary) with ``vocabulary``."""
        space = ctx.space
        if self.config["vocabulary"] and 0 not in space.candidates:
            space = space.with_candidates((0, *space.candidates))
        return block_space(space, int(self.config["blocks"]))

    # -- steps 1-5 ------------------------------------------------------------------------------
    def _costs(self, space: SearchSpace) -> np.ndarray:
        """``[slots, options]`` bytes of each (field, group) keeping each candidate dim
        (``inf`` where a ``--constraint`` rules the dim out: the policies never draw it)."""
        return constrain.mask_costs(
            space,
            np.array(
                [
                    [
                        field_bytes([b - a], [c], space.width, "pad", space.precision)
                        for c in space.candidates
                    ]
                    for groups in space.groups
                    for a, b in groups
                ],
                dtype=np.float64,
            ),
        )

    def to_candidate(self, choices: torch.Tensor) -> Candidate:
        """Option indices ``[slots]`` as dims per field and group."""
        dims = [self.state.space.candidates[int(i)] for i in choices]
        out, at = [], 0
        for groups in self.state.space.groups:
            out.append(tuple(dims[at : at + len(groups)]))
            at += len(groups)
        return tuple(out)

    def reward(self, cand: Candidate, auc: float, budget: int) -> float:
        """Step 4: ``auc - cost_weight * max(0, bytes / budget - 1)``, finite always."""
        over = max(0.0, self.state.space.bytes_of(cand) / max(budget, 1) - 1.0)
        quality = auc if math.isfinite(auc) else UNSCORED[self.config["reward_metric"]]
        return float(quality - float(self.config["cost_weight"]) * min(over, 1e6))

    def prepare(self, ctx: SearchContext, deadline: float | None) -> None:
        """Train the supernet on the policies' samples, alternating with policy updates."""
        self.check_space(ctx)
        self._check_blocks(ctx.space.width)
        self._check_groups(ctx)
        self.state.space = space = self.search_space(ctx)
        step = space.width // int(self.config["blocks"])
        check_fits(
            min(ctx.budgets),
            space.min_bytes(),
            what=f"block selection (one block of {step} columns per group)",
            prefix="nis: ",
            remedy=" or use finer blocks (a larger --param blocks), or let groups leave the "
            "vocabulary (--param vocabulary=true)",
        )
        self.state.costs = costs = self._costs(space)
        cfg = self.config
        self.state.policies = {
            b: BlockPolicy(
                costs,
                b,
                lr=cfg["policy_lr"],
                baseline_decay=cfg["baseline_decay"],
                entropy=cfg["entropy"],
                advantage=cfg["advantage"],
                seed=ctx.seed * 1009 + i,
            )
            for i, b in enumerate(ctx.budgets)
        }
        values = torch.tensor(space.candidates, dtype=torch.long)
        self.state.rows = self.reward_rows(ctx)
        self.state.history = {b: [] for b in ctx.budgets}

        def outside(n: int) -> torch.Tensor:  # step 3: each example's selection from a policy
            share = -(-n // len(self.state.policies))
            dims = [values[p.sample(share)[0]] for p in self.state.policies.values()]
            return torch.cat(dims)[:n]

        epochs = cfg["supernet_epochs"] or ctx.train.epochs
        per_epoch = -(-len(ctx.data.split("train")) // ctx.train.batch_size)
        warm = int(float(cfg["warmup"]) * per_epoch * epochs)

        def alternate(model: nn.Module, step_: int) -> None:  # steps 4-5 during training
            if step_ == warm:  # the warm-up ends: the policies draw the selections from now on
                model.embedding.outside_sampler, self.state.warm_over = outside, True
            if step_ <= warm or step_ % int(cfg["policy_every"]):
                return
            scorer = self.scorer(ctx, model)
            for b, policy in self.state.policies.items():
                drawn = policy.sample(int(cfg["policy_batch"]))
                cands = [self.to_candidate(c) for c in drawn[0]]
                rewards = [self.reward(c, scorer(c), b) for c in cands]
                self.state.history[b].append(policy.update([drawn], rewards)["reward"])
            model.train()

        sctx = self.supernet_context(ctx)

        def build() -> CTRModel:
            model = self.build_supernet(ctx, space)
            # the warm-up (``warmup_draws='uniform'``): the supernet's own unmasked uniform
            # draws, every block of every group trained; else the policies' samples
            uniform = warm > 0 and cfg["warmup_draws"] == "uniform" and not self.state.warm_over
            model.embedding.outside_sampler = None if uniform else outside
            return model

        self.state.supernet, summary = train_weight_sharing_supernet(
            sctx,
            build,
            epochs,
            deadline,
            desc="nis supernet",
            after_step=alternate,
            hook_state=self.hook_state(),
        )
        self.state.supernet.embedding.outside_sampler = None
        self.state.supernet_summary = summary
        ctx.record(event="supernet", controller=self.name, **summary)
        self.state.scorer = self.scorer(ctx, self.state.supernet)

    def evaluator(self, ctx: SearchContext, budget: int) -> QualityEvaluator:
        return self.state.scorer

    # -- step 6: the ask/tell loop --------------------------------------------------------------
    def start(self, ctx: SearchContext, budget: int) -> None:
        self.state.budget = budget
        self.state.policy = self.state.policies[budget]
        self.state.left = int(self.config["search_updates"])
        self.total = self.state.left * int(self.config["policy_batch"])
        self.state.asked, self.state.told = [], []
        self.state.drawn, self.state.next = None, 0

    def ask(self) -> Candidate:
        """The next of a batch of ``policy_batch`` samples drawn at once, in one slot order
        (as during the supernet's training): one masked walk per batch, not per sample."""
        st = self.state
        if st.drawn is None or st.next >= len(st.drawn[0]):
            st.drawn, st.next = st.policy.sample(int(self.config["policy_batch"])), 0
        choices, order = st.drawn
        st.asked.append((choices[st.next : st.next + 1], order))
        st.next += 1
        return self.to_candidate(choices[st.next - 1])

    def tell(self, candidate: Candidate, score: float) -> None:
        self.state.told.append(self.reward(candidate, score, self.state.budget))
        if len(self.state.told) >= int(self.config["policy_batch"]):
            n = len(self.state.told)
            stats = self.state.policy.update(_by_order(self.state.asked[:n]), self.state.told)
            self.state.history[self.state.budget].append(stats["reward"])
            self.state.asked, self.state.told = self.state.asked[n:], []
            self.state.left -= 1

    def done(self) -> bool:
        return self.state.left <= 0

    # -- step 7 ---------------------------------------------------------------------------------
    def discretise(self, log_probs: np.ndarray, budget: int) -> Candidate:
        """The most likely architecture within ``budget``: the exact knapsack over the
        per-(field, group) log-probabilities (a factorised policy's likelihood is their sum),
        then, with ``fill``, the bytes it leaves spent as :meth:`fill` says."""
        pref, at = [], 0
        for groups in self.state.space.groups:
            pref.append(log_probs[at : at + len(groups)])
            at += len(groups)
        best = self.state.space.best_under_budget(pref, budget)
        return self.fill(best, log_probs, budget) if self.config["fill"] else best

    def fill(self, cand: Candidate, log_probs: np.ndarray, budget: int) -> Candidate:
        """Spend what the most likely architecture leaves of ``budget`` (an extension; how:
        :func:`~embsearch.controllers.nis_fill.fill`). The policy learns on inherited weights,
        where more blocks seldom pay before retraining, so its most likely architecture can
        leave most of a budget unspent (talkingdata, 10%: 13% used)."""
        return fill(self.state.space, self.state.costs, cand, log_probs, budget)

    def null_candidate(self, ctx: SearchContext, budget: int) -> Candidate | None:
        """Step 7 on an untrained policy (uniform logits)."""
        policy = self.state.policies[budget]
        return self.discretise(np.full((policy.n_slots, policy.n_options), 0.0), budget)

    def preferences(self, policy: BlockPolicy) -> dict[str, Any]:
        """``plan.extra['policy']``: per field, per group, the probability of each dim."""
        probs, at, out = policy.probabilities(), 0, {}
        for name, groups in zip(self.state.space.schema.names, self.state.space.groups):
            out[name] = [[round(float(p), 4) for p in probs[at + g]] for g in range(len(groups))]
            at += len(groups)
        return {"dims": list(self.state.space.candidates), "probabilities": out}

    def finish(self, ctx: SearchContext, budget: int, result: LoopResult) -> Plan:
        policy = self.state.policies[budget]
        best = self.discretise(policy.log_probabilities(), budget)
        m = self.state.scorer.metrics(best)
        history = self.state.history[budget]
        plan = self.make_plan(
            ctx,
            best,
            budget,
            self.state.space,
            extra={
                "search": result.summary(),
                "interrupted": result.interrupted,
                "supernet": self.state.supernet_summary,
                "blocks": int(self.config["blocks"]),
                "policy": self.preferences(policy),
                "policy_updates": policy.updates,
                "mean_reward_first_last": [history[0], history[-1]] if history else None,
                PROVENANCE_KEY: "policy (most likely architecture within the budget"
                + (", filled by its preference)" if self.config["fill"] else ")"),
                "best_sample": None
                if result.best is None
                else {"dims": [list(d) for d in result.best], "score": result.best_score},
                "inherited_val_auc": m["auc"],
                "inherited_val_logloss": m["logloss"],
                **self.search_backbone_record(),
            },
        )
        if result.stop_reason == "done":
            plan.extra[SIGNAL_KEY] = signal_record(
                best, self.null_candidate(ctx, budget), self.null_signal
            )
        return plan


def _by_order(
    asked: Sequence[tuple[torch.Tensor, torch.Tensor]],
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Consecutive samples drawn in the same slot order, joined into one ``(choices, order)``
    batch (the policy's log-probabilities then take one walk per batch), in ask order."""
    out: list[tuple[torch.Tensor, torch.Tensor]] = []
    for choices, order in asked:
        if out and out[-1][1] is order:
            out[-1] = (torch.cat([out[-1][0], choices]), order)
        else:
            out.append((choices, order))
    return out
