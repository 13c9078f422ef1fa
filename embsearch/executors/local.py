"""``--executor local``: trials in ``--jobs N`` worker processes on this machine.

A :class:`concurrent.futures.ProcessPoolExecutor` whose workers are started fresh
(``forkserver`` where the platform has it, else ``spawn``: never ``fork``, which would copy
the search's torch threads and open files), each running torch with the run's
``--threads`` or its share of the cores (cores // jobs, at least 1), so N workers do not
fight over the cores. A worker ignores Ctrl-C: the search's process gets it, stops asking
and ends the workers (their trials are retried by a ``--resume``).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from embsearch.executors import WORKER, TrialSpec, call_worker
from embsearch.search_spaces.base import Candidate

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _start_worker(threads: int) -> None:
    """A worker ignores Ctrl-C, ends with the search's process, and its native libraries
    (OpenMP, MKL, OpenBLAS: numpy's and torch's) use ``threads`` threads, set before torch is
    imported there (as Ray does)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    parent = multiprocessing.parent_process()
    if parent is not None:  # a search killed by a signal leaves no worker behind
        threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent: multiprocessing.process.BaseProcess) -> None:
    """End this worker when the search's process ends (the pool's queues do not tell a
    worker of a parent killed by SIGTERM or SIGKILL: it would wait for work forever)."""
    parent.join()
    os._exit(1)


class LocalExecutor:
    """``jobs`` worker processes; ``config`` is the options every trial is rebuilt from."""

    name = "local"

    def __init__(self, config: dict[str, Any], jobs: int) -> None:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        self.config, self.slots = config, int(jobs)
        threads = int(config["threads"])
        self.pool = ProcessPoolExecutor(
            self.slots, mp_context=context, initializer=_start_worker, initargs=(threads,)
        )
        self.futures: dict[Future, int] = {}

    def submit(self, trial_id: int, candidate: Candidate, recipe: dict[str, Any]) -> None:
        spec = TrialSpec(self.config, recipe, trial_id, candidate)
        self.futures[self.pool.submit(call_worker, WORKER, spec)] = trial_id

    def wait(self) -> list[tuple[int, dict[str, Any]]]:
        """The trials that finished (at least one); a trial's error is raised here."""
        done, _ = wait(list(self.futures), return_when=FIRST_COMPLETED)
        return [(self.futures.pop(f), f.result()) for f in done]

    def cancel(self) -> None:
        """Drop the trials in flight and end the workers now (Ctrl-C)."""
        self.futures.clear()
        for proc in list(getattr(self.pool, "_processes", {}).values()):  # no public handle
            proc.terminate()
        self.close()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
