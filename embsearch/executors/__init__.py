"""Where a search's trials run (issue 22 item 5): ``--executor serial | local | ray``.

- ``serial`` (the default): one trial at a time in the search's own process
  (:class:`~embsearch.search_loop.InProcess`), exactly as before executors existed;
- ``local``: ``--jobs N`` worker processes on this machine (:mod:`.local`);
- ``ray``: Ray tasks on a Ray cluster (:mod:`.ray_executor`): ``--address auto`` (the cluster
  ``ray start`` runs on this machine), ``--address HOST:PORT`` (a head elsewhere), or none
  (a private one-machine cluster for this search). Ray is imported there only.

The search loop (:func:`embsearch.search_loop.run_loop`) keeps up to ``slots`` trials in
flight and drives the controller's own ask/tell (for the black-box controllers, Optuna's
sampler and the run's study): the project's ask/tell drives the cluster, no Tune scheduler
or searcher in between. A trial travels as a :class:`TrialSpec` (the run's options, the
controller's recipe, the trial id and candidate: all picklable) and is rebuilt in the
worker by :func:`embsearch.trial_worker.run_trial`, which loads the prepared dataset, builds
the space, the backbone and the controller's evaluator from the options (once per worker
process: a warm worker keeps them) and scores the candidate. Only controllers whose
evaluator can be rebuilt from files (``remote_trials``) can leave the search's process:

- black-box (tpe, random, cmaes, nsga2): trials trained from scratch, or scored with the
  saved supernet's inherited weights;
- evolutionary: optembed's evolution and rule's estimator samples (step 3), scored with the
  saved supernet (``RUN_DIR/supernet.pt``); their final checks, and rule's evolution over
  its fitted estimator, stay in the search's process (cheaper than a round trip);
- RL: nis's step 6 (its policies' samples on the trained supernet), scored with the saved
  supernet; its steps 3-5, whose rewards come from a supernet that changes between policy
  updates, stay in the search's process. esapn and autoias are refused in one line (their
  ``in_process_reason``), as are the differentiable and rule-based controllers (no trials
  to ship).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import import_module
from importlib.util import find_spec
from typing import Any

from embsearch.errors import ConfigError
from embsearch.run_config import RunConfig
from embsearch.search_spaces.base import Candidate

EXECUTORS = ("serial", "local", "ray")
WORKER = "embsearch.trial_worker:run_trial"  # the worker's entry point (above the runner)


@dataclass(frozen=True)
class TrialSpec:
    """One trial as it travels to a worker: the run's options (``config.json``'s, with the
    worker's threads), the controller's recipe for its evaluator, the id and candidate."""

    config: dict[str, Any]
    recipe: dict[str, Any]
    trial_id: int
    candidate: Candidate

    def key(self) -> str:
        """What a worker's warm evaluator depends on (the same for every trial of a budget)."""
        return json.dumps([self.config, self.recipe], sort_keys=True)


def call_worker(target: str, spec: TrialSpec) -> dict[str, Any]:
    """Run ``spec`` through the entry point ``module:function`` (imported in the worker)."""
    module, _, name = target.partition(":")
    return getattr(import_module(module), name)(spec)


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def worker_config(cfg: RunConfig, threads: int) -> dict[str, Any]:
    """The options a worker rebuilds the search from: the run's, serial, ``threads`` threads."""
    extra = {"executor": "serial", "jobs": None, "address": None, "max_seconds": None}
    return {**cfg.to_json(), **extra, "threads": int(threads)}


def check_executor(cfg: RunConfig, controller_cls: type) -> None:
    """Refuse, before any compute, options that do not go together: ``--jobs`` or
    ``--address`` without an executor that uses them, a controller whose trials cannot
    leave this process, ``--executor ray`` without Ray."""
    if cfg.executor != "ray" and cfg.address is not None:
        raise ConfigError("--address names a Ray cluster: give it with --executor ray")
    if cfg.executor == "serial":
        if cfg.jobs is not None:
            raise ConfigError(
                "--jobs runs that many trials at once: give it with --executor local or ray "
                "(--executor serial runs one at a time)"
            )
        return
    if not getattr(controller_cls, "remote_trials", False):
        why = getattr(controller_cls, "in_process_reason", None) or (
            "its rewards come from a supernet whose weights change between policy updates, so "
            "a trial cannot be rebuilt from files"
            if getattr(controller_cls, "family", None) == "rl"
            else "its evaluator cannot be rebuilt in a worker"
        )
        raise ConfigError(
            f"--executor {cfg.executor}: controller {cfg.controller} scores its trials in this "
            f"process ({why}); run it with --executor serial (tpe, random, cmaes, nsga2, "
            "optembed, rule and nis run on any executor)"
        )
    if cfg.executor == "ray" and find_spec("ray") is None:
        raise ConfigError("--executor ray: Ray is not installed here (pip install 'ray[tune]')")


def open_executor(cfg: RunConfig) -> Any:
    """The executor of ``cfg`` (``None`` for ``serial``), started: worker processes, or a
    connection to the Ray cluster (an unreachable ``--address`` is refused here, in one
    line). Close it with its ``close()``."""
    if cfg.executor == "serial":
        return None
    if cfg.executor == "local":
        from embsearch.executors.local import LocalExecutor

        jobs = cfg.jobs or cores()
        threads = cfg.threads or max(1, cores() // jobs)
        return LocalExecutor(worker_config(cfg, threads), jobs)
    from embsearch.executors.ray_executor import RayExecutor

    return RayExecutor.connect(worker_config(cfg, cfg.threads or 1), cfg.address, cfg.jobs)


def close_executor(ctx: Any) -> None:
    """Close ``ctx.executor`` (if any) and forget it: its workers end, a Ray connection
    is left."""
    executor, ctx.executor = getattr(ctx, "executor", None), None
    if executor is not None:
        executor.close()


@contextmanager
def closing_executor(ctx: Any) -> Iterator[None]:
    """:func:`close_executor` on the way out, however the search ends."""
    try:
        yield
    finally:
        close_executor(ctx)
