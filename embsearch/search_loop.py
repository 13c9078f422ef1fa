"""The one shared ask/tell loop: every sample-based controller's candidates go through it.

``run_loop`` repeats ``ask_trial() -> evaluator(candidate) -> tell_trial(trial id, metrics)``
and records
every evaluation in the run's history (``ctx.record``; the runner writes it to
``search.json``) as ``{"event": "evaluation", "candidate", "bytes", "score", "seconds", ...}``.
It never keeps a candidate over the budget (such a candidate is recorded as ``rejected``
and told ``-inf``), stops when the controller is done, when ``ctx.max_seconds`` has run out
(after at least one evaluation) or on Ctrl-C, and in every case returns the best candidate
so far in a :class:`LoopResult` whose ``stop_reason`` says why it stopped. (Ctrl-C during a
controller's ``prepare``, e.g. supernet training, is not caught: there is no candidate yet.)

The multi-budget driver above it, ``AskTellController.search_budgets``
(:mod:`embsearch.controllers.base`), runs ``prepare`` once, then ``start`` / this loop /
``finish`` per budget; a ``cache`` it passes shares scores across budgets. This module is
the engine below the controllers and imports none of them: ``AskTell`` is the protocol it
drives.

Trials have ids (issue 22 item 2): ``ask_trial()`` returns a :class:`Trial` (an id and a
candidate) or ``None`` ("nothing now": e.g. an evolution whose generation is out), and
``tell_trial(trial_id, metrics)`` reports the trial's metrics dict (``score``, higher is
better; ``bytes``; the evaluator's ``last_metrics`` such as ``val_auc``), so several trials
may be in flight and a multi-objective controller reads more than one number. By default
the loop runs one trial at a time in this process (:class:`InProcess`, the serial
executor); "nothing now" with nothing in flight is an error. An asker with only ``ask() -> candidate`` / ``tell(candidate, score)`` is driven
through :func:`trials_of`, which numbers its trials; with it the loop records exactly what
it recorded before trial ids.

A resumed controller (``--resume``) hands the loop the trials a killed run finished
(``resumed_trials() -> [(candidate, score)]``): they are recorded as evaluations marked
``"resumed": true`` and count as this loop's first, so the best is kept over both runs.

With a storage in the context, :func:`trial_recorder` also writes every evaluation into
the run's Optuna storage as it finishes (issue 22 item 3); on a resume, a candidate the
killed run finished in this loop's study is served from there (recorded ``"resumed":
true``, not scored, not stored again: :class:`~embsearch.trial_store.LoopStudy`), so an
evolutionary search replayed from its seed continues where it stopped (item 4).

With an executor in the context (``ctx.executor``, a :class:`TrialExecutor`: worker
processes or a Ray cluster, :mod:`embsearch.executors`; issue 22 item 5), trials run there,
not through ``evaluator``: the loop keeps up to ``executor.slots`` trials in flight, asks
until the asker answers "nothing now" or the slots are full, and tells each result as it
comes back (:func:`_drive_parallel`). A worker rebuilds the evaluator from the asker's
``trial_recipe(ctx, budget)`` (a picklable dict); each evaluation also records the worker's
own seconds (``worker_seconds``) and where it ran (``worker``).

Memoised scores are recorded like any evaluation, marked ``"cached": true`` (with no
metrics and ~0 ``seconds``); ``LoopResult.cache_hits`` counts them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from embsearch.context import SearchContext
from embsearch.errors import ConfigError
from embsearch.evaluator import Evaluator
from embsearch.search_spaces.base import Candidate, SearchSpace
from embsearch.train.progress import progress_bar
from embsearch.trial_store import LoopStudy

STOP_REASONS = ("done", "time", "interrupted", "max_evals")


class AskTell(Protocol):
    """What the loop drives: an ``AskTellController`` or any small sampler."""

    name: str

    def ask(self) -> Candidate | None: ...

    def tell(self, candidate: Candidate, score: float) -> None: ...

    def done(self) -> bool: ...


@dataclass(frozen=True)
class Trial:
    """One asked candidate with the id its ``tell_trial`` names."""

    id: int
    candidate: Candidate


class TrialExecutor(Protocol):
    """Runs trials away from the loop (:mod:`embsearch.executors`): ``submit`` one,
    ``wait`` for at least one to finish (``[(trial id, result)]``, the result's ``score``,
    ``metrics``, ``seconds`` in the worker and ``worker``), ``cancel`` the rest."""

    name: str
    slots: int

    def submit(self, trial_id: int, candidate: Candidate, recipe: dict[str, Any]) -> None: ...

    def wait(self) -> list[tuple[int, dict[str, Any]]]: ...

    def cancel(self) -> None: ...


class InProcess:
    """The serial executor: one trial at a time, scored here by ``evaluator``."""

    name, slots = "serial", 1

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator
        self.queued: list[tuple[int, Candidate]] = []

    def submit(self, trial_id: int, candidate: Candidate, recipe: dict[str, Any]) -> None:
        self.queued.append((trial_id, candidate))

    def wait(self) -> list[tuple[int, dict[str, Any]]]:
        trial_id, cand = self.queued.pop(0)
        score = float(self.evaluator(cand))
        metrics = getattr(self.evaluator, "last_metrics", None) or {}
        return [(trial_id, {"score": score, "metrics": dict(metrics)})]

    def cancel(self) -> None:
        self.queued.clear()


class TrialAsker(Protocol):
    """The protocol with trial ids the loop drives (see the module docstring)."""

    name: str

    def ask_trial(self) -> Trial | None: ...

    def tell_trial(self, trial_id: int, metrics: dict[str, float]) -> None: ...

    def done(self) -> bool: ...


class ByCandidate:
    """An :class:`AskTell` asker seen as a :class:`TrialAsker`: trials numbered 0, 1, ...;
    ``tell_trial`` tells the trial's candidate its ``metrics["score"]``."""

    def __init__(self, asker: AskTell) -> None:
        self.asker, self.name = asker, asker.name
        self.next_id = 0
        self.out: dict[int, Candidate] = {}
        self.total = getattr(asker, "total", None)

    def ask_trial(self) -> Trial | None:
        cand = self.asker.ask()
        if cand is None:  # "nothing now"
            return None
        trial = Trial(self.next_id, cand)
        self.next_id += 1
        self.out[trial.id] = cand
        return trial

    def tell_trial(self, trial_id: int, metrics: dict[str, float]) -> None:
        self.asker.tell(self.out.pop(trial_id), float(metrics["score"]))

    def done(self) -> bool:
        return self.asker.done()


