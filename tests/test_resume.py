"""The run's storage and ``--resume`` (issue 22 items 3 and 4): a search killed with SIGKILL
part-way and resumed ends as an uninterrupted one (same finished trials, no duplicates,
same plan, the saved supernet loaded); bad resumes and storage URLs are one line, exit 2,
nothing overwritten."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend, JournalStorage

from embsearch.cli import main
from embsearch.controllers.black_box_study import ASK, KILLED, REPAIRED_FROM

pytestmark = pytest.mark.usefixtures("one_thread")

TRIALS = 20
ARGS = [
    "--data", "synthetic", "--budget", "15%", "--controller", "tpe",
    "--param", f"trials={TRIALS}", "--param", "n_startup_trials=8",
    "--param", "supernet_epochs=1", "--epochs", "1", "--batch-size", "1024",
    "--threads", "1", "--quiet",
]  # fmt: skip
FAST = [*ARGS[:-1], "--param", "trials=6"]  # in-process runs for the bad-input cases


def study_of(run: Path) -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(run / "trials.journal")))
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def finished_asks(run: Path) -> list[int]:
    """The ask indices of the sampled trials a run finished (killed ones left out)."""
    trials = study_of(run).get_trials(deepcopy=False)
    return sorted(
        t.user_attrs[ASK]
        for t in trials
        if t.state.is_finished() and REPAIRED_FROM not in t.user_attrs
        and not t.user_attrs.get(KILLED)
    )  # fmt: skip


def count_finished(run: Path) -> int:
    # Optuna's JournalFileBackend creates a missing journal: polling before the run writes its
    # own would put a file in a directory the run is about to check is empty
    if not (run / "trials.journal").exists():
        return 0
    try:
        return len(finished_asks(run))
    except Exception:  # not written yet, or being written
        return 0


def embsearch(*args: str, config: Path) -> list[str]:
    return [sys.executable, "-m", "embsearch", "search", *args, "--config", str(config)]


def test_killed_search_resumes_to_the_same_plan(tmp_path):
    config = tmp_path / "data.json"
    config.write_text(json.dumps({"synthetic_rows": 20000}))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(embsearch(*ARGS, "--out", str(full), config=config), check=True, env=env)
    proc = subprocess.Popen(embsearch(*ARGS, "--out", str(killed), config=config), env=env)
    try:
        while proc.poll() is None and count_finished(killed) < 4:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the search ended before it could be killed"
    before = count_finished(killed)
    assert 4 <= before < TRIALS and not (killed / "plan.json").exists()
    resumed = subprocess.run(
        [sys.executable, "-m", "embsearch", "search", "--resume", str(killed), "--quiet"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    # every ask finished once: as many finished trials as the uninterrupted run, no repeat
    assert finished_asks(killed) == finished_asks(full) == list(range(TRIALS))
    plans = [json.loads((d / "plan.json").read_text()) for d in (full, killed)]
    assert [f["dim"] for f in plans[0]["fields"]] == [f["dim"] for f in plans[1]["fields"]]
    assert plans[0]["extra"]["inherited_val_auc"] == plans[1]["extra"]["inherited_val_auc"]
    history = json.loads((killed / "search.json").read_text())["history"]
    evaluations = [e for e in history if e["event"] == "evaluation"]
    assert len(evaluations) == TRIALS and sum(bool(e.get("resumed")) for e in evaluations) >= 4
    (supernet,) = [e for e in history if e["event"] == "supernet"]
    assert supernet.get("loaded") is True  # the saved supernet, not trained again


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "done"
    assert main(["search", *FAST, "--out", str(out)]) == 0
    return out


def snapshot(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir()) if p.is_file()}


def refused(capsys, argv: list[str], *words: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


def test_bad_resumes_are_one_line_and_touch_nothing(tmp_path, capsys, finished_run):
    refused(capsys, ["search", "--resume", str(tmp_path / "nowhere")], "no such directory")
    empty = tmp_path / "empty"
    empty.mkdir()
    refused(capsys, ["search", "--resume", str(empty)], "no search to resume")
    refused(capsys, ["search", "--resume", str(finished_run)], "finished already")
    refused(capsys, ["search", *FAST], "--out")
    # a killed run (search.json not written yet), resumed with other options or data
    killed = tmp_path / "killed"
    killed.mkdir()
    for name in ("config.json", "run.json", "trials.journal"):
        (killed / name).write_bytes((finished_run / name).read_bytes())
    before = snapshot(killed)
    refused(capsys, ["search", "--resume", str(killed), "--budget", "30%"], "budgets")
    refused(capsys, ["search", "--resume", str(killed), "--param", "trials=7"], "other options")
    refused(capsys, ["search", "--resume", str(killed), "--storage", "sqlite://"], "--storage")
    raw = (killed / "run.json").read_bytes()
    info = json.loads(raw)
    (killed / "run.json").write_text(json.dumps({**info, "data_fingerprint": "other"}))
    refused(capsys, ["search", "--resume", str(killed)], "data differ")
    (killed / "run.json").write_bytes(raw)
    assert snapshot(killed) == before


def test_storage_urls(tmp_path, capsys):
    out = tmp_path / "r"
    refused(capsys, ["search", *FAST, "--out", str(out), "--storage", "runs.db"], "database URL")
    refused(
        capsys,
        ["search", *FAST, "--out", str(out), "--storage", "nosuchdb://x/y"],
        "cannot be opened",
    )
    assert not out.exists()
    url = f"sqlite:///{tmp_path / 'team.db'}"
    assert main(["search", *FAST, "--out", str(out), "--storage", url]) == 0
    info = json.loads((out / "run.json").read_text())
    assert info["storage"] == url and not (out / "trials.journal").exists()
    (summary,) = optuna.get_all_study_summaries(url)
    assert summary.study_name.startswith(info["run"] + "/tpe/") and summary.n_trials >= 6


def test_every_ask_tell_search_stores_its_evaluations(tmp_path):
    """An evolutionary search keeps no study of its own: the loop writes each evaluation
    into the run's journal as it finishes, one trial per history evaluation."""
    out = tmp_path / "evo"
    argv = [*FAST[:4], "--controller", "optembed", "--param", "population=4"]
    argv += ["--param", "generations=1", "--param", "top_k=2"]
    argv += ["--epochs", "1", "--batch-size", "1024", "--threads", "1", "--quiet"]
    assert main(["search", *argv, "--out", str(out)]) == 0
    storage = JournalStorage(JournalFileBackend(str(out / "trials.journal")))
    run = json.loads((out / "run.json").read_text())["run"]
    history = json.loads((out / "search.json").read_text())["history"]
    for phase in ("search", "final"):
        events = [e for e in history if e["event"] == "evaluation" and e["phase"] == phase]
        (name,) = [
            s.study_name
            for s in optuna.get_all_study_summaries(storage)
            if s.study_name.startswith(f"{run}/optembed/{phase}/")
        ]
        trials = optuna.load_study(study_name=name, storage=storage).trials
        assert len(trials) == len(events) > 0
        assert [t.value for t in trials] == [e["score"] for e in events]


def test_a_search_refused_after_its_start_leaves_nothing(tmp_path, capsys, monkeypatch):
    """config.json, run.json and the journal are written when the search starts; a plan
    refused at the end (it keeps no embedding) takes them away again with the directory."""
    (tmp_path / "zero_ctrl.py").write_text(
        "from embsearch import Controller\n"
        "class Zero(Controller):\n"
        "    name, family, paper = 'zero', 'custom', 'none'\n"
        "    def search(self, ctx):\n"
        "        return self.make_plan(ctx, tuple((0,) * len(g) for g in ctx.space.groups))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "run"
    argv = [*FAST[:4], "--candidates", "0,4,16", "--controller", "zero_ctrl:Zero", "--quiet"]
    refused(capsys, ["search", *argv, "--out", str(out)], "no embedding")
    assert not out.exists()
