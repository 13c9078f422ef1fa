"""RULE: Chen et al., "Learning Elastic Embeddings for Customizing On-Device Recommenders"
(KDD 2021).

Steps, as in the paper:

1. *Elastic embeddings*: each field's table is a G x B grid, G frequency groups (the
   ``feature_dims`` space; ``field_dims`` gives G = 1) by B blocks of ``width / B``
   columns. A candidate picks how many leading blocks each (field, group) keeps (a choice,
   below), so dims are multiples of ``width / B`` and sub-embeddings are zero-padded
   (``pad`` projection).
2. *Training once* (``embeddings/supernets/rule_supernet.py``), for every budget: each
   example samples a block count per (field, group), plus the block-diversity regulariser
   between the blocks of each group (weight ``diversity``).
3. *Performance estimator*: ``estimator_samples`` block selections near the budgets are
   scored with inherited weights on the validation split (recorded like every evaluation),
   and a ridge regression on the block counts is fitted to them (its held-out rank
   correlation is recorded).
4. *Evolutionary search* per budget with the estimator as the evaluator (:mod:`.evolutionary`:
   top-k, crossover between fields, mutation, children repaired onto the budget); the
   estimator scores a candidate in microseconds, so the evolution is larger than OptEmbed's
   (``population=40``, ``generations=20``; below).
5. *Serving without retraining*: the ``final_checks`` best candidates by the estimator are
   re-scored with inherited weights on the validation rows step 3 did not score (so a
   sample picked for its step-3 score does not win on the same noise again: the winner's
   curse); a safety check (below) is served over the evolution's best only when it
   validates better by more than ``final_margin`` standard errors of the paired AUC
   difference, so the estimator-guided evolution decides unless it is measurably wrong;
   ``plan.extra["provenance"]`` names the step whose candidate won ("evolution",
   "estimator sample", "uniform selection", "carried over from a smaller budget") and
   ``heldout_val_auc`` its score there. The best one's plan carries ``plan.weights`` (the
   ``state_dict`` of ``ctx.build_model(plan)`` filled from the supernet) and
   ``plan.metrics`` (its validation AUC / log loss), so the runner skips retraining. With
   ``retrain=True`` neither is attached (the inherited metrics go to ``plan.extra``) and
   the runner retrains as usual. Serving costs most where a selection has about one block
   per group: the first block is shared by selections of every size (with plain blocks,
   RULE's plan at 10% of the synthetic table served 0.005 AUC below the uniform table
   trained alone; ``scales``, below, halve that; `git show efc005f:BENCHMARKS.md`).

Choices the paper leaves open (one line each):

- Leading blocks: the paper composes an elastic embedding from "a set of embedding blocks"
  chosen by the search; a (field, group) here keeps its first ``k`` blocks, so a served
  selection is a plain zero-padded table whose columns sit where the shared backbone reads
  them (an arbitrary set would need a per-group column map in every exported table).
- ``scales=True``: switchable scales (``rule_supernet.py``): each block count of each
  (field, group) has its own learned per-column factors on the shared blocks, folded into
  the served table, as slimmable and once-for-all networks give each width its own small
  parameters; it halves the serving cost step 5 describes at synthetic 10%, costing
  0.001-0.002 at two level cells (`git show efc005f:BENCHMARKS.md`).
  ``False`` serves the paper's plain blocks.
- ``sampling='band'``: each training example draws its own block selection (not one per
  step: far less gradient noise; frappe, served, 0.0017-0.003 better at every budget), and
  draws it around a level uniform over the block counts (each (field, group) within a
  quarter of the counts of it), so selections of every size are trained: independent
  uniform counts almost never add up to a small budget's bytes
  (`git show efc005f:BENCHMARKS.md`). ``'example'`` draws every count independently,
  ``'step'`` one per batch.
- ``supernet_val='budgets'``: the supernet's early stopping and best-epoch restore judge an
  epoch by the mean validation AUC of the uniform block selections of the search's budgets
  (what it will serve), not by its full width: small selections peak epochs later than the
  full table (synthetic: epoch 13 vs 5); ``'full'`` judges the full width.
- ``val_rows=2048``: step 3 scores its samples on one fixed class-stratified subsample of the
  validation split (at most half of it; the estimator averages their noise out); step 5
  chooses on the other rows, and the served plan's metrics are the whole split's.
- ``patience=3``: the evolution stops after 3 generations without a better estimate.
- ``pooling=4``: the estimator's coefficient of a (field, group) is its field's shared one
  plus its own deviation, penalised 4x as much (partial pooling; ``rule_estimator.py``): a
  (field, group)'s coefficient alone is mostly the noise of the 1,000 rows its samples are
  scored on (planted fixture: fitted on either half of the split, they correlate 0.33),
  while a field's groups share its informativeness. ``0`` fits each (field, group) alone.
- ``population=40``, ``generations=20`` (OptEmbed's 20 and 10 score with inherited
  weights): at 20 x 10, on the planted fixture, most cells of the frequent groups (~75% of
  a field's lookups, ~12% of its bytes) kept the dims the random first generation drew, as
  a cell moves the estimate too little for 10 generations to select it; the served plan
  gave the informative fields 1.03-1.94x the noise fields' dims per lookup (seeds 0-4,
  default and AVX2 kernels). With both, 1.30-2.05x (1.12-2.05x on seeds 0-9), and the
  served selection's inherited test AUC over the uniform one +0.0024 on average, against
  +0.0013 (seeds 0-4, both kernels).
- Step 5 also re-scores the smaller budgets' served selections (so a larger budget never
  serves a worse one), the uniform block selection and the best *measured* estimator samples
  under the budget: the linear estimator extrapolates badly away from its samples and the
  evolution exploits that (on frappe it ranked the uniform selection, best by inherited AUC,
  far below its own picks), so the served plan is never worse than these by inherited AUC.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from torch import nn

from embsearch.backbones import CTRModel
from embsearch.context import SearchContext
from embsearch.controllers._signal import PROVENANCE_KEY, SIGNAL_KEY, signal_record
from embsearch.controllers.base import SearchState
from embsearch.controllers.evolution import uniform_selection
from embsearch.controllers.evolutionary import (
    EvolutionaryController,
    EvolutionState,
    paired_margin,
)
from embsearch.controllers.param_spec import Param
from embsearch.controllers.rule_estimator import EstimatorSampler, RidgeEstimator
from embsearch.controllers.rule_params import RULE_SPECS
from embsearch.controllers.weight_sharing import plan_weights, train_weight_sharing_supernet
from embsearch.embeddings.supernets import RuleSupernet
from embsearch.errors import ConfigError
from embsearch.evaluator import InheritedWeightEvaluator, disjoint_rows
from embsearch.plan import Plan
from embsearch.search_loop import LoopResult, run_loop
from embsearch.search_spaces.base import Candidate, SearchSpace
from embsearch.search_spaces.floor import check_fits


def block_space(space: SearchSpace, blocks: int) -> SearchSpace:
    """Step 1: ``space`` with dims ``k * width / blocks`` (k = 1..blocks; 0 too when the
    space allows dropping) and ``pad`` projection."""
    if space.width % blocks:
        raise ConfigError(
            f"rule: blocks={blocks} must divide the width {space.width}; pick a divisor"
        )
    step = space.width // blocks
    return space.with_projection("pad").with_candidates(
        ([0] if 0 in space.candidates else []) + [k * step for k in range(1, blocks + 1)]
    )


def served_validation(
    ctx: SearchContext, space: SearchSpace
) -> Callable[[nn.Module], tuple[float, float]]:
    """Step 2's validation (``supernet_val='budgets'``): an epoch's (AUC, log loss) are the
    means over the uniform block selections that fit the search's budgets, scored with the
    epoch's weights on the whole validation split."""
    picks = [uniform_selection(space, b) for b in ctx.budgets]
    picks = _dedupe([u for u in picks if u is not None])
    val, batch = ctx.data.split("val"), ctx.train.eval_batch_size

    def validate(model: nn.Module) -> tuple[float, float]:
        scores = InheritedWeightEvaluator(model, val, batch)  # looks the epoch's rows up
        ms = [scores.metrics(c) for c in picks]
        return float(np.mean([m["auc"] for m in ms])), float(np.mean([m["logloss"] for m in ms]))

    return validate


