"""The differentiable controllers resume (issue 22 item 4): a DARTS supernet killed right
after an epoch's checkpoint and resumed trains the next epochs only and ends with the
architecture, supernet val AUC and plan of an uninterrupted run (dnis, autodim, autoemb) (bitwise, on CPU under a
seed); without the architecture half's state (:meth:`ArchStep.load_state_dict`: its
optimiser, step count, validation batches' position) it does not."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

import embsearch.controllers.darts_training as dt
from embsearch.controllers.autodim import AutoDim
from embsearch.controllers.autoemb import AutoEmb
from embsearch.controllers.dnis import DNIS
from embsearch.testing import make_test_context
from embsearch.train.checkpoint import CHECKPOINT_NAME
from embsearch.trial_store import TrialStore

pytestmark = pytest.mark.usefixtures("one_thread")
EPOCHS = 3
CASES = {  # DNIS's first epoch is its warm start (no mask step): killed after epoch 2
    "dnis": (DNIS, {}, 2),
    "autodim": (AutoDim, {"early_stop": False}, 1),  # the last architecture is kept too
    "autoemb": (AutoEmb, {}, 1),
}


class Killed(Exception):
    """Stands for a SIGKILL right after a checkpoint was written."""


def search(name: str, run_dir: Path, resume: bool = False):
    cls, params, _ = CASES[name]
    ctx = make_test_context(cls, ("30%",), epochs=EPOCHS)
    ctx = replace(ctx, train=replace(ctx.train, patience=EPOCHS))  # every epoch runs
    ctx.store = TrialStore(None, "journal", "test", resume, run_dir)  # type: ignore[arg-type]
    ctrl = cls(**params)
    plan = ctrl.search_budgets(ctx)[0]
    arch = [p.detach().clone() for p in ctrl.state.supernet.arch_parameters()]
    return plan, arch


def kill_and_resume(name: str, tmp_path: Path, monkeypatch) -> tuple:
    kill_after = CASES[name][2]
    real = dt.save_checkpoint

    def killed(path, state, model, generator, hooks=None):
        real(path, state, model, generator, hooks)
        if state.epoch == kill_after:
            raise Killed

    monkeypatch.setattr(dt, "save_checkpoint", killed)
    with pytest.raises(Killed):
        search(name, tmp_path)
    monkeypatch.setattr(dt, "save_checkpoint", real)
    assert (tmp_path / CHECKPOINT_NAME).is_file()
    torch.manual_seed(123)  # the resume must not depend on the process's generators
    return search(name, tmp_path, resume=True)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_killed_darts_supernet_resumes_to_the_same_plan(tmp_path, monkeypatch, name):
    (full := tmp_path / "full").mkdir()
    (killed := tmp_path / "killed").mkdir()
    plan, arch = search(name, full)
    resumed, resumed_arch = kill_and_resume(name, killed, monkeypatch)
    assert all(torch.equal(a, b) for a, b in zip(arch, resumed_arch))
    first, again = plan.extra["supernet"], resumed.extra["supernet"]
    assert again["val_auc"] == first["val_auc"] and again["epochs_run"] == EPOCHS
    assert [f.groups for f in resumed.fields] == [f.groups for f in plan.fields]
    assert resumed.extra["preference"] == plan.extra["preference"]

    # a resume once trained restores the last checkpoint, training no epoch
    (killed / "again").mkdir()
    monkeypatch.setattr(dt, "train_model", _counting(dt.train_model, steps := []))
    again_plan, again_arch = search(name, killed, resume=True)
    assert all(torch.equal(a, b) for a, b in zip(arch, again_arch)) and steps == [0]
    assert again_plan.extra["supernet"]["val_auc"] == first["val_auc"]


def _counting(train_model, steps: list[int]):
    def wrapped(*args, **kwargs):
        result = train_model(*args, **kwargs)
        start = kwargs["start"]
        steps.append(result.steps_run - (start.step if start is not None else 0))
        return result

    return wrapped


def test_the_arch_step_state_is_what_makes_it_resume(tmp_path, monkeypatch):
    (full := tmp_path / "full").mkdir()
    (killed := tmp_path / "killed").mkdir()
    _, arch = search("autodim", full)
    monkeypatch.setattr(dt.ArchStep, "load_state_dict", lambda self, state: None)
    _, resumed_arch = kill_and_resume("autodim", killed, monkeypatch)
    assert not all(torch.equal(a, b) for a, b in zip(arch, resumed_arch))
