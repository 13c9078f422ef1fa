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


def test_validate_hook_decides_early_stopping_and_the_restored_epoch():
    """With ``validate`` given, early stopping and the best-epoch restore follow its AUCs
    (here scripted: best at epoch 2, then two worse epochs stop a patience-2 run), not the
    model's own validation AUC."""
    ds = make_synthetic(rows=3000, seed=0)
    space = FieldDimsSpace(ds.schema, 4)
    plan = space.to_plan(space.uniform(4), "uniform", space.full_table_bytes())
    model = CTRModel(MixedDimEmbedding(plan), make_backbone("dnn", len(ds.schema.names), 4))
    scripted = iter([0.60, 0.70, 0.65, 0.64, 0.99])
    snapshots = []

    def validate(m):
        snapshots.append(copy.deepcopy(m.state_dict()))
        return next(scripted), 0.5

    cfg = TrainConfig(epochs=5, batch_size=512, patience=2, progress=False)
    res = train_model(model, DeviceData(ds, torch.device("cpu")), cfg, validate=validate)
    assert (res.best_epoch, res.epochs_run, res.val_auc) == (2, 4, 0.70)
    assert [h["val_auc"] for h in res.history] == [0.60, 0.70, 0.65, 0.64]
    for k, v in model.state_dict().items():
        assert torch.equal(v, snapshots[1][k])
    assert not all(torch.equal(v, snapshots[3][k]) for k, v in model.state_dict().items())
