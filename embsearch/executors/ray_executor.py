"""``--executor ray``: each trial a Ray task on a Ray cluster; the only module importing Ray.

The search's ask/tell drives the cluster (issue 22 item 5 allows "the project's ask/tell
driving Tune"): the loop submits a trial as a task needing one CPU
(:func:`embsearch.trial_worker.run_trial` through :func:`_ray_trial`), waits for the first
to finish, tells it and asks again; no Tune searcher, scheduler or reporter runs, so nothing
of Tune's prints. ``--jobs`` caps the trials in flight (default: the cluster's CPUs). Ray
keeps a worker process per CPU and reuses it from task to task, and the worker keeps its
dataset and evaluator (:mod:`embsearch.trial_worker`), so only a worker's first trial pays
for them.

Quiet: usage statistics off (``RAY_USAGE_STATS_ENABLED=0``), no dashboard, workers' output
not forwarded to the terminal (``log_to_driver=False``), Ray's loggers at ERROR and left
unconfigured otherwise (``configure_logging=False``), and what Ray's C++ core writes to
stderr while connecting is dropped (it logs every retry). An address that does not answer
within about :data:`CONNECT_SECONDS` is refused in one line before anything is written.
Token authentication (Ray's default for clusters started where ``~/.ray/auth_token``
exists): Ray sends the token to ``--address auto`` by itself, to an explicit ``HOST:PORT``
only with ``RAY_AUTH_MODE=token`` set (and ``RAY_AUTH_TOKEN`` or the token file). On a cluster of
several machines, the prepared data and the run directory (a ``supernet`` scoring's
``supernet.pt``) must be at the same path on every node (a shared file system), and
embsearch installed in each node's Python.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from embsearch.errors import ConfigError
from embsearch.executors import WORKER, TrialSpec, call_worker
from embsearch.search_spaces.base import Candidate

CONNECT_SECONDS = 5.0


def _ray_trial(target: str, spec: TrialSpec) -> dict[str, Any]:
    """A Ray task: the trial, with the Ray node it ran on in ``worker``."""
    import ray

    out = call_worker(target, spec)
    out["worker"] = f"{ray.get_runtime_context().get_node_id()} {out['worker']}"
    return out


def _reachable(address: str) -> None:
    """Refuse a ``HOST:PORT`` that does not accept a connection within CONNECT_SECONDS."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"--address {address!r}: give auto or the Ray head's HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as exc:
        raise ConfigError(
            f"--address {address}: no Ray head answers there ({exc.strerror or exc}); start "
            "one with `ray start --head` or give its address"
        ) from None


@contextmanager
def _stderr_silenced() -> Iterator[None]:
    """File descriptor 2 to /dev/null for the duration (what Ray's C++ core writes there
    cannot be silenced from Python otherwise); a failure is reported in one line anyway."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class RayExecutor:
    """Trials as Ray tasks of one CPU each, at most ``slots`` in flight."""

    name = "ray"

    def __init__(self, ray: Any, config: dict[str, Any], slots: int) -> None:
        self.ray, self.config, self.slots = ray, config, int(slots)
        self.task = ray.remote(num_cpus=1)(_ray_trial)
        self.refs: dict[Any, int] = {}

    @classmethod
    def connect(cls, config: dict[str, Any], address: str | None, jobs: int | None) -> RayExecutor:
        """Join the cluster at ``address`` (``None``: start a private one of ``jobs`` CPUs)."""
        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
        try:
            import ray
        except ImportError as exc:
            raise ConfigError(f"--executor ray: Ray cannot be imported ({exc})") from None
        if address not in (None, "auto"):
            _reachable(address)
        if address is not None:  # a head that does not answer as one: give up within ~5 s
            os.environ.setdefault("RAY_gcs_server_port_wait_time_s", str(int(CONNECT_SECONDS)))
        logging.getLogger("ray").setLevel(logging.ERROR)
        try:
            with _stderr_silenced():  # Ray's C++ core logs each connection retry to fd 2
                ray.init(
                    address=address,
                    num_cpus=jobs if address is None else None,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                    logging_level=logging.ERROR,
                )
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            why = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            if address not in (None, "auto") and "RAY_AUTH_MODE" not in os.environ:
                why += " (a cluster with token authentication needs RAY_AUTH_MODE=token here)"
            raise ConfigError(f"--executor ray: cannot join the Ray cluster: {why}") from None
        slots = jobs or max(1, int(ray.cluster_resources().get("CPU", 1)))
        return cls(ray, config, slots)

    def submit(self, trial_id: int, candidate: Candidate, recipe: dict[str, Any]) -> None:
        spec = TrialSpec(self.config, recipe, trial_id, candidate)
        self.refs[self.task.remote(WORKER, spec)] = trial_id

    def wait(self) -> list[tuple[int, dict[str, Any]]]:
        """The trials that finished (at least one); a trial's own error is raised here."""
        ready, _ = self.ray.wait(list(self.refs), num_returns=1)
        out = []
        for ref in ready:
            trial_id = self.refs.pop(ref)
            try:
                out.append((trial_id, self.ray.get(ref)))
            except self.ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                raise cause if isinstance(cause, Exception) else exc from None
        return out

    def cancel(self) -> None:
        for ref in self.refs:
            self.ray.cancel(ref, force=True)
        self.refs.clear()

    def close(self) -> None:
        """Leave the cluster (a private one is shut down)."""
        self.refs.clear()
        self.ray.shutdown()
