"""Executors (issue 22 item 5): ``--executor local --jobs 2`` finds what the serial search
finds; the Ray executor on a real two-node local cluster runs trials on both nodes; bad
executor options are one line, exit 2, nothing written."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from embsearch.cli import main
from embsearch.errors import ConfigError
from embsearch.executors import TrialSpec, worker_config
from embsearch.run_config import RunConfig

pytestmark = pytest.mark.usefixtures("one_thread")

BASE = [
    "--data", "synthetic", "--budget", "15%", "--param", "supernet_epochs=1", "--epochs", "1",
    "--batch-size", "1024", "--threads", "1", "--quiet",
]  # fmt: skip
SMALL = {"synthetic_rows": 6000}  # a --config key only


def search(tmp_path: Path, name: str, *args: str) -> Path:
    cfg = tmp_path / "small.json"
    cfg.write_text(json.dumps(SMALL))
    out = tmp_path / name
    assert main(["search", "--config", str(cfg), *BASE, *args, "--out", str(out)]) == 0
    return out


def evaluations(run: Path) -> list[dict]:
    history = json.loads((run / "search.json").read_text())["history"]
    return [e for e in history if e["event"] == "evaluation"]


def plan_dims(run: Path) -> list:
    return [f["groups"] for f in json.loads((run / "plan.json").read_text())["fields"]]


def test_local_jobs_2_finds_what_serial_finds(tmp_path):
    """random search (seeded per ask, so its candidates do not depend on the order of tells),
    each trial trained from scratch: the same finished trials with the same scores and the
    same plan, with 2 workers as in this process; trials ran in worker processes."""
    args = ["--controller", "random", "--param", "trials=4", "--param", "scoring=scratch"]
    serial = search(tmp_path, "serial", *args)
    local = search(tmp_path, "local", *args, "--executor", "local", "--jobs", "2")
    pairs = [sorted((json.dumps(e["candidate"]), e["score"]) for e in evaluations(r)) for r in (serial, local)]  # fmt: skip
    assert len(pairs[0]) == 4 and pairs[0] == pairs[1]
    assert plan_dims(serial) == plan_dims(local)
    assert all("worker" not in e for e in evaluations(serial))
    workers = {e["worker"] for e in evaluations(local)}  # host:pid (one may take every trial)
    assert 1 <= len(workers) <= 2 and f"{socket.gethostname()}:{os.getpid()}" not in workers
    assert all(e["worker_seconds"] <= e["seconds"] for e in evaluations(local))


def test_tpe_on_local_jobs_asks_no_more_than_its_trials(tmp_path):
    """TPE's proposals depend on the order of tells, so with 2 in flight only the count is
    fixed: exactly ``trials`` evaluations, no candidate twice, every one within the budget."""
    run = search(
        tmp_path, "tpe", "--controller", "tpe", "--param", "trials=8",
        "--param", "n_startup_trials=4", "--executor", "local", "--jobs", "2",
    )  # fmt: skip
    evals = evaluations(run)
    budget = json.loads((run / "search.json").read_text())["budget_bytes"]
    assert len(evals) == 8
    assert len({json.dumps(e["candidate"]) for e in evals if not e["cached"]}) == sum(
        not e["cached"] for e in evals
    )
    assert all(e["bytes"] <= budget for e in evals)


def test_a_trial_spec_pickles_and_rebuilds_in_this_process(tmp_path):
    """The worker's entry point on a spec that went through pickle: the score the serial
    evaluator gives."""
    import pickle

    from embsearch.trial_worker import run_trial

    cfg = RunConfig(controller="random", controller_params={"scoring": "scratch", "trial_epochs": 1},
                    epochs=1, batch_size=1024, synthetic_rows=6000, threads=1)  # fmt: skip
    cand = ((4,),) * 12
    spec = pickle.loads(
        pickle.dumps(TrialSpec(worker_config(cfg, 1), {"scoring": "scratch"}, 0, cand))
    )
    first, again = run_trial(spec), run_trial(spec)  # the second on the warm evaluator
    assert 0.5 < first["score"] < 1 and first["score"] == again["score"]
    assert first["metrics"]["epochs_run"] == 1.0 and first["seconds"] > 0


@pytest.mark.parametrize(
    "args, words",
    [
        (["--executor", "local", "--jobs", "0"], "--jobs must be an integer >= 1"),
        (["--executor", "ray", "--jobs", "-2"], "--jobs must be an integer >= 1"),
        (["--jobs", "2"], "--jobs runs that many trials at once"),
        (["--executor", "local", "--address", "auto"], "--address names a Ray cluster"),
        (["--executor", "local", "--controller", "esapn"], "no trials to ship"),
        (["--executor", "local", "--controller", "autoias"], "round trip"),
        (["--executor", "ray", "--address", "no-port"], "HOST:PORT"),
    ],
)
def test_bad_executor_options_are_one_line(tmp_path, capsys, args, words):
    out = tmp_path / "run"
    given = args if "--controller" in args else ["--controller", "random", *args]
    argv = ["search", "--data", "synthetic", "--epochs", "1", "--quiet", *given]
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err and "Traceback" not in err
    assert not out.exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_ray_address_is_one_line_and_quick(tmp_path, capsys):
    out = tmp_path / "run"
    t0 = time.perf_counter()
    argv = ["search", *BASE, "--controller", "random", "--executor", "ray"]
    assert main([*argv, "--address", f"127.0.0.1:{free_port()}", "--out", str(out)]) == 2
    assert time.perf_counter() - t0 < 30
    err = capsys.readouterr().err.strip()
    assert "no Ray head answers there" in err and "\n" not in err
    assert not out.exists()


def test_ray_not_importable_is_one_line(monkeypatch):
    import embsearch.executors as executors
    from embsearch.controllers.registry import get_controller
    from embsearch.executors.ray_executor import RayExecutor

    monkeypatch.setattr(executors, "find_spec", lambda name: None)
    cfg = RunConfig(controller="random", executor="ray")
    with pytest.raises(ConfigError, match="Ray is not installed here"):
        executors.check_executor(cfg, get_controller("random"))
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ConfigError, match="Ray cannot be imported"):
        RayExecutor.connect({}, None, 1)


# -- a real two-node Ray cluster on this machine (issue 22's test) -----------------------
RAY_START_SECONDS = 40


def ray_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", *args]


def wait_for_nodes(address: str, n: int, timeout: float, env: dict[str, str]) -> bool:
    """Whether ``n`` nodes are alive at ``address`` within ``timeout`` seconds (asked in a
    subprocess, so this process never imports Ray)."""
    probe = (
        "import ray, sys, time; ray.init(address=sys.argv[1], log_to_driver=False, "
        "include_dashboard=False, configure_logging=False, logging_level='ERROR')\n"
        "t = time.time()\n"
        "while time.time() - t < float(sys.argv[3]):\n"
        "    if sum(x['Alive'] for x in ray.nodes()) >= int(sys.argv[2]): sys.exit(0)\n"
        "    time.sleep(0.5)\n"
        "sys.exit(1)\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", probe, address, str(n), str(timeout)],
            capture_output=True,
            timeout=timeout + 20,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def test_ray_two_node_cluster_runs_trials_on_both_nodes(tmp_path):
    """``ray start --head`` and a second ``ray start --address`` (one CPU each, a small
    object store), the search with ``--executor ray --address``: trials on both nodes, as
    many as asked; the cluster's processes are ended afterwards (each ``ray start --block``
    takes its own down when terminated)."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    token = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": uuid.uuid4().hex}  # Ray's default auth
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **token}
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths are limited
    common = ["--num-cpus", "1", "--object-store-memory", "80000000", "--disable-usage-stats"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    nodes: list[subprocess.Popen] = []
    try:
        head = ["--head", "--port", str(port), "--include-dashboard=false", "--temp-dir", temp]
        nodes.append(subprocess.Popen(ray_cmd(*head, *common), **quiet))
        time.sleep(2)  # the second node retries until the head's GCS answers
        nodes.append(subprocess.Popen(ray_cmd("--address", address, *common), **quiet))
        if not wait_for_nodes(address, 2, RAY_START_SECONDS, env):
            pytest.skip(f"a two-node Ray cluster did not come up within {RAY_START_SECONDS} s here")
        out = tmp_path / "ray"
        cfg = tmp_path / "small.json"
        cfg.write_text(json.dumps(SMALL))
        argv = [
            sys.executable, "-m", "embsearch", "search", "--config", str(cfg), *BASE,
            "--controller", "random", "--param", "trials=6", "--executor", "ray",
            "--address", address, "--out", str(out),
        ]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=180, env=env)
        assert done.returncode == 0, done.stderr
        assert "ray" not in done.stderr.lower()  # quiet: nothing of Ray's in the terminal
        evals = evaluations(out)
        assert len(evals) == 6
        assert len({e["worker"].split()[0] for e in evals}) == 2  # two Ray node ids
    finally:
        for proc in reversed(nodes):
            proc.terminate()
        for proc in reversed(nodes):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(temp, ignore_errors=True)  # the session's logs and sockets


