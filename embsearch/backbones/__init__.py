"""Backbones (LR, FM, DNN, DeepFM, DCNv2, Wide&Deep) and the model that joins them to a table."""

from torch import nn

from embsearch.backbones.layers import scale_input_layers
from embsearch.backbones.models import BACKBONES, DNN, FM, LR, DCNv2, DeepFM, WideDeep
from embsearch.errors import ConfigError


def make_backbone(
    name: str, num_fields: int, width: int, live_inputs: int | None = None
) -> nn.Module:
    """Build a backbone by name (case-insensitive; ``wide&deep`` and ``wide_deep`` accepted).

    ``live_inputs``: how many of the ``num_fields * width`` inputs can be non-zero (a
    zero-padded plan's ``Plan.live_inputs``). The input layers are then initialised for
    that fan-in rather than for the padded one, so a padded table starts training exactly
    as the narrow table of the same dims would (PyTorch's default scales a linear layer's
    initial weights by ``1/sqrt(fan_in)``, which padding would shrink by
    ``sqrt(live/padded)``; the weights on padding get no gradient either way)."""
    key = name.lower().replace("&", "").replace("_", "").replace("-", "")
    if key not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    backbone = BACKBONES[key](num_fields, width)
    n_in = num_fields * width
    if live_inputs is not None and 0 < live_inputs < n_in:
        scale_input_layers(backbone, n_in, live_inputs)
    return backbone


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
