"""Training loop, metrics, devices."""

from embsearch.train.device import resolve_device, seed_everything
from embsearch.train.metrics import log_loss, roc_auc
from embsearch.train.trainer import (
    DeviceData,
    TrainConfig,
    TrainResult,
    evaluate,
    predict,
    train_model,
)

__all__ = [
    "DeviceData",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "log_loss",
    "predict",
    "resolve_device",
    "roc_auc",
    "seed_everything",
    "train_model",
]
