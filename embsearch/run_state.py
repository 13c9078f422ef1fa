"""A search's state on disk from its first moment, and taking a killed one up again
(issue 22 items 3 and 4).

At the start of a search (before any training) the runner writes, in the run directory
it has claimed:

- ``config.json``: the run's options (rewritten, identical, when the plans are written);
- ``run.json``: the run's id (the prefix of its Optuna study names), its storage
  (``journal``: ``RUN_DIR/trials.journal``; or the ``--storage`` URL), the data
  fingerprint and the fingerprint of the options that decide what the search does;

and every finished trial goes into the storage as it finishes (:mod:`embsearch.trial_store`).
``embsearch search --resume RUN_DIR`` reads these back: a directory without ``run.json`` holds
no run, one with ``search.json`` finished its search; another dataset (data fingerprint), or
other options among :data:`IDENTITY` (budgets, controller, its parameters, ...), is refused
in one line. Device, threads, ``max_seconds`` and where trials run (executor, jobs,
address) may change on a resume.

Who resumes (:data:`RESUMABLE_FAMILIES`):

- black-box (tpe, random, cmaes, nsga2): their Optuna studies are taken up again
  (:mod:`embsearch.controllers.black_box_study`);
- evolutionary (optembed, rule): replayed: the search runs again from its seed and every
  evaluation the killed run finished is served from the storage, neither scored nor stored
  again (:class:`~embsearch.trial_store.LoopStudy`), so it repeats its choices and goes on
  where it stopped;
- RL: nis's supernet, trained alternating with its policies, is checkpointed with them
  (parameters, Adam states, baselines, generators, rewards; :mod:`embsearch.controllers.
  nis_trials`), and its step 6 on the trained supernet is replayed as the evolutionary
  searches are; autoias's supernet is checkpointed with the generators it draws from, and
  its generators are saved after every update (``RUN_DIR/generator.pt``); esapn keeps its
  finished passes and its pass in progress (``RUN_DIR/passes.pt``: model, policies, per-id
  sizes, RNG states; :mod:`embsearch.controllers.esapn_resume`);
- all but esapn load the trained supernet (``RUN_DIR/supernet.pt``) or, killed while it
  trained, continue it from its last per-epoch checkpoint (``RUN_DIR/supernet.epoch.pt``:
  model, optimiser, RNG states; :mod:`embsearch.controllers.weight_sharing`);
- differentiable (autodim, autoemb, dnis): the DARTS supernet continues from its last
  per-epoch checkpoint (``RUN_DIR/supernet.epoch.pt``, with the architecture optimiser and
  the validation batches' position; :mod:`embsearch.controllers.darts_training`);
- rule-based controllers are refused in one line (:data:`NOT_RESUMABLE` says why): they
  run no trials.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from embsearch._atomic import read_json, write_json
from embsearch.controllers.rl_state import GENERATOR_NAME, PASSES_NAME
from embsearch.controllers.weight_sharing import SUPERNET_NAME
from embsearch.errors import ConfigError, RunDirError
from embsearch.run_config import RunConfig
from embsearch.train.checkpoint import CHECKPOINT_NAME
from embsearch.trial_store import JOURNAL_NAME, TrialStore, new_run_id, open_store

RUN_NAME = "run.json"
FREE = ("device", "threads", "max_seconds", "executor", "jobs", "address")  # a resume may change
RESUMABLE_FAMILIES = ("black-box", "evolutionary", "rl", "differentiable")
NOT_RESUMABLE = {  # why the other families start again (one line each)
    "rule-based": "it runs no trials (a rule-based plan takes seconds)",
}


def identity(cfg_json: dict[str, Any]) -> dict[str, Any]:
    """The options that decide what a search does (all but :data:`FREE`)."""
    return {k: v for k, v in cfg_json.items() if k not in FREE}


def fingerprint(cfg_json: dict[str, Any], data_fingerprint: str) -> str:
    """One hash of :func:`identity` and the data fingerprint."""
    text = json.dumps([identity(cfg_json), data_fingerprint], sort_keys=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def start_run(out: Path, cfg: RunConfig, data_fingerprint: str, storage: str | None) -> TrialStore:
    """Open the run's storage and write ``config.json`` and ``run.json`` into ``out``."""
    store = open_store(storage, out, new_run_id())
    raw = cfg.to_json()
    write_json(out / "config.json", raw)
    write_json(
        out / RUN_NAME,
        {
            "run": store.run,
            "storage": store.url,
            "controller": cfg.controller,
            "data_fingerprint": data_fingerprint,
            "fingerprint": fingerprint(raw, data_fingerprint),
        },
    )
    return store


