"""Where a run's trials live: an Optuna storage (issue 22 item 3).

Every evaluation an ask/tell controller finishes is a trial of an Optuna study in the run's
storage, written as it finishes (the black-box controllers' own studies; see
:mod:`embsearch.controllers.black_box`), so a killed search keeps what it finished and
``embsearch search --resume RUN_DIR`` continues from it.

- default: a journal file, ``RUN_DIR/trials.journal`` (Optuna's ``JournalStorage`` over a
  ``JournalFileBackend``: an append-only log of operations, safe on shared file systems).
  The run directory is claimed in place (:func:`embsearch.out_dir.claim_dir`; it is not
  staged under another name), so the journal lives in it from the first trial on and
  survives a kill. Optuna locks the journal for each write with a symbolic link,
  ``trials.journal.lock``; a process killed inside a write leaves it, and a resume (which
  holds the run directory's own lock, so no other embsearch process writes there) removes
  it;
- ``--storage URL``: an RDB URL Optuna opens (``sqlite:///runs.db``,
  ``postgresql://user@host/db``), shared by a team; ``run.json`` records the URL.

Study names are ``<run>/<controller>/<phase>/budget-<bytes>``, ``<run>`` a random id
written in ``run.json``, so many runs share one database.

A controller that keeps no study of its own (the evolutionary and RL ones) has each loop's
evaluations written by :class:`LoopStudy`, which on a resume also hands them back
("replay", issue 22 item 4): the resumed search runs again from the same seed and a
candidate the killed run finished is served from the storage instead of being scored
again (and not stored twice), so given the same scores it repeats its choices and
continues where it stopped. ``optuna-dashboard
sqlite:///runs.db`` or ``optuna-dashboard RUN_DIR/trials.journal`` shows them.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.storages import BaseStorage
from optuna.trial import TrialState, create_trial

from embsearch.errors import ConfigError

JOURNAL_NAME = "trials.journal"
DEFAULT_STORAGE = "journal"  # what run.json records for RUN_DIR/trials.journal


@dataclass
class TrialStore:
    """A run's Optuna storage, the prefix of its study names and whether it resumes."""

    storage: BaseStorage
    url: str  # DEFAULT_STORAGE or the RDB URL
    run: str
    resume: bool = False
    run_dir: Path | None = None  # where checkpoints beside the trials go (a supernet's)

    def study_name(self, controller: str, budget: int, phase: str = "search") -> str:
        return f"{self.run}/{controller}/{phase}/budget-{int(budget)}"


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def open_store(url: str | None, run_dir: Path, run: str, *, resume: bool = False) -> TrialStore:
    """Open ``url`` (``None`` or :data:`DEFAULT_STORAGE`: the journal in ``run_dir``); a
    URL that cannot be opened is refused in one line."""
    if url in (None, DEFAULT_STORAGE):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(run_dir).resolve() / JOURNAL_NAME  # absolute: the lock links to it
        if resume:  # the caller holds the run directory: a journal lock left is a dead writer's
            stale = path.with_name(JOURNAL_NAME + ".lock")
            if stale.is_symlink():
                stale.unlink()
        backend = JournalFileBackend(str(path))
        return TrialStore(JournalStorage(backend), DEFAULT_STORAGE, run, resume, Path(run_dir))
    if "://" not in url:
        raise ConfigError(
            f"--storage {url!r} is not a database URL; give one such as sqlite:///runs.db "
            "(without --storage the run keeps its trials in RUN_DIR/trials.journal)"
        )
    try:
        storage = optuna.storages.RDBStorage(url)
    except Exception as exc:  # SQLAlchemy raises many types, with long messages
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ConfigError(f"--storage {url} cannot be opened: {why}") from None
    return TrialStore(storage, url, run, resume, Path(run_dir))


RAW_SCORE = "raw_score"  # user attr of a FAIL trial: its non-finite score ("nan", "-inf")
CACHED = "cached"  # user attr: the loop answered it from its memo (no scoring)

Dims = tuple[tuple[int, ...], ...]  # a candidate: one dim per (field, group)


class LoopStudy:
    """One loop's evaluations as trials of ``store``'s study ``name``: one categorical
    parameter per (field, group) (``names[f][g]``, e.g. ``<field>/<group>``, over
    ``choices``), the score as its value (non-finite: ``FAIL``, the score in
    :data:`RAW_SCORE`), the loop's facts as user attributes. On a resume (``store.resume``)
    the study a killed run left is read back for :meth:`replayed`."""

    def __init__(
        self, store: TrialStore, name: str, names: Sequence[Sequence[str]], choices: Sequence[int]
    ) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(
            storage=store.storage, study_name=name, direction="maximize", load_if_exists=True
        )
        self.names = [list(gs) for gs in names]
        self.dist = CategoricalDistribution(list(choices))
        self.left: dict[Dims, list[tuple[float, bool]]] = {}
        if store.resume:
            for t in self.study.get_trials(deepcopy=False):
                cand = tuple(tuple(int(t.params[n]) for n in gs) for gs in self.names)
                score = t.value if t.state == TrialState.COMPLETE else None
                raw = float(t.user_attrs.get(RAW_SCORE, "nan")) if score is None else score
                self.left.setdefault(cand, []).append((float(raw), bool(t.user_attrs.get(CACHED))))

    @property
    def replaying(self) -> int:
        """Finished trials of the killed run not handed back yet."""
        return sum(len(v) for v in self.left.values())

    def replayed(self, cand: Dims) -> tuple[float, bool] | None:
        """The killed run's next finished evaluation of ``cand`` (its score, and whether it
        was a memo hit), taken off the list; ``None``: none left (score it)."""
        queue = self.left.get(cand)
        return queue.pop(0) if queue else None

    def add(self, cand: Dims, score: float, facts: dict[str, Any]) -> None:
        """Store one finished evaluation."""
        params = {n: int(d) for gs, dims in zip(self.names, cand) for n, d in zip(gs, dims)}
        ok = math.isfinite(score)
        attrs = {k: v for k, v in facts.items() if v is not None}
        if not ok:
            attrs[RAW_SCORE] = str(float(score))
        self.study.add_trial(
            create_trial(
                params=params,
                distributions=dict.fromkeys(params, self.dist),
                value=float(score) if ok else None,
                state=TrialState.COMPLETE if ok else TrialState.FAIL,
                user_attrs=attrs,
            )
        )
