"""RL searches resume (issue 22 item 4). A NIS search (``warmup=0.5``: epoch 1 on the
supernet's own draws, epoch 2 alternating with the policies) is SIGKILLed while its supernet
trains (once its epoch-1 checkpoint is written), resumed, killed again
while scoring its ``KILL_AFTER``-th step-6 sample on the trained supernet, and resumed to
the end: the supernet continued from its checkpoint with the policies as they were then
(the same supernet, bitwise: the same validation AUC), step 6 replayed the killed run's
samples from the storage, none scored twice, and the run ends with the uninterrupted run's
trials, policy and plan under a seed. AutoIAS (killed in training, then in its generator's
updates) and ESAPN (killed in its second budget's pass) resume the same way from their own
checkpoints; a resume with other options is refused. The runs that are not killed run in
this process. Helpers from tests/test_evolutionary_resume.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from embsearch.cli import main
from embsearch.run_config import RunConfig
from embsearch.run_state import start_run
from embsearch.search import load_dataset
from tests.test_evolutionary_resume import KILLING, journal_trials, killed_while_training

pytestmark = pytest.mark.usefixtures("one_thread")

PLUGINS = {  # module -> source; each run in a subprocess that may kill itself (KILL_AFTER)
    "killing_nis": KILLING
    + '''
from embsearch.controllers.nis import NIS


class KillingNIS(Killing, NIS):
    """Dies by SIGKILL while scoring the KILL_AFTER-th step-6 sample (env)."""
''',
    "killing_autoias": '''
import os, signal
from embsearch.controllers.autoias import AutoIAS


class KillingAutoIAS(AutoIAS):
    """Dies by SIGKILL at the KILL_AFTER-th architecture scored in step 4 (env)."""

    calls = 0

    def score(self, *args, **kwargs):
        KillingAutoIAS.calls += 1
        if KillingAutoIAS.calls == int(os.environ.get("KILL_AFTER", "0")):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().score(*args, **kwargs)
''',
    "killing_esapn": '''
import os, signal
from embsearch.controllers import esapn, esapn_resume

esapn_resume.SECONDS = esapn_resume.OVERHEAD = 0  # a checkpoint at every batch of a pass


class KillingPass(esapn_resume.PassInProgress):
    """Dies by SIGKILL right after the KILL_AFTER-th checkpoint of a pass in progress (env)."""

    saves = 0

    def save(self, epoch, skip):
        super().save(epoch, skip)
        KillingPass.saves += 1
        if KillingPass.saves == int(os.environ.get("KILL_AFTER", "0")):
            os.kill(os.getpid(), signal.SIGKILL)


esapn.PassInProgress = KillingPass  # this process only: never imported by the tests' own
KillingESAPN = esapn.ESAPN
''',
}

NIS_ARGS = [
    "--budget", "15%", "--epochs", "1", "--batch-size", "512", "--threads", "1", "--quiet",
    "--param", "supernet_epochs=2", "--param", "policy_every=2", "--param", "policy_batch=8", "--param", "search_updates=3",
    "--param", "val_rows=512", "--param", "warmup=0.5",
]  # fmt: skip
KILL_AFTER = 5


def plugin_env(tmp_path: Path, args: list[str], cls: str) -> tuple[dict[str, str], list[str]]:
    """The subprocesses' environment (the plugins importable) and the search's command."""
    for module, source in PLUGINS.items():
        (tmp_path / f"{module}.py").write_text(source)
    (tmp_path / "data.json").write_text(json.dumps({"synthetic_rows": 6000}))
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{tmp_path}{os.pathsep}{root}"}
    env.pop("KILL_AFTER", None)
    embsearch = [sys.executable, "-m", "embsearch", "search"]
    argv = [*embsearch, "--config", str(tmp_path / "data.json"), *args]
    module = {"KillingNIS": "killing_nis", "KillingAutoIAS": "killing_autoias"}.get(cls)
    return env, [*argv, "--controller", f"{module or 'killing_esapn'}:{cls}"]


def in_process(argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``embsearch search ...`` (``argv`` as for a subprocess) in this process: the runs that
    are not killed (the uninterrupted one: the plain controller; the last resume of nis and
    autoias, whose plugin modules patch nothing) without a new interpreter's imports."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("KILL_AFTER", raising=False)
    assert main(argv[3:]) == 0


def test_nis_killed_in_training_and_in_step_6_resumes(tmp_path, monkeypatch):
    env, argv = plugin_env(tmp_path, NIS_ARGS, "KillingNIS")
    embsearch = argv[:4]
    full, killed = tmp_path / "full", tmp_path / "killed"
    in_process([*argv[:-1], "nis", "--out", str(full)], tmp_path, monkeypatch)
    dying = {**env, "KILL_AFTER": str(KILL_AFTER)}
    killed_while_training([*argv, "--out", str(killed)], dying, killed)
    died = subprocess.run([*embsearch, "--resume", str(killed), "--quiet"], env=dying)
    assert died.returncode == -signal.SIGKILL  # while scoring step 6's 5th sample
    assert not (killed / "plan.json").exists() and (killed / "supernet.pt").is_file()
    assert not (killed / "supernet.epoch.pt").exists()
    before = journal_trials(killed)
    assert sum(map(len, before.values())) == KILL_AFTER - 1
    in_process([*embsearch, "--resume", str(killed), "--quiet"], tmp_path, monkeypatch)
    after, whole = journal_trials(killed), journal_trials(full)
    assert {k: len(v) for k, v in after.items()} == {k: len(v) for k, v in whole.items()}
    for study, trials in after.items():
        fresh = Counter(json.dumps(t.params, sort_keys=True) for t in trials if not t.user_attrs["cached"])  # fmt: skip
        assert max(fresh.values()) == 1, study  # none scored twice
        assert [t.value for t in trials] == [t.value for t in whole[study]]  # the same samples
    history = json.loads((killed / "search.json").read_text())["history"]
    evaluations = [e for e in history if e["event"] == "evaluation"]
    assert sum(bool(e.get("resumed")) for e in evaluations) == KILL_AFTER - 1
    assert len(evaluations) == sum(map(len, whole.values()))
    (supernet,) = [e for e in history if e["event"] == "supernet"]
    assert supernet.get("loaded") is True  # the saved supernet, not trained again
    plans = [json.loads((d / "plan.json").read_text()) for d in (full, killed)]
    assert [f["groups"] for f in plans[0]["fields"]] == [f["groups"] for f in plans[1]["fields"]]
    for key in ("inherited_val_auc", "policy", "mean_reward_first_last", "policy_updates"):
        assert plans[0]["extra"][key] == plans[1]["extra"][key], key
    first, second = plans[0]["extra"]["supernet"], plans[1]["extra"]["supernet"]
    assert second["resumed_after_epoch"] >= 1  # the first resume continued the checkpoint
    assert second["val_auc"] == first["val_auc"] and second["epochs_run"] == first["epochs_run"]


AUTOIAS_ARGS = [
    "--budget", "15%", "--backbone", "autoias", "--epochs", "1", "--batch-size", "512",
    "--threads", "1", "--quiet", "--param", "supernet_epochs=2", "--param", "supernet_patience=5", "--param", "policy_batch=4",
    "--param", "search_updates=4", "--param", "val_rows=512", "--param", "mlp_width=32",
    "--param", "mlp_layers=1",
]  # fmt: skip
UPDATES_BEFORE_KILL = 2  # killed while scoring the 3rd update's 2nd architecture


def test_autoias_killed_in_training_and_in_step_4_resumes(tmp_path, monkeypatch):
    """The supernet continues from its checkpoint with the generators its examples were drawn
    from; the generator phase continues after its last saved update (only the updates left
    are run); the plan (dims, architecture, probabilities) is the uninterrupted run's."""
    env, argv = plugin_env(tmp_path, AUTOIAS_ARGS, "KillingAutoIAS")
    embsearch = argv[:4]
    full, killed = tmp_path / "full", tmp_path / "killed"
    in_process([*argv[:-1], "autoias", "--out", str(full)], tmp_path, monkeypatch)
    dying = {**env, "KILL_AFTER": str(UPDATES_BEFORE_KILL * 4 + 2)}
    killed_while_training([*argv, "--out", str(killed)], dying, killed)
    died = subprocess.run([*embsearch, "--resume", str(killed), "--quiet"], env=dying)
    assert died.returncode == -signal.SIGKILL and (killed / "generator.pt").is_file()
    assert not (killed / "plan.json").exists() and not (killed / "supernet.epoch.pt").exists()
    in_process([*embsearch, "--resume", str(killed), "--quiet"], tmp_path, monkeypatch)
    runs = [json.loads((d / "search.json").read_text())["history"] for d in (full, killed)]
    updates = [[e for e in h if e["event"] == "generator_update"] for h in runs]
    assert len(updates[1]) == len(updates[0]) - UPDATES_BEFORE_KILL  # only those left
    assert updates[1] == updates[0][UPDATES_BEFORE_KILL:]  # the same rewards
    plans = [json.loads((d / "plan.json").read_text()) for d in (full, killed)]
    assert [f["groups"] for f in plans[0]["fields"]] == [f["groups"] for f in plans[1]["fields"]]
    for key in ("architecture", "dim_probabilities", "mean_reward_first_last", "policy_updates"):
        assert plans[0]["extra"][key] == plans[1]["extra"][key], key
    assert plans[0]["extra"]["inherited_val_auc"] == plans[1]["extra"]["inherited_val_auc"]
    first, second = plans[0]["extra"]["supernet"], plans[1]["extra"]["supernet"]
    assert second["loaded"] is True and second["resumed_after_epoch"] >= 1
    assert second["val_auc"] == first["val_auc"] and second["epochs_run"] == first["epochs_run"]