@dataclass
class RuleState(EvolutionState):
    """RULE's search state, beyond :class:`EvolutionState`: step 3's scores of the
    estimator samples (``memo``), the evaluators on the split's two disjoint halves
    (``inherited`` for step 3, ``heldout`` for step 5's choice) and the fitted estimator."""

    memo: dict[Candidate, float] = field(default_factory=dict)
    inherited: InheritedWeightEvaluator | None = None
    heldout: InheritedWeightEvaluator | None = None
    estimator: RidgeEstimator | None = None


class Rule(EvolutionaryController):
    name = "rule"
    family = "evolutionary"
    paper = (
        "Tong Chen, Hongzhi Yin, Yujia Zheng, Zi Huang, Yang Wang, Meng Wang. Learning Elastic "
        "Embeddings for Customizing On-Device Recommenders. Proceedings of the 27th ACM SIGKDD "
        "Conference on Knowledge Discovery and Data Mining (KDD) 2021 (arXiv:2106.02223)"
    )
    default_space = "feature_dims"
    param_specs: ClassVar[dict[str, Param]] = RULE_SPECS

    fixed_projection = "pad"  # served blocks are zero-padded sub-embeddings
    constraints_note = (
        "obeyed within its block space: a constraint that leaves a block none of the block "
        "dims (multiples of width / blocks) is refused in one line; pick blocks that reach it"
    )
    carry_picks = True  # a served plan must not score below a smaller budget's (step 5)
    remote_trials = True  # step 3's samples run on any executor (build_supernet, scorer)
    search_in_process = True  # step 4 scores with the estimator fitted here (microseconds)
    state_class: ClassVar[type[SearchState]] = RuleState
    state: RuleState
    null_signal = "a constant performance estimator (step 4 sees every selection alike)"

    def check_options(
        self, *, width: int, candidates: Sequence[int] | None, projection: str | None = None
    ) -> None:
        """Step 1's dims are every multiple of ``width / blocks``; ``--candidates`` can only add
        0 (dropping), so any other list would be silently replaced: refused (as is a
        projection other than ``pad``, by the base class)."""
        super().check_options(width=width, candidates=candidates, projection=projection)
        blocks = int(self.config["blocks"])
        if candidates is None or width % blocks:  # (block_space names a width blocks can't split)
            return
        dims = {k * (width // blocks) for k in range(1, blocks + 1)}
        if set(candidates) - {0} != dims:
            raise ConfigError(
                f"rule's dims are the multiples of width/blocks ({width}/{blocks}), set by "
                f"--param blocks=N; --candidates can only add 0 to them (to allow dropping): "
                f"drop --candidates or pass 0,{','.join(str(d) for d in sorted(dims))}"
            )

    def validate(self) -> None:
        super().validate()
        if self.config.get("search_backbone") and not self.config.get("retrain"):
            raise ConfigError(
                "rule: search_backbone needs --param retrain=true: a served plan keeps the "
                "supernet's backbone, which must then be the run's"
            )

    def search_space(self, ctx: SearchContext) -> SearchSpace:
        return block_space(ctx.space, int(self.config["blocks"]))

    def _check_budgets(self, ctx: SearchContext, space: SearchSpace) -> None:
        """Fail before training when the smallest budget cannot hold one block per group."""
        smallest, low = space.min_bytes(), min(ctx.budgets)
        if low >= smallest:
            return
        finer = [
            b
            for b in range(int(self.config["blocks"]) + 1, space.width + 1)
            if space.width % b == 0 and block_space(ctx.space, b).min_bytes() <= low
        ]
        hint = f"blocks={finer[0]}" if finer else "a larger budget"
        block = space.width // int(self.config["blocks"])
        check_fits(
            low,
            smallest,
            what=f"block selection (one block of {block} columns per group)",
            prefix="rule: ",
            remedy=f" or use finer blocks ({hint})",
        )

    # -- steps 1-3 ----------------------------------------------------------------------------
    def prepare(self, ctx: SearchContext, deadline: float | None) -> None:
        """Train the block supernet once, then fit the performance estimator."""
        self.check_space(ctx)
        state = self.state
        state.space = space = self.search_space(ctx)
        self._check_budgets(ctx, space)
        sctx = self.supernet_context(ctx)  # the run's recipe with search_backbone laid over it
        lam = float(self.config["diversity"])
        epochs = self.config["supernet_epochs"] or ctx.train.epochs
        judge = served_validation(ctx, space) if self.config["supernet_val"] == "budgets" else None
        state.supernet, summary = train_weight_sharing_supernet(
            sctx,
            lambda: self.build_supernet(ctx, space),
            epochs,
            deadline,
            extra_loss=lambda m: lam * m.embedding.diversity_loss(),
            desc="rule supernet",
            validate=judge,
        )
        summary["judged_by"] = "budgets' uniform selections" if judge else "full width"
        state.supernet_summary = summary
        ctx.record(event="supernet", controller=self.name, **summary)
        val, batch = ctx.data.split("val"), ctx.train.eval_batch_size
        # step 3 scores its samples on at most half the split, step 5 chooses on the other
        # rows (no winner's curse), and the served plan reports the whole split
        state.inherited = self.scorer(ctx, state.supernet)
        _, rest = self._halves(ctx)
        state.heldout = InheritedWeightEvaluator(state.supernet, val, batch, rows=rest)
        state.full = InheritedWeightEvaluator(state.supernet, val, batch)
        sampler = EstimatorSampler(
            self.name, space, ctx.budgets, int(self.config["estimator_samples"]), ctx.rng(1)
        )
        top = space.bytes_of(space.max_candidate())
        run_loop(
            sampler,
            state.inherited,
            ctx,
            top,
            space=space,
            deadline=deadline,
            phase="estimator",
            cache=state.memo,
            recipe=self.trial_recipe(ctx, top),  # with --executor: the samples run there
        )
        state.estimator = RidgeEstimator(
            space.candidates,
            float(self.config["ridge"]),
            self.config["estimator"],
            float(self.config["pooling"]),
        )
        quality = state.estimator.fit(list(sampler.scored), list(sampler.scored.values()))
        ctx.record(event="estimator", controller=self.name, **quality)

    def build_supernet(self, ctx: SearchContext, space: SearchSpace) -> CTRModel:
        """Step 2's block supernet, untrained (seeded); trained by ``prepare``, loaded by
        workers."""
        emb = RuleSupernet(
            space.width,
            space.candidates,
            space.groups,
            space.schema.names,
            seed=ctx.seed,
            blocks=int(self.config["blocks"]),
            sampling=self.config["sampling"],
            scales=self.config["scales"],
        )
        return CTRModel(emb, self.supernet_context(ctx).make_backbone())

    def _halves(self, ctx: SearchContext) -> tuple[np.ndarray, np.ndarray]:
        """Step 3's validation rows and step 5's (disjoint; fixed by the labels)."""
        val_y = ctx.data.split("val").y.cpu().numpy()
        return disjoint_rows(val_y, self.config["val_rows"] or len(val_y))

    def scorer(self, ctx: SearchContext, model: nn.Module) -> InheritedWeightEvaluator:
        """Step 3's score of an estimator sample: inherited weights on its half of the
        validation rows (here, or in a worker with ``--executor local``/``ray``)."""
        val, batch = ctx.data.split("val"), ctx.train.eval_batch_size
        return InheritedWeightEvaluator(model, val, batch, rows=self._halves(ctx)[0])

    def evaluator(self, ctx: SearchContext, budget: int) -> RidgeEstimator:
        return self.state.estimator

    # -- step 4: evolution under each budget (EvolutionaryController's ask/tell) ------------
    def evolution_space(self, ctx: SearchContext) -> SearchSpace:
        return self.state.space

    # -- step 5 -------------------------------------------------------------------------------
    def measured_checks(self, budget: int) -> list[Candidate]:
        """Step 5's extra candidates, scored like the estimator's picks: the uniform block
        selection that fits ``budget`` and the ``final_checks`` best-scoring estimator samples
        under it (their inherited scores are measured, where the estimator extrapolates)."""
        space, n = self.state.space, int(self.config["final_checks"])
        out = [u for u in [uniform_selection(space, budget)] if u is not None]
        fits = [(s, c) for c, s in self.state.memo.items() if math.isfinite(s)]
        fits = [(s, c) for s, c in fits if space.bytes_of(c) <= budget]
        fits.sort(key=lambda sc: -sc[0])
        return out + [c for _, c in fits[:n]]

    def final_evaluator(self) -> InheritedWeightEvaluator:
        """Step 5's scores: the validation rows step 3 did not use (``self.state.heldout``)."""
        return self.state.heldout

    def null_candidate(self, ctx: SearchContext, budget: int) -> Candidate | None:
        """The null-signal check (issue 18): steps 4-5 for ``budget`` with a constant
        estimator in place of the fitted one (so the evolution ranks nothing), the same
        measured checks, no smaller budget's picks (they came from the signal); step 5's
        held-out scores choose as usual. Deterministic: the evolution draws from
        ``ctx.rng(budget)``, as the search did."""
        evolved = self.constant_score_finalists(ctx, budget, int(self.config["final_checks"]))
        sources: dict[Candidate, str] = dict.fromkeys(evolved, "evolution")
        uni = uniform_selection(self.state.space, budget)
        for cand in self.measured_checks(budget):
            sources.setdefault(cand, "uniform selection" if cand == uni else "estimator sample")
        return self.choose(list(sources), sources) if sources else None

    def choose(self, checks: Sequence[Candidate], sources: dict[Candidate, str]) -> Candidate:
        """Step 5's choice among ``checks`` (scored on the held-out rows): the best of the
        evolution's finalists and the smaller budgets' picks, unless a safety check (the
        uniform selection, a measured estimator sample) validates better by more than
        ``final_margin`` standard errors of the paired AUC difference."""
        scores = [self.state.final_memo.get(c) for c in checks]
        scores = [self.state.heldout(c) if v is None else v for c, v in zip(checks, scores)]
        scores = [v if math.isfinite(v) else -math.inf for v in scores]
        best = checks[int(np.argmax(scores))]
        safety = ("uniform selection", "estimator sample")
        preferred = [(v, c) for v, c in zip(scores, checks) if sources[c] not in safety]
        margin = float(self.config["final_margin"])
        if sources[best] not in safety or not preferred or margin <= 0:
            return best
        pick = max(preferred, key=lambda vc: vc[0])[1]
        test = paired_margin(self.state.heldout, best, pick, margin)
        return best if test.challenger_wins else pick

    def finish(self, ctx: SearchContext, budget: int, result: LoopResult) -> Plan:
        space = self.state.space
        if result.stop_reason == "done":
            ranked = self.ranked_within(space, budget)
        else:  # out of time or interrupted: check no more than the best so far
            ranked = [result.best] if result.best is not None else []
        evolved = ranked[: int(self.config["final_checks"])]
        sources: dict[Candidate, str] = dict.fromkeys(evolved, "evolution")
        if not evolved:
            sources[self.fallback(ctx, budget)] = "fallback (no evolution result)"
        measured = self.measured_checks(budget) if result.stop_reason == "done" else []
        uni = uniform_selection(space, budget)
        for cand in measured:
            sources.setdefault(cand, "uniform selection" if cand == uni else "estimator sample")
        for cand in self.carried(space, budget):
            sources.setdefault(cand, "carried over from a smaller budget")
        checks = list(sources)
        self.run_final_checks(ctx, budget, space, checks)
        best = self.choose(checks, sources)
        if best == uni and sources[best] == "evolution":  # a seed the evolution kept on top
            sources[best] = "evolution (its pick is the uniform selection)"
        self.remember_pick(best)
        m = self.state.full.metrics(best)
        plan = self.make_plan(
            ctx,
            best,
            budget,
            space,
            extra={
                "search": result.summary(),
                "interrupted": result.interrupted,
                "supernet": self.state.supernet_summary,
                "blocks": int(self.config["blocks"]),
                PROVENANCE_KEY: sources[best],
                "heldout_val_auc": self.state.final_memo.get(best),
                "inherited_val_auc": m["auc"],
                "inherited_val_logloss": m["logloss"],
                "evolution": self.evolution_summary(ctx, budget),
            },
        )
        if result.stop_reason == "done":  # did the estimator decide the plan?
            null = self.null_candidate(ctx, budget)
            plan.extra[SIGNAL_KEY] = signal_record(best, null, self.null_signal)
        if not self.config["retrain"]:  # step 5: the runner uses these and skips retraining
            plan.weights = plan_weights(ctx, self.state.supernet, plan, best)
            plan.metrics = {"val_auc": m["auc"], "val_logloss": m["logloss"]}
            plan.extra["served_from_supernet"] = True  # retrain also tests these weights
        return plan


def _dedupe(cands: Sequence[Candidate]) -> list[Candidate]:
    return list(dict.fromkeys(cands))
