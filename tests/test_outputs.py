"""Output safety (issue 18, section 1): nothing a user has is lost, the output location is
checked before any compute, runs cut short can still be trained and exported, stale
staging is cleaned up, and files follow the umask."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from embsearch.cli import main
from embsearch.controllers import registry
from embsearch.controllers.base import Controller

LOCK_NAME = ".embsearch.lock"  # (literal, so the file also runs against older code)

FAST = ["--epochs", "1", "--batch-size", "1024", "--quiet"]
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(autouse=True)
def _small_synthetic(monkeypatch):
    from embsearch import run_config

    monkeypatch.setattr(run_config.RunConfig, "synthetic_rows", 3000)


def small_config(tmp_path: Path) -> str:
    """A --config for subprocesses (the autouse fixture does not reach them)."""
    path = tmp_path / "small.json"
    path.write_text(json.dumps({"synthetic_rows": 3000, "epochs": 1, "batch_size": 1024}))
    return str(path)


def run_cli_script(code: str, *args: str, wait: bool = True) -> subprocess.Popen:
    """``embsearch`` in a fresh process, after ``code`` (which may patch the library)."""
    script = f"import sys\n{code}\nfrom embsearch.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    if wait:
        proc.wait(timeout=300)
    return proc


def wait_for(path: Path, proc: subprocess.Popen, seconds: float = 120) -> None:
    end = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.05)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def no_compute(monkeypatch):
    """Any search that starts computing fails the test."""

    def refuse(self, ctx):
        raise AssertionError("the search started although its --out was unusable")

    monkeypatch.setattr(Controller, "search_budgets", refuse)


# ---- items 1 and 2: --out is checked and claimed before the compute -------------------


def test_concurrent_search_is_refused_and_a_dropped_file_survives(tmp_path, capsys):
    """A second search on a directory a first one is writing gets one line and exit 2; a
    file the user puts into that directory meanwhile is still there afterwards."""
    out, started, go = tmp_path / "run", tmp_path / "started", tmp_path / "go"
    hold = (
        "import pathlib, time\n"
        "from embsearch.controllers.base import Controller\n"
        "orig = Controller.search_budgets\n"
        "def held(self, ctx):\n"
        f"    pathlib.Path({str(started)!r}).touch()\n"
        f"    while not pathlib.Path({str(go)!r}).exists():\n"
        "        time.sleep(0.05)\n"
        "    return orig(self, ctx)\n"
        "Controller.search_budgets = held\n"
    )
    first = run_cli_script(
        hold, "search", "--config", small_config(tmp_path), "--out", str(out), "--quiet",
        wait=False,
    )  # fmt: skip
    try:
        wait_for(started, first)
        assert main(["search", "--out", str(out), *FAST]) == 2
        err = one_line_error(capsys)
        assert f"pid {first.pid}" in err and "being written" in err
        for cmd in (["export", str(out), "--out", str(tmp_path / "exp")], ["retrain", str(out)]):
            assert main(cmd) == 2  # a reader is told the run is still being written
            assert f"being written by another embsearch process (pid {first.pid})" in (
                one_line_error(capsys)
            )
        (out / "notes.txt").write_text("mine")
        go.touch()
        stdout, stderr = first.communicate(timeout=300)
    finally:
        go.touch()
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, stderr
    assert (out / "notes.txt").read_text() == "mine"
    assert {"plan.json", "model.pt", "config.json", "search.json"} <= {
        p.name for p in out.iterdir()
    }
    assert not (out / LOCK_NAME).exists()


def _symlink(tmp_path: Path) -> Path:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out").symlink_to(tmp_path / "elsewhere")
    return tmp_path / "out"


def _file(tmp_path: Path) -> Path:
    (tmp_path / "out").write_text("a file of mine")
    return tmp_path / "out"


def _read_only_parent(tmp_path: Path) -> Path:
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    return tmp_path / "ro" / "out"


BAD_OUTS = [
    pytest.param(_symlink, "symbolic link", id="symlink"),
    pytest.param(_file, "existing file", id="file"),
    pytest.param(
        _read_only_parent,
        "not writable",
        id="read-only-parent",
        marks=pytest.mark.skipif(ROOT, reason="root may write anywhere"),
    ),
]


@pytest.mark.parametrize(("make", "needle"), BAD_OUTS)
def test_search_refuses_bad_out_before_computing(tmp_path, capsys, no_compute, make, needle):
    out = make(tmp_path)
    assert main(["search", "--out", str(out), *FAST]) == 2
    assert needle in one_line_error(capsys)
    if needle == "symbolic link":
        assert list((tmp_path / "elsewhere").iterdir()) == []
    if needle == "existing file":
        assert out.read_text() == "a file of mine"


@pytest.mark.parametrize(("make", "needle"), BAD_OUTS)
def test_export_refuses_bad_out_before_reading_the_run(tmp_path, capsys, make, needle):
    out = make(tmp_path)  # the run does not even exist: --out is checked first
    assert main(["export", str(tmp_path / "no-run"), "--out", str(out)]) == 2
    assert needle in one_line_error(capsys)


@pytest.mark.parametrize(("make", "needle"), BAD_OUTS)
def test_prepare_refuses_bad_out_before_reading(tmp_path, capsys, make, needle):
    out = make(tmp_path)
    if needle == "symbolic link":  # a dangling link: nothing "exists" at --out
        out.unlink()
        out.symlink_to(tmp_path / "nowhere")
    args = ["data", "prepare", "--format", "synthetic", "--rows", "2000", "--out", str(out)]
    assert main(args) == 2
    assert needle in one_line_error(capsys)
    assert not (tmp_path / "nowhere").exists()


# ---- items 4 and 5: a run cut short is saved, and retrain makes it exportable ----------


def test_export_after_ctrl_c_works_once_retrained(tmp_path, monkeypatch, capsys):
    """Ctrl-C during an evolutionary search: the message says `embsearch retrain RUN`
    trains the plan; after it, export takes the run."""
    from test_interrupt import Interrupting

    monkeypatch.setitem(registry.BUILTIN, "interrupting", f"{Interrupting.__module__}:Interrupting")
    out = tmp_path / "run"
    args = ["search", "--controller", "interrupting", "--budget", "30%", "--out", str(out)]
    assert main([*args, *FAST]) == 0
    assert f"`embsearch retrain {out}` trains it" in capsys.readouterr().out
    assert json.loads((out / "plan.json").read_text())["extra"]["trained"] is False
    assert main(["export", str(out), "--out", str(tmp_path / "exp")]) == 2
    assert "retrain" in one_line_error(capsys)
    assert main(["retrain", str(out), "--quiet", "--epochs", "1"]) == 0
    plan = json.loads((out / "plan.json").read_text())
    assert plan["extra"]["trained"] is True and "val_auc" in plan["metrics"]
    assert main(["export", str(out), "--out", str(tmp_path / "exp")]) == 0
    assert (tmp_path / "exp" / "weights.safetensors").is_file()


def test_plan_survives_a_kill_during_the_final_training(tmp_path, capsys):
    """kill -9 during the final training: plan.json (untrained), config.json and
    search.json are there; retrain adds the weights and export takes the run."""
    out = tmp_path / "run"
    kill = (
        "import os, signal\n"
        "from embsearch.context import SearchContext\n"
        "SearchContext.train_plan = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = run_cli_script(
        kill, "search", "--config", small_config(tmp_path), "--out", str(out), "--quiet"
    )
    assert killed.returncode == -9, killed.communicate()
    plan = json.loads((out / "plan.json").read_text())
    assert plan["extra"]["trained"] is False and plan["metrics"] == {}
    assert (out / "config.json").is_file() and (out / "search.json").is_file()
    assert not (out / "model.pt").exists()
    assert main(["search", "--out", str(out), *FAST]) == 2  # the saved search is kept
    assert "already holds files" in one_line_error(capsys)
    assert main(["retrain", str(out), "--quiet", "--epochs", "1"]) == 0
    assert json.loads((out / "plan.json").read_text())["extra"]["trained"] is True
    assert main(["export", str(out), "--out", str(tmp_path / "exp")]) == 0
    assert not (out / LOCK_NAME).exists()


def test_ctrl_c_during_the_final_training_says_where_the_plan_is(tmp_path, monkeypatch, capsys):
    from embsearch.context import SearchContext

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(SearchContext, "train_plan", interrupt)
    out = tmp_path / "run"
    assert main(["search", "--out", str(out), *FAST]) == 130
    err = capsys.readouterr().err
    assert f"saved untrained in {out}; `embsearch retrain RUN_DIR` trains it" in err
    assert json.loads((out / "plan.json").read_text())["extra"]["trained"] is False
    assert not (out / LOCK_NAME).exists()


# ---- item 6: staging left by killed processes is removed, with one warning -------------


def test_stale_staging_of_a_dead_process_is_removed_with_a_warning(tmp_path, capsys):
    stale = tmp_path / f".data.tmp-{dead_pid()}-0123abcd"
    (stale / "vocab").mkdir(parents=True)
    (stale / "train_x.npy").write_bytes(b"\0" * 4096)
    live = tmp_path / f".data.tmp-{os.getpid()}-89abcdef"  # a live process's: kept
    live.mkdir()
    mine = tmp_path / ".data.tmp-notes"  # not a name embsearch writes: kept
    mine.mkdir()
    csv = tmp_path / "in.csv"
    csv.write_text("a,b,y\n" + "".join(f"{i % 7},{i % 5},{i % 2}\n" for i in range(400)))
    args = ["data", "prepare", "--format", "csv", "--input", str(csv), "--label", "y"]
    assert main([*args, "--out", str(tmp_path / "data")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "removed" in line]
    assert len(warnings) == 1 and "killed embsearch process" in warnings[0]
    assert not stale.exists() and live.is_dir() and mine.is_dir()
    assert (tmp_path / "data" / "schema.json").is_file()


# ---- item 9: files and directories follow the umask ------------------------------------


def modes_follow_umask_022(*tops: Path) -> None:
    for top in tops:
        for path in [top, *top.rglob("*")]:
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == (0o755 if path.is_dir() else 0o644), (path, oct(mode))


def test_outputs_follow_the_umask(tmp_path):
    """Under umask 022 every file is 0644 and every directory 0755: a dataset, a run with
    two budgets, and an export (its vocabularies too, even copied from a dataset that an
    older version wrote 0600/0700)."""
    old = os.umask(0o022)
    try:
        rng = np.random.default_rng(0)
        rows = "".join(
            f"{rng.integers(20)},{rng.integers(9)},{rng.integers(2)}\n" for _ in range(600)
        )
        (tmp_path / "in.csv").write_text("a,b,y\n" + rows)
        data, run, exp = tmp_path / "data", tmp_path / "run", tmp_path / "exp"
        prep = ["data", "prepare", "--format", "csv", "--input", str(tmp_path / "in.csv")]
        assert main([*prep, "--label", "y", "--out", str(data)]) == 0
        search = ["search", "--data", str(data), "--budget", "30%", "--budget", "60%"]
        assert main([*search, "--out", str(run), *FAST]) == 0
        modes_follow_umask_022(data, run)
        for path in (data / "vocab").rglob("*"):
            path.chmod(0o600)
        (data / "vocab").chmod(0o700)
        assert main(["export", str(run / "budget-30pct"), "--out", str(exp)]) == 0
    finally:
        os.umask(old)
    assert (exp / "vocab" / "index.json").is_file()
    modes_follow_umask_022(exp)
