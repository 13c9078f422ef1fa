"""OptEmbed: Lyu et al., "OptEmbed: Learning Optimal Embedding Table for Click-through Rate
Prediction" (CIKM 2022), checked against its official code (github.com/fuyuanlyu/OptEmbed).

Steps, as in the paper:

1. *Supernet training* (``embeddings/supernets/optembed_supernet.py``): one max-width
   table learns per-field pruning thresholds (rows with ``||e||_1 <= t_f`` are zeroed; the
   official long-tailed straight-through estimator; regulariser ``alpha * sum_f
   exp(-t_f)``; the thresholds' own plain SGD at ``threshold_lr``; an L2 penalty
   ``table_l2`` on the table, the official ``wd``) while every example draws a dim per field
   uniformly from the candidates and keeps the first ``d`` columns (``sampling='example'``,
   as the official code).
2. *Evolutionary search* over per-field dims (:mod:`.evolutionary`): a random population,
   top-k selection, crossover between fields, mutation; each candidate is scored with the
   supernet's inherited weights (rows pruned) on the validation split (``evaluator.py``).
   Unlike the paper (and its public code) every child is projected onto the byte budget
   with ``space.repair``, so no candidate over the budget is ever kept.
3. *Retraining*: the runner retrains the returned plan from scratch, under the dims and
   the row masks, as the paper does: each field's kept rows are a ``pruned`` block whose
   id -> row map (from the thresholds) stays fixed, a pruned id embedding as the zero
   vector (the official ``mode_oov='zero'``).

Pruned rows leave the table (``prune_rows``, :mod:`.optembed_rows`): the paper prunes rows,
then searches dims for the kept rows (its parameter count: kept rows only). After step 1 the
evolution's space counts a field's ``pruned`` block (kept rows x dim plus the map, an integer
per id) wherever it costs less than all rows (``search_spaces/pruned_rows.py``): the budget
sees the credit. Budgets are checked before step 1 against all rows. ``prune_rows=false``
stores every row (the paper's OptEmbed-D ablation keeps them; the supernet still prunes).
``plan.extra["rows"]``: the fields stored pruned, the rows left out, the bytes credited; the
maps travel with the plan (``Plan.row_maps``) and the export (``emb.<field>.<group>.map``).

Row pruning, scaled to a search's length: the paper's settings (``alpha`` 1e-6..1e-4,
threshold lr 1e-4..1e-2) move a threshold by at most ``alpha * lr`` a step, ~0.007 over 30
Criteo epochs (~660k steps); a search here takes ~100-1,000 steps, where they prune nothing
(Adam on the thresholds, the first version, drove them all negative). The defaults
(``alpha=0.1``, ``threshold_lr=1e-2``, from the paper's grid, ``table_l2=1e-4``, from its l2
grid) allow 1e-3 a step: with 5 epochs they prune 28-30% of the synthetic table's rows
(seeds 0-2; mostly rare noise ids) and 8.6% of the frappe split's, supernet val AUC
unchanged (0.7225 vs 0.7227). Without ``table_l2`` (Adam's L2 shrinks the rows the loss does
not defend) nothing is pruned (BENCHMARKS.md). ``plan.extra`` records each field's pruned
share (``pruned_row_fraction``), the table's (``pruned_rows_total``) and, as ``provenance``, which step chose the plan: ``evolution``
(its pick), ``uniform gate`` (``uniform_margin`` below returned the uniform table),
``evolution, cut short`` (time limit or Ctrl-C) or ``fallback`` (nothing evaluated).

Candidates: the paper searches every dim ``1..D`` (``all_dims=true``); the default keeps
the space's (powers of two unless ``--candidates``). On planted synthetic data at 10/25/50%
(seed 0, 5 epochs) with 1..16 the picks beat the uniform plan by +0.71/+2.07/+1.85 standard
errors (the gate returned two of three plans), with powers of two by +5.59/+2.72/+2.83 (the
evolution chose all three): 16 dims a field widen the space for the same evaluations.

Composed spaces (``--space field_dims+meta_table`` etc., an extension): the same steps over
the generic candidate (a key per block into ``space.block_options``; sampling, mutation,
crossover and repair are the space's), each candidate scored by the composed-space proxy on
the inherited rows (``block_proxy.py``: shared tables fitted to them, fp16/int8 rounding;
pruned rows zeroed). There pruned rows are not credited (a field is one block of one kind);
the uniform gate's rival, ``uniform``'s plan, is scored by the same proxy (``optembed_gate``);
extension: with a row or precision axis the pick must also beat it by ``composed_min_gain``
(0.005 proxy AUC), because that proxy's SE is tiny and blind to what retraining loses to
shared rows and int8 (``optembed_gate``'s docstring has the evidence).

Choices the paper leaves open (one line each):

- ``val_rows=2048``: candidates are scored on one fixed class-stratified subsample of the
  validation split (paired comparisons, ~4x cheaper on Frappe); ``None`` uses every row.
- ``final_checks=5``: the evolution's 5 best candidates are re-scored on the whole split and
  the best of those is returned, so subsample noise cannot pick a lucky candidate.
- each budget of a search keeps its own evolution: seeding a larger budget with a smaller
  one's pick (as RULE does) made its inherited scores monotone, but the plans retrained
  worse where the smaller pick won by a hair (synthetic 50%: +0.0057 -> +0.0028 over
  uniform; `git show 964ade3:BENCHMARKS.md`).
- ``patience=2``: the evolution stops after 2 generations without a better candidate
  (``min_delta=5e-4`` made it ~30% cheaper but found worse plans on synthetic and frappe).
- scores are memoised across the budgets of one search (inherited scores ignore budgets).
- ``uniform_margin=2.0``: the plan is the uniform one (the ``uniform`` controller's plan
  for the same space, budget and constraints, pruned rows credited: ``optembed_gate.py``)
  unless the pick beats it on the whole validation split by more than two standard errors
  of their paired AUC difference (DeLong; one-sided, ~2.5%): where inherited scores cannot
  tell plans apart a mixed plan is a coin toss that retrained slightly worse (frappe 50%;
  `git show 964ade3:BENCHMARKS.md`). ``0`` returns the pick whatever its margin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from torch import nn

from embsearch.backbones import CTRModel
from embsearch.context import SearchContext
from embsearch.controllers._signal import PROVENANCE_KEY, SIGNAL_KEY, signal_record
from embsearch.controllers.base import SEARCH_BACKBONE, SearchState
from embsearch.controllers.block_proxy import BlockProxyEvaluator
from embsearch.controllers.evolution import EVOLUTION_SPECS
from embsearch.controllers.evolutionary import EvolutionaryController, EvolutionState
from embsearch.controllers.optembed_gate import (
    gate_figures,
    gate_note,
    min_gain_of,
    rival_plan,
    signal_candidate,
    signal_keys,
)
from embsearch.controllers.optembed_rows import row_maps_of, row_record
from embsearch.controllers.param_spec import Param
from embsearch.controllers.weight_sharing import train_weight_sharing_supernet
from embsearch.embeddings.supernets import SAMPLINGS, OptEmbedSupernet
from embsearch.errors import BudgetError
from embsearch.evaluator import Evaluator, InheritedWeightEvaluator
from embsearch.plan import Plan
from embsearch.search_loop import LoopResult
from embsearch.search_spaces import COMPOSED_SPACES
from embsearch.search_spaces.base import Candidate, SearchSpace
from embsearch.search_spaces.composed import ComposedSpace
from embsearch.search_spaces.pruned_rows import PrunedRowsSpace


@dataclass
class OptEmbedState(EvolutionState):
    """OptEmbed's search state, beyond :class:`EvolutionState`: the context space its own
    space was made from (``made_from``, so one copy serves the search), and step 1's row
    pruning (per-field and overall pruned-row shares, the thresholds)."""

    made_from: SearchSpace | None = None
    pruned: dict[str, float] = field(default_factory=dict)
    pruned_total: float = 0.0
    thresholds: dict[str, float] = field(default_factory=dict)


class OptEmbed(EvolutionaryController):
    name = "optembed"
    family = "evolutionary"
    paper = (
        "Fuyuan Lyu, Xing Tang, Hong Zhu, Huifeng Guo, Yingxue Zhang, Ruiming Tang, Xue Liu. "
        "OptEmbed: Learning Optimal Embedding Table for Click-through Rate Prediction. "
        "Proceedings of the 31st ACM International Conference on Information and Knowledge "
        "Management (CIKM) 2022 (arXiv:2208.04482)"
    )
    supported_spaces = ("field_dims", *COMPOSED_SPACES)
    remote_trials = True  # its evolution's trials run on any executor (build_supernet, scorer)
    state_class: ClassVar[type[SearchState]] = OptEmbedState
    state: OptEmbedState
    user_candidates = False  # the user named --candidates (check_options): all_dims yields
    param_specs: ClassVar[dict[str, Param]] = {
        **EVOLUTION_SPECS,
        "supernet_epochs": Param(None, "int", "supernet epochs (None: --epochs)", 1, optional=True),
        "alpha": Param(
            0.1,
            "float",
            "weight of the threshold regulariser alpha * sum_f exp(-t_f) (row pruning)",
            0.0,
            1.0,
        ),
        "threshold_lr": Param(
            1e-2,
            "float",
            "learning rate of the thresholds' own plain SGD (the official t_lr)",
            0.0,
            10.0,
        ),
        "table_l2": Param(
            1e-4,
            "float",
            "L2 penalty on the supernet's table (the official wd): lets Adam shrink the rows the "
            "loss does not defend, which the thresholds then prune",
            0.0,
            1.0,
        ),
        "prune_rows": Param(
            True,
            "bool",
            "true: plans store each field's kept rows only (pruned blocks: rows + id->row map) "
            "and the budget credits the pruned ones, the paper's order (field_dims; composed "
            "spaces store every row); false: every row stored",
            extension="false is the table of the paper's OptEmbed-D ablation (no row pruning)",
        ),
        "threshold_init": Param(0.0, "float", "initial per-field pruning threshold t_f"),
        "sampling": Param(
            "example",
            "choice",
            "how supernet training draws dims: 'example' (a dim per example and field, the "
            "official code's), 'step' or 'band'",
            choices=SAMPLINGS,
            extension="'step' and 'band' are ablations; the official code draws per example",
        ),
        "all_dims": Param(
            False,
            "bool",
            "true: candidates are every dim 1..width, the paper's set (false: the space's "
            "--candidates, powers of two by default; given --candidates always win)",
            extension="false (the default) searches the powers of two, not the paper's 1..width",
        ),
        "val_rows": Param(
            2048,
            "int",
            "rows of the fixed validation subsample candidates are scored on (None: the whole "
            "split)",
            1,
            optional=True,
            extension="scoring on a validation subsample: embsearch's, for speed",
        ),
        "final_checks": Param(
            5,
            "int",
            "best candidates re-scored on the whole validation split",
            1,
            extension="re-scoring the best candidates on the whole split: embsearch's",
        ),
        "patience": replace(EVOLUTION_SPECS["patience"], default=2),
        "projection": Param(
            "pad",
            "choice",
            "plans' projection: 'pad' (the paper's masks) or 'linear'",
            choices=("pad", "linear"),
            extension="'linear' retrains behind projections; the paper retrains the masks",
        ),
        "uniform_margin": Param(
            2.0,
            "float",
            "return the uniform plan unless the pick's val AUC beats it by more than this many "
            "standard errors (paired, DeLong; 0: always the pick)",
            0.0,
            extension="the uniform gate: embsearch's (0 returns the evolution's pick)",
        ),
        "composed_min_gain": Param(
            0.005,
            "float",
            "composed spaces with a row or precision axis: the pick must also beat the uniform "
            "plan by at least this much proxy val AUC (0: the SE margin alone)",
            0.0,
            extension="the proxy's SE there is ~0.0001-0.001, and picks beating uniform by < "
            "0.003 retrained 0.003-0.035 below it (frappe hybrid; optembed_gate.py)",
        ),
        "search_backbone": replace(
            SEARCH_BACKBONE,
            default={"batch_norm": False, "dropout": 0.0, "embedding_regularizer": 0.0},
            extension="the supernet trains without the recipe's batch norm, dropout and "
            "embedding regularizer: pruning compares row norms with learned thresholds, which "
            "batch norm (blind to the inputs' scale) and the dense L2 (500x table_l2) undo, and "
            "on planted data the evolution's pick lost its margin with dropout; the plans train "
            "with all three",
        ),
    }

    # -- step 1 -----------------------------------------------------------------------------
    def check_options(
        self, *, width: int, candidates: Sequence[int] | None, projection: str | None = None
    ) -> None:
        """Also note whether the user named ``--candidates`` (they then replace ``all_dims``)."""
        super().check_options(width=width, candidates=candidates, projection=projection)
        self.user_candidates = candidates is not None

    def search_space(self, ctx: SearchContext) -> SearchSpace:
        """The context's space with the plans' projection set to ``projection`` and, with
        ``all_dims`` (unless the user named ``--candidates``), every dim ``1..width`` as a
        candidate, the paper's set (one copy per context space, so its byte memos serve the
        whole search)."""
        state = self.state
        if state.space is None or state.made_from is not ctx.space:
            space = ctx.space.with_projection(str(self.config["projection"]))
            if self.config["all_dims"] and not self.user_candidates:
                keep_zero = [0] if 0 in space.candidates else []
                space = space.with_candidates(keep_zero + list(range(1, space.width + 1)))
            state.space, state.made_from = space, ctx.space
        return state.space

    def prepare(self, ctx: SearchContext, deadline: float | None) -> None:
        """Train the supernet once for every budget and build the inherited-weight evaluator."""
        self.check_space(ctx)
        space = self.search_space(ctx)
        for budget in ctx.budgets:  # fail before training
            space.check_budget(budget)
        sctx = self.supernet_context(ctx)  # the run's recipe with search_backbone laid over it
        epochs = self.config["supernet_epochs"] or ctx.train.epochs
        alpha = float(self.config["alpha"])
        state = self.state
        state.supernet, summary = train_weight_sharing_supernet(
            sctx,
            lambda: self.build_supernet(ctx, space),
            epochs,
            deadline,
            extra_loss=lambda m: alpha * m.embedding.threshold_loss(),
            desc="optembed supernet",
        )
        emb = state.supernet.embedding
        fractions = emb.pruned_fraction()
        state.pruned = dict(zip(space.schema.names, (round(p, 6) for p in fractions)))
        rows = [f.cardinality for f in space.schema.fields]
        state.pruned_total = round(sum(p * n for p, n in zip(fractions, rows)) / sum(rows), 6)
        state.keep = [m.numpy() for m in emb.keep_masks()]
        # the kept rows only, from here on (module docstring; not in a composed space)
        if self.config["prune_rows"] and not isinstance(space, ComposedSpace):
            state.space = PrunedRowsSpace(space, [int(k.sum()) for k in state.keep])
        state.thresholds = dict(
            zip(space.schema.names, (round(t, 6) for t in emb.threshold.detach().tolist()))
        )
        state.supernet_summary = summary
        ctx.record(
            event="supernet", controller=self.name, **summary, pruned_row_fraction=state.pruned
        )
        val = ctx.data.split("val")
        state.evaluator = self.scorer(ctx, state.supernet)
        subsampled = len(state.evaluator.y) < len(val)
        state.full = self.scorer(ctx, state.supernet, whole=True) if subsampled else None

    def build_supernet(self, ctx: SearchContext, space: SearchSpace) -> CTRModel:
        """Step 1's supernet, untrained (seeded); trained by ``prepare``, loaded by workers."""
        emb = OptEmbedSupernet(
            space.width,
            space.dim_choices,
            space.groups,
            space.schema.names,
            seed=ctx.seed,
            threshold_init=float(self.config["threshold_init"]),
            sampling=str(self.config["sampling"]),
        )
        emb.own_threshold_optimiser(
            float(self.config["threshold_lr"]), float(self.config["table_l2"])
        )
        return CTRModel(emb, self.supernet_context(ctx).make_backbone())

    def scorer(self, ctx: SearchContext, model: nn.Module, whole: bool = False) -> Evaluator:
        """Step 2's score: inherited weights on the fixed ``val_rows`` subsample (``whole``:
        every validation row; here, or in a worker with ``--executor local``/``ray``); in a
        composed space the block proxy (module docstring)."""
        val, batch = ctx.data.split("val"), ctx.train.eval_batch_size
        rows = None if whole else self.config["val_rows"]
        space = self.search_space(ctx)
        if isinstance(space, ComposedSpace):
            return BlockProxyEvaluator(model, space, val, batch, max_rows=rows)
        return InheritedWeightEvaluator(model, val, batch, max_rows=rows)

    def evaluator(self, ctx: SearchContext, budget: int) -> Evaluator:
        return self.state.evaluator

    # -- step 2: evolution over per-field dims (EvolutionaryController's ask/tell) --------

    # -- step 3 (the runner retrains) ---------------------------------------------------------
    null_signal = "constant inherited scores (the evolution ranks every candidate alike)"

    def null_candidate(self, ctx: SearchContext, budget: int) -> Candidate | None:
        """The null-signal check (issue 18): the evolution for ``budget`` told one constant
        score for every candidate (so its ranking is the order it met them in), then the
        same final checks on the whole split and the same uniform gate. Deterministic: the
        evolution draws from ``ctx.rng(budget)``, as the search did."""
        ranked = self.constant_score_finalists(ctx, budget, int(self.config["final_checks"]))
        if not ranked:
            return None
        whole = self.state.full if self.state.full is not None else self.state.evaluator
        scores = [whole(c) for c in ranked]
        best = max(range(len(ranked)), key=scores.__getitem__)
        picked = LoopResult(ranked[best], scores[best], len(ranked), 0.0, "done")
        _, margin, uniform_plan = self._uniform_margin(ctx, budget, picked)
        if margin is not None and margin["returned"] == "uniform" and uniform_plan is not None:
            return self.signal_candidate(ctx, uniform_plan)
        return signal_keys(self.search_space(ctx), ranked[best])

    def finish(self, ctx: SearchContext, budget: int, result: LoopResult) -> Plan:
        final = self._final_checks(ctx, budget, result)
        picked = result if final is None or final.best is None else final
        picked, margin, uniform_plan = self._uniform_margin(ctx, budget, picked)
        plan = super().finish(ctx, budget, picked)
        plan.extra["search"] = result.summary()
        if final is not None:
            plan.extra["final_checks"] = final.summary()
        if margin is not None:
            plan.extra["uniform_margin"] = margin
            if margin["returned"] == "uniform" and uniform_plan is not None:
                # the uniform controller's plain table, named for this controller, with this
                # plan's record and projection (moot: its one dim is its width)
                plan = replace(
                    uniform_plan, controller=self.name, extra=plan.extra, projection=plan.projection
                )
                plan.add_note(gate_note(margin))
        if result.best is None:
            provenance = "fallback (nothing evaluated)"
        elif margin is not None and margin["returned"] == "uniform":
            provenance = "uniform gate"
        else:
            provenance = "evolution" if result.stop_reason == "done" else "evolution, cut short"
            space = self.search_space(ctx)  # one dim everywhere, full rows (dims-only)
            if (
                not isinstance(space, ComposedSpace)
                and len({d for ds in picked.best for d in ds}) == 1
            ):
                provenance += " (its pick is the uniform plan)"
        if result.stop_reason == "done" and result.best is not None:  # did the scores decide?
            null = self.null_candidate(ctx, budget)
            plan.extra[SIGNAL_KEY] = signal_record(
                self.signal_candidate(ctx, plan), null, self.null_signal
            )
        plan.extra.update(
            {
                PROVENANCE_KEY: provenance,
                "pruned_row_fraction": self.state.pruned,
                "pruned_rows_total": self.state.pruned_total,
                "pruned_rows_stored": not self.config["prune_rows"],
                "rows": row_record(plan),
                "thresholds": self.state.thresholds,
                "supernet": self.state.supernet_summary,
                "inherited_val_auc": picked.best_score if picked.best is not None else None,
            }
        )
        if self.config["prune_rows"]:
            plan.set_row_maps(row_maps_of(plan, self.state.keep))
        return plan

    def _final_checks(
        self, ctx: SearchContext, budget: int, result: LoopResult
    ) -> LoopResult | None:
        """Re-score the evolution's ``final_checks`` best candidates on the whole validation
        split (only when scoring used a subsample and the evolution ran to its end)."""
        if self.state.full is None or result.stop_reason != "done" or result.best is None:
            return None
        if self.state.evolution_budget != budget:
            return None
        space = self.search_space(ctx)
        ranked = self.ranked_within(space, budget)[: int(self.config["final_checks"])]
        return self.run_final_checks(ctx, budget, space, ranked)

    def signal_candidate(self, ctx: SearchContext, plan: Plan) -> Candidate:
        """``plan`` keyed as :meth:`null_candidate` keys the null plan (``optembed_gate.py``)."""
        return signal_candidate(self.search_space(ctx), plan)

    def _uniform_margin(
        self, ctx: SearchContext, budget: int, picked: LoopResult
    ) -> tuple[LoopResult, dict[str, Any] | None, Plan | None]:
        """``uniform_margin`` (module docstring): the pick against ``optembed_gate.rival_plan``
        on the whole validation split (the supernet masked to its dims; composed: the block
        proxy). Returns ``picked``, the figures and the uniform plan (``None``, ``None`` when
        nothing was compared: no margin, no uniform plan under the budget, the pick is that
        plan, or the search was cut short)."""
        k = float(self.config["uniform_margin"])
        best = picked.best
        if k <= 0 or best is None or picked.stop_reason != "done":
            return picked, None, None
        space = self.search_space(ctx)
        try:
            uniform_plan = rival_plan(ctx, space, budget, str(self.config["projection"]))
        except BudgetError:
            return picked, None, None
        whole = self.state.full if self.state.full is not None else self.state.evaluator
        floor = min_gain_of(space, float(self.config["composed_min_gain"]))
        figures = gate_figures(space, whole, best, uniform_plan, k, floor)
        if figures is None:
            return picked, None, None
        if figures["returned"] == "pick":
            return picked, figures, uniform_plan
        return replace(picked, best_score=figures["uniform_val_auc"]), figures, uniform_plan
