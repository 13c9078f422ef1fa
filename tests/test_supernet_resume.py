"""A supernet's per-epoch checkpoint (issue 22 item 4): a training killed after epoch 1 and
resumed trains epochs 2.. only and ends with the weights of an uninterrupted one (bitwise,
on CPU under a seed); the trained supernet is saved and a later resume loads it; the
checkpoint is removed once the supernet is saved; a supernet trained with hooks that carry
state of their own is not checkpointed unless that state is handed over (``hook_state``: NIS's
policies, tests/test_rl_resume.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

import embsearch.controllers.weight_sharing as ws
from embsearch.controllers.black_box_scoring import make_supernet
from embsearch.controllers.tpe import TPE
from embsearch.controllers.weight_sharing import SUPERNET_NAME
from embsearch.testing import make_test_context
from embsearch.train.checkpoint import CHECKPOINT_NAME
from embsearch.trial_store import TrialStore

pytestmark = pytest.mark.usefixtures("one_thread")
EPOCHS = 3


class Killed(Exception):
    """Stands for a SIGKILL right after a checkpoint was written."""


def train(run_dir: Path, resume: bool = False, ctrl: TPE | None = None):
    ctx = make_test_context(TPE, ("30%",), epochs=EPOCHS)
    ctx = replace(ctx, train=replace(ctx.train, patience=EPOCHS))  # every epoch runs
    ctx.store = TrialStore(None, "journal", "test", resume, run_dir)  # type: ignore[arg-type]
    ctrl = ctrl or TPE()
    ctrl.new_state()
    space = ctx.space.with_projection("pad")
    steps: list[int] = []

    def build() -> torch.nn.Module:
        model = make_supernet(ctrl, ctx, space)
        model.register_forward_hook(lambda m, i, o: steps.append(1) if m.training else None)
        return model

    model, summary = ws.train_weight_sharing_supernet(ctx, build, EPOCHS, None)
    return model, summary, len(steps)


def test_a_killed_supernet_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    full_dir, killed_dir = tmp_path / "full", tmp_path / "killed"
    full_dir.mkdir(), killed_dir.mkdir()
    full, full_summary, full_steps = train(full_dir)
    assert (full_dir / SUPERNET_NAME).is_file() and not (full_dir / CHECKPOINT_NAME).exists()
    assert full_summary["epochs_run"] == EPOCHS

    real = ws.save_checkpoint

    def killed_after_epoch_1(path, state, model, generator, hooks=None):
        real(path, state, model, generator, hooks)
        if state.epoch == 1:
            raise Killed

    monkeypatch.setattr(ws, "save_checkpoint", killed_after_epoch_1)
    with pytest.raises(Killed):
        train(killed_dir)
    monkeypatch.setattr(ws, "save_checkpoint", real)
    assert (killed_dir / CHECKPOINT_NAME).is_file() and not (killed_dir / SUPERNET_NAME).exists()
    torch.manual_seed(123)  # the resume must not depend on the process's generators

    resumed, summary, steps = train(killed_dir, resume=True)
    assert summary["resumed_after_epoch"] == 1 and summary["epochs_run"] == EPOCHS
    assert steps * EPOCHS == full_steps * (EPOCHS - 1)  # epochs 2 and 3 only (+ validations: 0)
    a, b = full.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert summary["val_auc"] == full_summary["val_auc"]
    assert not (killed_dir / CHECKPOINT_NAME).exists() and (killed_dir / SUPERNET_NAME).is_file()

    again, loaded, steps = train(killed_dir, resume=True)  # trained: loaded, not trained
    assert loaded["loaded"] is True and steps == 0
    assert all(torch.equal(a[k], again.state_dict()[k]) for k in a)


def test_supernets_with_stateful_hooks_are_not_checkpointed(tmp_path):
    ctx = make_test_context(TPE, ("30%",), epochs=1)
    ctx.store = TrialStore(None, "journal", "test", False, tmp_path)  # type: ignore[arg-type]
    ctrl = TPE()
    ctrl.new_state()
    space = ctx.space.with_projection("pad")
    ws.train_weight_sharing_supernet(
        ctx, lambda: make_supernet(ctrl, ctx, space), 1, None, after_step=lambda m, s: None
    )
    assert list(tmp_path.iterdir()) == []
