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
    """The table's id-indexed weights: the embedding module's ``table_weights()`` (every
    embedding embsearch builds has one: a :class:`MixedDimEmbedding`'s blocks fused per dim,
    a supernet's shared table). A module without it (a plug-in's own) has none to penalise:
    projections, transforms and architecture weights are never guessed to be the table."""
    get = getattr(embedding, "table_weights", None)
    return list(get()) if callable(get) else []


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


def combine(
    *losses: Callable[[nn.Module], torch.Tensor] | None,
) -> Callable[[nn.Module], torch.Tensor] | None:
    """The sum of the given loss terms (``None`` ones left out), or ``None`` if none is given:
    a controller's own regulariser plus the backbone's penalty, in one ``extra_loss``."""
    given = [f for f in losses if f is not None]
    if not given:
        return None
    if len(given) == 1:
        return given[0]
    return lambda model: sum((f(model) for f in given[1:]), given[0](model))
