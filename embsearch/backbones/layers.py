"""Building blocks shared by backbones."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

AdditiveTerm = tuple[str, nn.Module | None]
"""One term of a logit that is a sum over the flattened embeddings ``x = e.flatten(1)``:
``("linear", nn.Linear(in, 1))`` is ``linear(x)``, ``("fm", None)`` is FM's pairwise term of
``e``, ``("mlp", nn.Sequential)`` is ``mlp(x)`` whose first layer is an ``nn.Linear``."""

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def mlp(
    in_dim: int,
    hidden: Sequence[int],
    dropout: float = 0.0,
    out_dim: int | None = 1,
    activation: str = "relu",
    batch_norm: bool = False,
) -> nn.Sequential:
    """MLP ``in_dim -> hidden... -> out_dim`` (no final activation). Each hidden layer is
    ``Linear``, then ``BatchNorm1d`` if ``batch_norm``, the activation, then ``Dropout`` if
    ``dropout > 0`` (FuxiCTR's ``MLP_Block`` order)."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers.append(nn.Linear(in_dim, h))
        if batch_norm:
            layers.append(nn.BatchNorm1d(h))
        layers.append(_ACTIVATIONS[activation]())
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