def trials_of(asker: AskTell | TrialAsker) -> TrialAsker:
    """``asker`` itself when it asks trials with ids, else :class:`ByCandidate` around it."""
    if hasattr(asker, "ask_trial"):
        return asker  # type: ignore[return-value]
    return ByCandidate(asker)  # type: ignore[arg-type]


@dataclass
class LoopResult:
    """Outcome of one loop: the best candidate (``None`` if nothing was evaluated)."""

    best: Candidate | None
    best_score: float
    evaluations: int
    seconds: float
    stop_reason: str = "done"
    cache_hits: int = 0  # evaluations answered from the score memo (included in evaluations)

    @property
    def interrupted(self) -> bool:
        return self.stop_reason == "interrupted"

    @property
    def timed_out(self) -> bool:
        return self.stop_reason == "time"

    def summary(self) -> dict[str, Any]:
        """JSON-ready facts for ``plan.extra`` and the history."""
        return {
            "evaluations": self.evaluations,
            "seconds": round(self.seconds, 4),
            "stop_reason": self.stop_reason,
            "best_score": self.best_score if math.isfinite(self.best_score) else None,
            "interrupted": self.interrupted,
            "cache_hits": self.cache_hits,
        }


def deadline_of(ctx: SearchContext) -> float | None:
    """The ``time.perf_counter()`` value at which ``ctx.max_seconds`` runs out."""
    return None if ctx.max_seconds is None else time.perf_counter() + float(ctx.max_seconds)


def as_json(cand: Candidate) -> list[list[int]]:
    return [[int(d) for d in dims] for dims in cand]


def _finite(x: float) -> float | None:
    """JSON has no NaN/inf: record them as null."""
    return float(x) if math.isfinite(x) else None