ESAPN_ARGS = [
    "--budget", "10%", "--budget", "20%", "--epochs", "1", "--threads", "1", "--quiet",
    "--param", "batch_size=500", "--param", "epochs=2",
]  # fmt: skip


def test_esapn_killed_in_its_second_budgets_pass_resumes(tmp_path, monkeypatch):
    """Two budgets, two shuffled epochs each (9-10 batches an epoch, a checkpoint at every
    batch): killed in the second budget's pass, the resume does not run the first budget's
    pass again and continues the second from its last checkpoint, to the uninterrupted run's
    per-id sizes (the records' counts), policies and plans."""
    env, argv = plugin_env(tmp_path, ESAPN_ARGS, "KillingESAPN")
    embsearch = argv[:4]
    full, killed = tmp_path / "full", tmp_path / "killed"
    in_process([*argv[:-1], "esapn", "--out", str(full)], tmp_path, monkeypatch)
    runs = [json.loads((full / "search.json").read_text())["history"]]
    per_pass = [e["batches"] for e in runs[0] if e["event"] == "esapn pass"][0]
    kill_at = per_pass + per_pass // 2  # the checkpoints of the first pass, then half
    died = subprocess.run([*argv, "--out", str(killed)], env={**env, "KILL_AFTER": str(kill_at)})
    assert died.returncode == -signal.SIGKILL and (killed / "passes.pt").is_file()
    resumed = subprocess.run(
        [*embsearch, "--resume", str(killed), "--quiet"], env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    runs.append(json.loads((killed / "search.json").read_text())["history"])
    (second,) = [e for e in runs[1] if e["event"] == "esapn pass"]  # the first not run again
    first = [e for e in runs[0] if e["event"] == "esapn pass"]
    assert second["budget"] == first[1]["budget"]
    (again,) = [e for e in runs[1] if e["event"] == "esapn pass resumed"]  # from its checkpoint
    assert again["budget"] == second["budget"] and 0 < again["after"] < per_pass
    for key in ("batches", "grown", "refused_over_budget", "policy_updates", "bytes_of_ids"):
        assert second[key] == first[1][key], key
    assert second["val_auc"] == first[1]["val_auc"]  # the same model, bitwise
    names = sorted(p.name for p in full.iterdir() if p.is_dir() and (p / "plan.json").exists())
    assert len(names) == 2
    for name in names:
        plans = [json.loads((d / name / "plan.json").read_text()) for d in (full, killed)]
        assert [f["groups"] for f in plans[0]["fields"]] == [
            f["groups"] for f in plans[1]["fields"]
        ]
        assert (
            plans[0]["extra"]["pass"]["enlarge_probability"]
            == (plans[1]["extra"]["pass"]["enlarge_probability"])
        )


@pytest.mark.parametrize(
    "controller, param",
    [("nis", "policy_batch=4"), ("esapn", "epochs=2"), ("autoias", "kd_weight=0")],
)
def test_an_rl_resume_with_other_options_is_one_line(tmp_path, capsys, controller, param):
    run = tmp_path / controller
    run.mkdir()
    raw = {
        "data": "synthetic",
        "synthetic_rows": 3000,
        "budgets": ["15%"],
        "controller": controller,
    }
    if controller == "autoias":
        raw["backbone"] = "autoias"
    cfg = RunConfig.from_mapping(raw, "test")
    start_run(run, cfg, load_dataset(cfg).fingerprint(), None)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    assert main(["search", "--resume", str(run), "--quiet", "--param", param]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert "other options" in err and param.split("=")[0] in err, err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
