"""Evolutionary searches resume (issue 22 item 4): an optembed or rule search killed with
SIGKILL part-way through its evolution (the process kills itself while scoring its
``KILL_AFTER``-th candidate of the budget, so the point is exact) and resumed with
``--resume`` ends with as many trials in the run's storage as an uninterrupted run, none
scored twice, and the same plan under a seed; the resumed run replays the killed run's
finished evaluations (``resumed: true``) and loads its saved supernet. The optembed run is
first also killed while its supernet trains (once its epoch-1 checkpoint is written): the
next run continues the supernet from that checkpoint to the uninterrupted run's weights.
Other families refuse ``--resume`` in one line that says why."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend, JournalStorage

from embsearch.cli import main
from embsearch.run_config import RunConfig
from embsearch.run_state import start_run

KILLING = '''
import os, signal


class Killing:
    """Dies by SIGKILL while scoring the KILL_AFTER-th candidate (env) the loop asks for."""

    def evaluator(self, ctx, budget):
        inner = super().evaluator(ctx, budget)
        after = int(os.environ.get("KILL_AFTER", "0"))
        if not after:
            return inner
        calls = []

        def scored(cand):
            calls.append(cand)
            if len(calls) == after:
                os.kill(os.getpid(), signal.SIGKILL)
            out = inner(cand)
            if hasattr(inner, "last_metrics"):
                scored.last_metrics = inner.last_metrics
            return out

        scored.name = getattr(inner, "name", type(inner).__name__)
        return scored
'''  # a plugin module's mixin (tests/test_rl_resume.py's NIS uses it too)

PLUGIN = (
    KILLING
    + """
from embsearch.controllers.optembed import OptEmbed
from embsearch.controllers.rule import Rule


class KillingOptEmbed(Killing, OptEmbed):
    pass


class KillingRule(Killing, Rule):
    pass
"""
)

COMMON = [
    "--data", "synthetic", "--budget", "15%", "--epochs", "1", "--batch-size", "1024",
    "--threads", "1", "--quiet",
    "--param", "population=6", "--param", "generations=3", "--param", "top_k=3",
]  # fmt: skip
CONTROLLERS = {  # plugin, its options, whether a first kill comes while the supernet trains
    "optembed": ("killing_evo:KillingOptEmbed", ["--param", "supernet_epochs=3"], True),
    "rule": (
        "killing_evo:KillingRule",
        ["--param", "supernet_epochs=1", "--param", "estimator_samples=8"],
        False,
    ),
}
KILL_AFTER = 5


def journal_trials(run: Path) -> dict[str, list]:
    """Every study of the run's journal: phase/budget -> its trials."""
    storage = JournalStorage(JournalFileBackend(str(run / "trials.journal")))
    return {
        s.study_name.split("/", 2)[2]: optuna.load_study(
            study_name=s.study_name, storage=storage
        ).get_trials(deepcopy=False)
        for s in optuna.get_all_study_summaries(storage)
    }


def killed_while_training(argv: list[str], env: dict[str, str], run: Path) -> None:
    """Run ``argv`` and SIGKILL it as soon as its supernet's first checkpoint exists."""
    proc = subprocess.Popen(argv, env=env)
    try:
        while proc.poll() is None and not (run / "supernet.epoch.pt").exists():
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the search ended before it could be killed"
    assert not (run / "supernet.pt").exists()


@pytest.mark.parametrize("controller", sorted(CONTROLLERS))
def test_killed_search_resumes_without_scoring_twice(tmp_path, controller):
    (tmp_path / "killing_evo.py").write_text(PLUGIN)
    (tmp_path / "data.json").write_text(json.dumps({"synthetic_rows": 6000}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(tmp_path)}
    env.pop("KILL_AFTER", None)
    name, extra, in_training = CONTROLLERS[controller]
    embsearch = [sys.executable, "-m", "embsearch", "search"]
    argv = [*embsearch, "--config", str(tmp_path / "data.json"), *COMMON, *extra]
    argv += ["--controller", name]
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run([*argv, "--out", str(full)], check=True, env=env)
    dying = {**env, "KILL_AFTER": str(KILL_AFTER)}
    if in_training:
        killed_while_training([*argv, "--out", str(killed)], dying, killed)
        died = subprocess.run([*embsearch, "--resume", str(killed), "--quiet"], env=dying)
    else:
        died = subprocess.run([*argv, "--out", str(killed)], env=dying)
    assert died.returncode == -signal.SIGKILL  # while scoring the evolution's 5th candidate
    assert not (killed / "plan.json").exists() and (killed / "supernet.pt").is_file()
    assert not (killed / "supernet.epoch.pt").exists()
    before = journal_trials(killed)
    resumed = subprocess.run(
        [*embsearch, "--resume", str(killed), "--quiet"], env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    after, whole = journal_trials(killed), journal_trials(full)
    # the same studies with as many trials as the uninterrupted run's; none scored twice
    assert {k: len(v) for k, v in after.items()} == {k: len(v) for k, v in whole.items()}
    for study, trials in after.items():
        fresh = Counter(json.dumps(t.params, sort_keys=True) for t in trials if not t.user_attrs["cached"])  # fmt: skip
        assert max(fresh.values()) == 1, study
        assert [t.value for t in trials[: len(before.get(study, []))]] == [
            t.value for t in before.get(study, [])
        ]  # what the killed run stored is kept as it was
    history = json.loads((killed / "search.json").read_text())["history"]
    evaluations = [e for e in history if e["event"] == "evaluation"]
    assert sum(bool(e.get("resumed")) for e in evaluations) == sum(map(len, before.values()))
    assert len(evaluations) == sum(map(len, whole.values()))
    (supernet,) = [e for e in history if e["event"] == "supernet"]
    assert supernet.get("loaded") is True  # the saved supernet, not trained again
    plans = [json.loads((d / "plan.json").read_text()) for d in (full, killed)]
    assert [f["groups"] for f in plans[0]["fields"]] == [f["groups"] for f in plans[1]["fields"]]
    assert plans[0]["extra"]["inherited_val_auc"] == plans[1]["extra"]["inherited_val_auc"]
    first = plans[0]["extra"]["supernet"]
    if in_training:  # continued from its checkpoint, to the same weights
        assert supernet["resumed_after_epoch"] >= 1 and supernet["val_auc"] == first["val_auc"]
        assert supernet["epochs_run"] == first["epochs_run"]


@pytest.mark.parametrize("controller, why", [("mde", "no trials")])
def test_other_families_refuse_resume_in_one_line(tmp_path, capsys, controller, why):
    run = tmp_path / controller
    run.mkdir()
    raw = {"data": "synthetic", "synthetic_rows": 6000, "budgets": ["15%"]}
    start_run(run, RunConfig.from_mapping({**raw, "controller": controller}, "test"), "fp", None)
    before = sorted(p.name for p in run.iterdir())
    assert main(["search", "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err and why in err, err
    assert sorted(p.name for p in run.iterdir()) == before
