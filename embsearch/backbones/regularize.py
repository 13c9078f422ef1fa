"""The backbone's training parameters as loss penalties (``weight_decay``,
``embedding_regularizer``; declared in :mod:`embsearch.backbones.params`).

- ``weight_decay`` (network weight decay): ``(wd/2) * ||W||^2`` over every parameter of the
  backbone, so its gradient is ``wd * W``, Adam's coupled L2 (``torch.optim.Adam``'s
  ``weight_decay``), applied to the backbone only, never to the table.
- ``embedding_regularizer``: FuxiCTR's ``embedding_regularizer`` (its dense form): ``(lambda/2)
  * ||E||^2`` over the whole embedding table at every step, summed block by block: every
  (field, group) block's own weights, whatever its dim, so a mixed-dim table pays for the
  weights it holds; the projections of small dims to the width are not penalised.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn


def embedding_weights(embedding: nn.Module) -> list[nn.Parameter]:
    """The table's weights: a :class:`MixedDimEmbedding`'s ``tables`` (its blocks, fused per
    dim), else every parameter of the embedding module whose name is not a projection's."""
    tables = getattr(embedding, "tables", None)
    if isinstance(tables, nn.ParameterList):
        return list(tables)
    return [p for n, p in embedding.named_parameters() if "proj" not in n]


def penalty(training: Mapping[str, float]) -> Callable[[nn.Module], torch.Tensor] | None:
    """The loss penalty of a model ``CTRModel(embedding, backbone)`` for the training
    parameters ``training``, or ``None`` when every one is 0 (nothing is added: the default
    training is unchanged bit for bit)."""
    wd = float(training.get("weight_decay", 0.0))
    lam = float(training.get("embedding_regularizer", 0.0))
    if wd == 0 and lam == 0:
        return None

    def loss(model: nn.Module) -> torch.Tensor:
        total = torch.zeros((), device=next(model.parameters()).device)
        if wd:
            total = total + 0.5 * wd * sum(p.pow(2).sum() for p in model.backbone.parameters())
        if lam:
            total = total + 0.5 * lam * sum(
                p.pow(2).sum() for p in embedding_weights(model.embedding)
            )
        return total

    return loss