def discard_start(out: Path) -> None:
    """Remove what :func:`start_run` wrote into ``out`` (a fresh search refused before it
    wrote any plan: bad input leaves no output)."""
    for name in (
        RUN_NAME,
        "config.json",
        JOURNAL_NAME,
        JOURNAL_NAME + ".lock",
        SUPERNET_NAME,
        CHECKPOINT_NAME,
        GENERATOR_NAME,
        PASSES_NAME,
    ):
        path = out / name
        if path.is_file() or path.is_symlink():
            path.unlink()


def read_run(run_dir: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``run_dir``'s saved options and ``run.json``, refused in one line when it holds no
    run, or a run whose search has finished."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"--resume {run_dir}: no such directory")
    if not (run_dir / RUN_NAME).is_file() or not (run_dir / "config.json").is_file():
        raise RunDirError(
            f"--resume {run_dir}: it holds no search to resume (no {RUN_NAME}; a search "
            "started by `embsearch search --out` writes one)"
        )
    if (run_dir / "search.json").is_file():
        raise RunDirError(
            f"--resume {run_dir}: its search finished already; `embsearch retrain {run_dir}` "
            "trains its plan"
        )
    return read_json(run_dir / "config.json"), read_json(run_dir / RUN_NAME)


def check_same_run(
    run_dir: Path,
    cfg: RunConfig,
    saved: dict[str, Any],
    info: dict[str, Any],
    data_fingerprint: str,
    family: str,
) -> None:
    """Refuse, in one line, a resume whose data or options differ from the run's
    (``saved``, ``info``: its ``config.json`` and ``run.json``, as :func:`read_run` gives
    them)."""
    if family not in RESUMABLE_FAMILIES:
        why = NOT_RESUMABLE.get(family, "it keeps no trials to continue from")
        raise ConfigError(
            f"--resume continues black-box (tpe, random, cmaes, nsga2), evolutionary "
            f"(optembed, rule) and rl (nis, esapn, autoias) searches; {cfg.controller} "
            f"({family}) cannot: {why}; run it anew"
        )
    if info.get("data_fingerprint") != data_fingerprint:
        raise ConfigError(
            f"--resume {run_dir}: the data differ from the run's (fingerprint "
            f"{data_fingerprint}, the run's {info.get('data_fingerprint')}); resume with its data"
        )
    now = cfg.to_json()
    if fingerprint(now, data_fingerprint) != info.get("fingerprint"):
        changed = sorted(k for k in identity(now) if now.get(k) != saved.get(k))
        what = ", ".join(f"{k} {saved.get(k)!r} -> {now.get(k)!r}" for k in changed[:3])
        raise ConfigError(
            f"--resume {run_dir}: other options than the run's ({what or 'its fingerprint'}); "
            "a resume continues the same search"
        )


def resume_store(run_dir: Path, info: dict[str, Any]) -> TrialStore:
    """The run's storage, reopened."""
    return open_store(info.get("storage"), run_dir, str(info["run"]), resume=True)


def resumed_config(run_dir: str | Path, given: dict[str, Any], storage: str | None) -> RunConfig:
    """The run's saved options with the ones given on the command line laid over them
    (checked against the run by :func:`check_same_run`); ``--storage`` is refused (the
    run's own is reopened)."""
    if storage is not None:
        raise ConfigError("--resume reopens the run's own storage; leave out --storage")
    saved, _ = read_run(run_dir)
    return RunConfig.from_mapping({**saved, **given}, str(Path(run_dir) / "config.json"))
