"""The shared ask/tell loop: recording, budget, time limit, Ctrl-C, several budgets."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from embsearch.context import SearchContext
from embsearch.controllers.base import AskTellController
from embsearch.controllers.evolutionary import FixedAsker
from embsearch.data.synthetic import make_synthetic
from embsearch.search_loop import run_loop
from embsearch.search_spaces import FieldDimsSpace
from embsearch.search_spaces.base import Candidate


class Linear:
    """A fake evaluator: a fixed linear score of the dims; optionally sleeps or raises."""

    name = "fake"

    def __init__(self, n_fields: int, interrupt_at: int | None = None, sleep: float = 0.0) -> None:
        self.w = np.linspace(1.0, 2.0, n_fields)
        self.calls, self.interrupt_at, self.sleep = 0, interrupt_at, sleep
        self.last_metrics = {"logloss": 0.5}

    def __call__(self, cand: Candidate) -> float:
        self.calls += 1
        if self.interrupt_at is not None and self.calls >= self.interrupt_at:
            raise KeyboardInterrupt
        time.sleep(self.sleep)
        return float(self.w @ np.asarray([d[0] for d in cand]))


class RandomSearch(AskTellController):
    """The smallest AskTellController: random feasible candidates (plus any scripted ones)."""

    name = "random-test"
    params = {"trials": 10}

    def __init__(
        self, evaluator: Linear | None = None, script: list | None = None, **params
    ) -> None:
        super().__init__(**params)
        self.fake, self.script = evaluator, list(script or [])
        self.prepared = 0

    def prepare(self, ctx, deadline):
        self.prepared += 1
        self.fake = self.fake or Linear(ctx.space.num_fields)

    def evaluator(self, ctx, budget):
        return self.fake

    def start(self, ctx, budget):
        self.space, self.budget, self.left = ctx.space, budget, self.config["trials"]
        self.rng, self.told = np.random.default_rng(budget), []

    def ask(self) -> Candidate:
        self.left -= 1
        if self.script:
            return self.script.pop(0)
        return self.space.repair(self.space.sample(self.rng), self.budget)

    def tell(self, candidate, score):
        self.told.append((candidate, score))

    def done(self) -> bool:
        return self.left <= 0


@pytest.fixture(scope="module")
def dataset():
    return make_synthetic(rows=2000, seed=0)


@pytest.fixture
def ctx(dataset):
    space = FieldDimsSpace(dataset.schema, 16)
    full = space.full_table_bytes()
    logs: list[str] = []
    c = SearchContext(dataset, space, [full // 8, full // 4], log=logs.append)
    c.logs = logs  # type: ignore[attr-defined]
    return c


def events(ctx, kind):
    return [e for e in ctx.history if e["event"] == kind]


def test_every_evaluation_is_recorded_and_search_works_alone(ctx):
    ctrl = RandomSearch(trials=7)
    plans = ctrl.search_budgets(ctx)
    assert ctrl.prepared == 1  # one preparation (supernet) for every budget
    assert [p.budget_bytes for p in plans] == ctx.budgets
    evals = events(ctx, "evaluation")
    assert len(evals) == 14 and len(events(ctx, "loop_end")) == 2
    for e in evals:
        assert {"candidate", "bytes", "score", "seconds", "budget", "logloss"} <= set(e)
        assert e["bytes"] <= e["budget"] and e["seconds"] >= 0
    for p in plans:
        best = max(e["score"] for e in evals if e["budget"] == p.budget_bytes)
        assert p.table_bytes <= p.budget_bytes and p.extra["search"]["best_score"] == best
        assert p.extra["interrupted"] is False
    json.dumps(ctx.history, allow_nan=False)
    single = RandomSearch(trials=3).search(ctx)  # search() alone: the first budget
    assert single.budget_bytes == ctx.budgets[0]


def test_ctrl_c_returns_best_so_far_for_every_budget(ctx):
    ctrl = RandomSearch(Linear(ctx.space.num_fields, interrupt_at=4), trials=10)
    plans = ctrl.search_budgets(ctx)
    evals = events(ctx, "evaluation")
    assert len(evals) == 3  # the 4th call raised; nothing after Ctrl-C is evaluated
    end = events(ctx, "loop_end")
    assert len(end) == 1 and end[0]["interrupted"] and end[0]["stop_reason"] == "interrupted"
    best = max(evals, key=lambda e: e["score"])["candidate"]
    for p in plans:
        assert p.extra["interrupted"] is True and p.table_bytes <= p.budget_bytes
        assert [f.dims for f in p.fields] == best  # the first budget's best fits the larger one
    assert any("interrupted" in m for m in ctx.logs)


def test_ctrl_c_before_any_evaluation_still_gives_a_feasible_plan(ctx):
    plans = RandomSearch(Linear(ctx.space.num_fields, interrupt_at=1)).search_budgets(ctx)
    assert not events(ctx, "evaluation")
    assert all(p.extra["interrupted"] and p.table_bytes <= p.budget_bytes for p in plans)


def test_time_limit_stops_with_best_so_far(ctx):
    ctx.max_seconds = 0.05
    ctrl = RandomSearch(Linear(ctx.space.num_fields, sleep=0.02), trials=1000)
    t0 = time.perf_counter()
    plans = ctrl.search_budgets(ctx)
    assert time.perf_counter() - t0 < 5
    ends = events(ctx, "loop_end")
    assert [e["stop_reason"] for e in ends] == ["time", "time"]
    assert all(e["evaluations"] >= 1 for e in ends)  # at least one per budget, then stop
    assert len(events(ctx, "evaluation")) < 20
    assert all(p.table_bytes <= p.budget_bytes for p in plans)
    assert any("time limit" in m for m in ctx.logs)


def test_over_budget_and_nan_candidates_are_never_kept(ctx):
    space, budget = ctx.space, ctx.budgets[0]
    big, small = space.max_candidate(), space.uniform(space.candidates[0])
    assert space.bytes_of(big) > budget
    ctrl = RandomSearch(trials=3, script=[big, small])
    ctrl.prepare(ctx, None)
    ctrl.start(ctx, budget)
    result = run_loop(ctrl, ctrl.evaluator(ctx, budget), ctx, budget)
    assert len(events(ctx, "rejected")) == 1 and ctrl.told[0] == (big, -math.inf)
    assert result.best is not None and space.bytes_of(result.best) <= budget
    assert result.evaluations == 2

    class NaN:
        name = "nan"

        def __call__(self, cand):
            return float("nan")

    ctrl.start(ctx, budget)
    result = run_loop(ctrl, NaN(), ctx, budget)
    assert result.best is None and result.evaluations == 3
    assert all(e["score"] is None for e in events(ctx, "evaluation")[-3:])  # JSON null
    plan = ctrl.finish(ctx, budget, result)
    assert plan.table_bytes <= budget


def test_repeated_candidates_are_not_re_evaluated(ctx):
    cand = ctx.space.uniform(ctx.space.candidates[0])
    fake = Linear(ctx.space.num_fields)
    ctrl = RandomSearch(fake, trials=3, script=[cand, cand, cand])
    ctrl.prepare(ctx, None)
    ctrl.start(ctx, ctx.budgets[0])
    run_loop(ctrl, fake, ctx, ctx.budgets[0])
    assert fake.calls == 1
    assert [e["cached"] for e in events(ctx, "evaluation")] == [False, True, True]


class BudgetFree(RandomSearch):
    """RandomSearch whose scores do not depend on the budget: one memo for every budget."""

    budget_free_scores = True


@pytest.mark.parametrize("shared", [False, True])
def test_memo_shared_across_budgets_evaluates_a_candidate_once(ctx, shared):
    cand = ctx.space.uniform(ctx.space.candidates[0])  # fits both budgets
    fake = Linear(ctx.space.num_fields)
    cls = BudgetFree if shared else RandomSearch
    plans = cls(fake, trials=1, script=[cand, cand]).search_budgets(ctx)
    evals = events(ctx, "evaluation")
    assert [e["budget"] for e in evals] == ctx.budgets  # every evaluation is still recorded
    assert fake.calls == (1 if shared else 2)
    assert [e["cached"] for e in evals] == [False, shared]
    assert [p.extra["search"]["cache_hits"] for p in plans] == [0, int(shared)]
    assert plans[0].extra["search"]["best_score"] == plans[1].extra["search"]["best_score"]
    json.dumps(ctx.history, allow_nan=False)


def test_the_loop_shows_evaluations_best_so_far_and_time_left(ctx, monkeypatch):
    """The progress display (a terminal's) follows every evaluation: how many are done out
    of the asker's ``total``, the best score so far and, under ``--max-seconds``, the time
    left."""
    import contextlib

    import embsearch.search_loop as loop

    shown: list[dict] = []

    class Bar:
        def add_task(self, description, total=None, info=""):
            shown.append({"description": description, "total": total})
            return 0

        def update(self, task, **kw):
            shown.append(kw)

    monkeypatch.setattr(loop, "progress_bar", lambda enabled: contextlib.nullcontext(Bar()))
    space = ctx.space
    cands = [space.uniform(2), space.uniform(8), space.uniform(4)]
    asker = FixedAsker("evo", cands)
    run_loop(asker, lambda c: c[0][0] / 100, ctx, space.full_table_bytes(), deadline=1e12)
    assert shown[0] == {"description": "evo search", "total": 3}
    assert [s["completed"] for s in shown[1:]] == [1, 2, 3]
    assert [s["info"].split()[1] for s in shown[1:]] == ["0.0200", "0.0800", "0.0800"]
    assert all(s["info"].endswith("s left") for s in shown[1:])