def _children(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (read from /proc: the parent of each process)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] != "Z":  # a zombie has ended
                parents[int(entry.name)] = int(fields[1])
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, parent in parents.items() if parent == p]
        out += kids
        todo += kids
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table in /proc")
def test_a_killed_local_search_leaves_no_worker(tmp_path):
    """SIGTERM to a search with ``--executor local --jobs 2`` while its trials run: its worker
    processes end with it (the pool's queues alone would leave them waiting for work)."""
    cfg = tmp_path / "small.json"
    cfg.write_text(json.dumps(SMALL))
    argv = [sys.executable, "-m", "embsearch", "search", "--config", str(cfg), *BASE]
    argv += ["--controller", "random", "--param", "scoring=scratch", "--param", "trials=64"]
    argv += ["--executor", "local", "--jobs", "2", "--out", str(tmp_path / "run")]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(_children(proc.pid)) < 3:
            time.sleep(0.2)  # the forkserver and two workers
        workers = _children(proc.pid)
        assert len(workers) >= 3 and proc.poll() is None, "the workers never started"
        proc.terminate()
        proc.wait(timeout=30)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.2)
        assert not [p for p in workers if _alive(p)]
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in workers:  # a failing run leaves nothing behind either
            if _alive(p):
                os.kill(p, 9)
