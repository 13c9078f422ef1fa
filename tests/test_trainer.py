"""The shared training loop's hooks."""

from __future__ import annotations

import copy

import torch

from embsearch.backbones import CTRModel, make_backbone
from embsearch.data.synthetic import make_synthetic
from embsearch.embeddings import MixedDimEmbedding
from embsearch.search_spaces import FieldDimsSpace
from embsearch.train import TrainConfig
from embsearch.train.trainer import DeviceData, train_model


def _small_model():
    """A dim-4 DNN on 3,000 synthetic rows (2,400 for training: 5 batches of 512)."""
    ds = make_synthetic(rows=3000, seed=0)
    space = FieldDimsSpace(ds.schema, 4)
    plan = space.to_plan(space.uniform(4), "uniform", space.full_table_bytes())
    model = CTRModel(MixedDimEmbedding(plan), make_backbone("dnn", len(ds.schema.names), 4))
    return model, DeviceData(ds, torch.device("cpu"))


def _scripted(aucs):
    """A ``validate`` hook returning ``aucs`` in turn, and the weights it saw each time."""
    scripted, snapshots = iter(aucs), []

    def validate(m):
        snapshots.append(copy.deepcopy(m.state_dict()))
        return next(scripted), 0.5

    return validate, snapshots


def test_validate_hook_decides_early_stopping_and_the_restored_epoch():
    """With ``validate`` given, early stopping and the best-epoch restore follow its AUCs
    (here scripted: best at epoch 2, then two worse epochs stop a patience-2 run), not the
    model's own validation AUC."""
    model, data = _small_model()
    validate, snapshots = _scripted([0.60, 0.70, 0.65, 0.64, 0.99])
    cfg = TrainConfig(epochs=5, batch_size=512, patience=2, progress=False)
    res = train_model(model, data, cfg, validate=validate)
    assert (res.best_epoch, res.epochs_run, res.val_auc) == (2, 4, 0.70)
    assert [h["val_auc"] for h in res.history] == [0.60, 0.70, 0.65, 0.64]
    for k, v in model.state_dict().items():
        assert torch.equal(v, snapshots[1][k])
    assert not all(torch.equal(v, snapshots[3][k]) for k, v in model.state_dict().items())


def test_eval_every_validates_within_epochs_stops_mid_epoch_and_restores_the_best_step():
    """``eval_every=2`` on 5 steps an epoch validates after steps 2, 4, 5 (the epoch's end),
    6, ...; patience counts validations, so two worse ones after step 4's stop training at
    step 6, in the second epoch, with step 4's weights restored."""
    model, data = _small_model()
    validate, snapshots = _scripted([0.60, 0.70, 0.65, 0.64, 0.99])
    cfg = TrainConfig(epochs=5, batch_size=512, patience=2, eval_every=2, progress=False)
    res = train_model(model, data, cfg, validate=validate)
    assert [h["step"] for h in res.history] == [2, 4, 5, 6]
    assert [h["epoch"] for h in res.history] == [1, 1, 1, 2]
    assert (res.best_step, res.best_epoch, res.steps_run, res.epochs_run) == (4, 1, 6, 2)
    assert res.val_auc == 0.70 and not res.still_improving
    for k, v in model.state_dict().items():
        assert torch.equal(v, snapshots[1][k])
    assert model.training  # validations in the middle of an epoch hand the model back to training


def test_once_an_epoch_by_default():
    """Without ``eval_every`` the model is validated once per epoch (no ``step`` entries)."""
    model, data = _small_model()
    cfg = TrainConfig(epochs=2, batch_size=512, patience=5, progress=False)
    res = train_model(model, data, cfg)
    assert [h["epoch"] for h in res.history] == [1, 2] and "step" not in res.history[0]
    assert res.steps_run == 10


def test_still_improving_follows_the_last_validation():
    """A best validation in the middle of the last epoch is not 'still rising'."""
    from embsearch.train.trainer import TrainResult

    mid = TrainResult(0.7, 0.6, best_epoch=3, epochs_run=3, seconds=1.0, best_step=8, steps_run=10)
    last = TrainResult(
        0.7, 0.6, best_epoch=3, epochs_run=3, seconds=1.0, best_step=10, steps_run=10
    )
    assert not mid.still_improving and last.still_improving
