"""A complete custom backbone: a learned gate per field scales its embedding, then an MLP.

Any ``torch.nn.Module`` class built as ``Class(num_fields=..., width=..., **params)`` that maps
embeddings ``[batch, fields, width]`` to logits ``[batch]`` is a backbone. Run it from the
command line without installing anything extra (its parameters as ``--backbone-param``):

    embsearch search --data synthetic --budget 25% --backbone examples.custom_backbone:GatedMLP \
        --backbone-param hidden=64 --backbone-param depth=2 --out runs/gated

or register it for good in your package's pyproject.toml:

    [project.entry-points."embsearch.backbones"]
    gated-mlp = "mypackage.backbones:GatedMLP"

``embsearch.testing.check_backbone`` is the conformance check the search runs before any
training (output shape, gradients to every field, rebuilt from its recorded parameters):

    from embsearch.testing import check_backbone
    check_backbone(GatedMLP, params={"hidden": 64, "depth": 2})

The parameters are recorded in ``config.json`` and the export's ``model.json``, so
``retrain``, ``export`` and ``embsearch.export.load_model`` rebuild the same network. The
training parameters every backbone shares (``weight_decay``, ``embedding_regularizer``) may
be given beside its own; they are not passed to the constructor.
"""

from __future__ import annotations

import torch
from torch import nn


class GatedMLP(nn.Module):
    """``sigmoid(g_f) * e_f`` per field ``f``, flattened, through ``depth`` ReLU layers of
    ``hidden`` units and a linear output."""

    def __init__(self, num_fields: int, width: int, hidden: int = 128, depth: int = 2) -> None:
        super().__init__()
        if hidden < 1 or depth < 1:
            raise ValueError(f"hidden and depth must be >= 1, got hidden={hidden}, depth={depth}")
        self.gate = nn.Parameter(torch.zeros(num_fields, 1))
        layers: list[nn.Module] = []
        in_dim = num_fields * width
        for _ in range(depth):
            layers += [nn.Linear(in_dim, hidden), nn.ReLU()]
            in_dim = hidden
        layers.append(nn.Linear(in_dim, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return self.net((torch.sigmoid(self.gate) * e).flatten(1)).squeeze(-1)
