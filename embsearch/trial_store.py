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
written in ``run.json``, so many runs share one database. ``optuna-dashboard
sqlite:///runs.db`` or ``optuna-dashboard RUN_DIR/trials.journal`` shows them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.storages import BaseStorage

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