def trial_recorder(
    asker: TrialAsker, ctx: SearchContext, space: SearchSpace, tag: dict[str, Any]
) -> LoopStudy | None:
    """With a storage in ``ctx`` (the runner's), each evaluation of an asker that keeps no
    study of its own (``stores_trials``: the black-box controllers do) becomes a finished
    trial of the study ``<run>/<controller>/<phase>/budget-<bytes>`` as it finishes
    (:class:`~embsearch.trial_store.LoopStudy`: one categorical parameter per (field,
    group), ``<field>/<group>``); on a resume the loop replays the killed run's from it."""
    store, inner = ctx.store, getattr(asker, "asker", asker)
    if store is None or getattr(inner, "stores_trials", False):
        return None
    name = store.study_name(tag["controller"], tag["budget"], tag["phase"])
    names = [
        [f"{space.schema.fields[f].name}/{g}" for g in range(len(gs))]
        for f, gs in enumerate(space.groups)
    ]
    # every key a block may take: the candidate dims in a dims-only space, option indices in
    # a composed one (the generic candidate)
    keys = {
        k for f, gs in enumerate(space.groups) for g in range(len(gs)) for k in space.all_keys(f, g)
    }
    return LoopStudy(store, name, names, sorted(keys))


def run_loop(
    asker: AskTell | TrialAsker,
    evaluator: Evaluator,
    ctx: SearchContext,
    budget: int,
    *,
    space: SearchSpace | None = None,
    deadline: float | None = None,
    max_evals: int | None = None,
    phase: str = "search",
    cache: dict[Candidate, float] | None = None,
    recipe: dict[str, Any] | None = None,
    in_process: bool = False,
) -> LoopResult:
    """Drive ``asker`` through ``evaluator`` under ``budget`` bytes (bytes from ``space``,
    default ``ctx.space``); see the module docstring for the stopping rules. ``cache``
    (candidate -> score of this ``evaluator``) memoises scores across calls; by default
    only repeats within this loop are memoised. With an executor in ``ctx``, trials run
    there, rebuilt from ``recipe`` (default: the asker's ``trial_recipe(ctx, budget)``);
    ``in_process=True`` scores them here all the same (checks cheaper than a round trip,
    or scored by something fitted in this process)."""
    space = space or ctx.space
    asker = trials_of(asker)
    tag = {
        "controller": asker.name,
        "phase": phase,
        "budget": int(budget),
        "evaluator": getattr(evaluator, "name", type(evaluator).__name__),  # plain callables too
    }
    t0 = time.perf_counter()
    cache = {} if cache is None else cache
    with progress_bar(ctx.train.progress) as bar:
        task = bar.add_task(f"{asker.name} {phase}", total=getattr(asker, "total", None), info="")

        def shown(done: int, best_so_far: float, running: int = 0) -> None:
            info = f"{running} running  " if running else ""  # trials in flight, best, time left
            info += f"best {best_so_far:.4f}" if math.isfinite(best_so_far) else ""
            if deadline is not None:
                info += f"  {max(deadline - time.perf_counter(), 0.0):.0f} s left"
            bar.update(task, completed=done, info=info)

        stored = trial_recorder(asker, ctx, space, tag)
        away = ctx.executor is not None and not in_process
        executor: TrialExecutor = ctx.executor if away else InProcess(evaluator)
        if not away:
            recipe = {}
        elif recipe is None:
            recipe_of = getattr(asker, "trial_recipe", None)
            recipe = recipe_of(ctx, budget) if recipe_of is not None else None
        if recipe is None:
            raise ConfigError(
                f"{asker.name} scores its trials in this process; it cannot run on "
                f"--executor {executor.name} (run it with --executor serial)"
            )
        best, best_score, n, hits, reason = _drive(
            asker, executor, recipe, ctx, budget, space, deadline, max_evals, cache, tag,
            shown, stored,
        )  # fmt: skip
    result = LoopResult(best, best_score, n, time.perf_counter() - t0, reason, hits)
    best_bytes = None if best is None else space.bytes_of(best)
    ctx.record(event="loop_end", **tag, **result.summary(), best_bytes=best_bytes)
    if reason in ("time", "interrupted"):
        why = "time limit (max_seconds) reached" if reason == "time" else "interrupted (Ctrl-C)"
        ctx.log(
            f"{asker.name} [{phase}, budget {budget} B]: {why} after {n} evaluations; keeping the best so far"
        )
    return result


def _resumed(
    asker: TrialAsker,
    ctx: SearchContext,
    space: SearchSpace,
    cache: dict[Candidate, float],
    tag: dict[str, Any],
) -> tuple[Candidate | None, float, int]:
    """Record the trials a killed run finished (never rerun); returns (best, its score,
    how many)."""
    best: Candidate | None = None
    best_score, n = -math.inf, 0
    resumed = getattr(asker, "resumed_trials", None)
    for cand, score in resumed() if resumed is not None else []:
        ctx.record(
            event="evaluation", **tag, index=n, candidate=as_json(cand),
            bytes=space.bytes_of(cand), score=_finite(score), resumed=True,
        )  # fmt: skip
        cache.setdefault(cand, score)
        n += 1
        if score > best_score:
            best, best_score = cand, score
    return best, best_score, n


