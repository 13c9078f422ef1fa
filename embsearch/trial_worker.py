"""A trial in a worker process (issue 22 item 5): the entry point every executor calls.

:func:`run_trial` gets a :class:`~embsearch.executors.TrialSpec` (the run's options, the
controller's recipe, the trial id and candidate), rebuilds what the search's process has
(the prepared dataset, the search space, the context with its backbone and training
options, the controller and its ``remote_evaluator``) and scores the candidate. The rebuilt
evaluator is kept for the process's next trial with the same options and recipe, so a warm
worker (a local pool's, or a Ray worker Ray reuses) pays for loading only once. It returns
the score, the evaluator's metrics, the seconds the scoring took in the worker and where it
ran (``host:pid``).
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from embsearch.controllers.registry import get_controller
from embsearch.executors import TrialSpec
from embsearch.run_config import RunConfig
from embsearch.search import build_space, controller_params, load_dataset, make_context

_WARM: dict[str, Any] = {}  # the last spec's key -> its evaluator


def rebuild(spec: TrialSpec) -> Any:
    """The evaluator of ``spec``'s run and recipe, built from the options and files."""
    cfg = RunConfig.from_mapping(dict(spec.config), "trial options")
    cls = get_controller(cfg.controller)
    controller = cls(**controller_params(cfg, cls))
    controller.check_options(width=cfg.width, candidates=cfg.candidates, projection=cfg.projection)
    controller.new_state()
    dataset = load_dataset(cfg)
    space = build_space(cfg, dataset, cls.default_space)
    ctx = make_context(cfg, dataset, space, [], progress=False)
    return controller.remote_evaluator(ctx, spec.recipe)


def run_trial(spec: TrialSpec) -> dict[str, Any]:
    """Score ``spec``'s candidate (see the module docstring)."""
    key = spec.key()
    if key not in _WARM:
        _WARM.clear()
        _WARM[key] = rebuild(spec)
    evaluator = _WARM[key]
    t0 = time.perf_counter()
    score = float(evaluator(spec.candidate))
    return {
        "score": score,
        "metrics": dict(getattr(evaluator, "last_metrics", None) or {}),
        "seconds": time.perf_counter() - t0,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }
