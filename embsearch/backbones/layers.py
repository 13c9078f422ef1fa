"""Building blocks shared by backbones."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def mlp(
    in_dim: int, hidden: Sequence[int], dropout: float = 0.0, out_dim: int | None = 1
) -> nn.Sequential:
    """ReLU MLP ``in_dim -> hidden... -> out_dim`` (no final activation)."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_dim, h), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        in_dim = h
    if out_dim is not None:
        layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


def fm_interaction(e: torch.Tensor) -> torch.Tensor:
    """Second-order FM term (Rendle, 2010): ``0.5 * sum((sum_f e)^2 - sum_f e^2)``, ``[batch]``."""
    s = e.sum(dim=1)
    return 0.5 * (s * s - (e * e).sum(dim=1)).sum(dim=1)


def scale_input_layers(backbone: nn.Module, n_in: int, live: int) -> None:
    """Re-initialise every linear layer reading the flattened ``n_in`` embedding inputs
    (FM's first-order term, the first MLP layer, the wide part, DCN-V2's cross layers) as
    if its fan-in were ``live``: weights and biases scaled by ``sqrt(n_in / live)``."""
    k = (n_in / live) ** 0.5
    with torch.no_grad():
        for module in backbone.modules():
            if isinstance(module, nn.Linear) and module.in_features == n_in:
                module.weight.mul_(k)
                if module.bias is not None:
                    module.bias.mul_(k)