def _drive(
    asker: TrialAsker,
    executor: TrialExecutor,
    recipe: dict[str, Any],
    ctx: SearchContext,
    budget: int,
    space: SearchSpace,
    deadline: float | None,
    max_evals: int | None,
    cache: dict[Candidate, float],
    tag: dict[str, Any],
    shown: Callable[..., None],
    stored: LoopStudy | None = None,
) -> tuple[Candidate | None, float, int, int, str]:
    """``run_loop``'s ask/score/tell repetition, up to ``executor.slots`` trials in flight
    (one for :class:`InProcess`, the serial executor); returns (best, its score,
    evaluations, cache hits, stop reason). On a stop (time, ``max_evals``) the trials in
    flight are finished and told; on Ctrl-C they are cancelled."""
    best, best_score, n = _resumed(asker, ctx, space, cache, tag)
    asked, hits, reason, stopping = 0, 0, "done", False
    flight: dict[int, tuple[Candidate, int, float]] = {}  # id -> (candidate, bytes, submitted)

    def told(trial_id: int, cand: Candidate, nbytes: int, score: float, facts: dict) -> None:
        nonlocal n, hits, best, best_score
        ctx.record(
            event="evaluation", **tag, index=n, candidate=as_json(cand), bytes=nbytes, **facts
        )
        n += 1
        hits += bool(facts["cached"])
        if stored is not None and not facts.get("resumed"):  # a replayed one is stored already
            kept = {k: v for k, v in facts.items() if k != "worker"}
            stored.add(cand, score, kept | {"bytes": nbytes})
        metrics = {
            k: v
            for k, v in facts.items()
            if isinstance(v, float) and k not in ("seconds", "worker_seconds")
        }
        asker.tell_trial(trial_id, {**metrics, "score": score, "bytes": float(nbytes)})
        if score > best_score:  # NaN never wins
            best, best_score = cand, score
        shown(n, best_score, len(flight))

    try:
        while True:
            trial: Trial | None = None
            while not stopping and len(flight) < executor.slots and not asker.done():
                if max_evals is not None and n + len(flight) >= max_evals:
                    reason, stopping = "max_evals", True
                elif deadline is not None and asked > 0 and time.perf_counter() > deadline:
                    reason, stopping = "time", True
                else:
                    trial = asker.ask_trial()
                if stopping or trial is None:
                    break
                asked += 1
                cand, nbytes = trial.candidate, space.bytes_of(trial.candidate)
                if nbytes > budget:  # rejected: recorded, told -inf, never kept
                    ctx.record(event="rejected", **tag, candidate=as_json(cand), bytes=nbytes)
                    asker.tell_trial(trial.id, {"score": -math.inf, "bytes": float(nbytes)})
                elif (again := None if stored is None else stored.replayed(cand)) is not None:
                    score, cached = again  # the killed run finished it: never scored again
                    cache[cand] = score
                    seen = {"score": _finite(score), "seconds": 0.0, "cached": cached}
                    told(trial.id, cand, nbytes, score, seen | {"resumed": True})
                elif cand in cache:  # memoised: told at once, as the serial loop does
                    score = cache[cand]
                    told(
                        trial.id,
                        cand,
                        nbytes,
                        score,
                        {"score": _finite(score), "seconds": 0.0, "cached": True},
                    )
                else:
                    flight[trial.id] = (cand, nbytes, time.perf_counter())  # submitting counts
                    executor.submit(trial.id, cand, recipe)
            if not flight:
                if stopping or asker.done():
                    break
                raise RuntimeError(f"{asker.name}: ask_trial() has nothing with no trial in flight")
            for trial_id, out in executor.wait():
                cand, nbytes, t0 = flight.pop(trial_id)
                score = float(out["score"])
                cache[cand] = score
                facts: dict[str, Any] = {k: _finite(float(v)) for k, v in out["metrics"].items()}
                facts.update(score=_finite(score), seconds=time.perf_counter() - t0, cached=False)
                if "worker" in out:  # run elsewhere: the worker's own seconds, and where
                    facts.update(worker_seconds=float(out["seconds"]), worker=str(out["worker"]))
                told(trial_id, cand, nbytes, score, facts)
    except KeyboardInterrupt:
        reason = "interrupted"
        executor.cancel()
    return best, best_score, n, hits, reason
