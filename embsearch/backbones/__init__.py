"""Backbones (LR, FM, DNN, DeepFM, DCNv2, Wide&Deep) and the model that joins them to a table."""

from torch import nn

from embsearch.backbones.models import BACKBONES, DNN, FM, LR, DCNv2, DeepFM, WideDeep
from embsearch.errors import ConfigError


def make_backbone(name: str, num_fields: int, width: int) -> nn.Module:
    """Build a backbone by name (case-insensitive; ``wide&deep`` and ``wide_deep`` accepted)."""
    key = name.lower().replace("&", "").replace("_", "").replace("-", "")
    if key not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    return BACKBONES[key](num_fields, width)


class CTRModel(nn.Module):
    """An embedding module followed by a backbone; ``forward(x) -> logits [batch]``."""

    def __init__(self, embedding: nn.Module, backbone: nn.Module) -> None:
        super().__init__()
        self.embedding = embedding
        self.backbone = backbone

    def forward(self, x):  # noqa: ANN001, ANN201 - torch signature
        return self.backbone(self.embedding(x))


__all__ = [
    "BACKBONES",
    "CTRModel",
    "DCNv2",
    "DNN",
    "DeepFM",
    "FM",
    "LR",
    "WideDeep",
    "make_backbone",
]
