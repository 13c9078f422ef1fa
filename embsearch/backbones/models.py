"""Backbones: the network after the embeddings. Input ``[batch, fields, width]``, output logits.

Backbones know nothing of the table's layout. The first-order ("linear") terms of LR, FM,
DeepFM and Wide&Deep are a linear layer over the embeddings rather than a second per-id
table, so that every id-indexed byte lives in the searched, budgeted table.

Backbones whose logit is a sum of terms over ``e.flatten(1)`` (a linear layer, FM's pairwise
term, an MLP) say so through ``additive_terms()``; the inherited-weight scorer
(``compact_forward.py``) uses that to drop zeroed embedding columns before the layers. A
plug-in backbone may declare the same; one that does not is scored with its plain forward.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from embsearch.backbones.autoias import AutoIASNet
from embsearch.backbones.layers import AdditiveTerm, fm_interaction, mlp


class LR(nn.Module):
    """Logistic regression over the concatenated embeddings."""

    def __init__(self, num_fields: int, width: int) -> None:
        super().__init__()
        self.linear = nn.Linear(num_fields * width, 1)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return self.linear(e.flatten(1)).squeeze(-1)

    def output_bias(self) -> nn.Parameter:
        """The bias added to every logit (set to the base rate's log-odds before training)."""
        return self.linear.bias

    def additive_terms(self) -> list[AdditiveTerm]:
        """The logit as a sum of terms over ``e.flatten(1)`` (see the module docstring)."""
        return [("linear", self.linear)]


class FM(nn.Module):
    """Factorization machine (Rendle, 2010)."""

    def __init__(self, num_fields: int, width: int) -> None:
        super().__init__()
        self.linear = nn.Linear(num_fields * width, 1)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return self.linear(e.flatten(1)).squeeze(-1) + fm_interaction(e)

    def output_bias(self) -> nn.Parameter:
        """The bias added to every logit (set to the base rate's log-odds before training)."""
        return self.linear.bias

    def additive_terms(self) -> list[AdditiveTerm]:
        """The logit as a sum of terms over ``e.flatten(1)`` (see the module docstring)."""
        return [("linear", self.linear), ("fm", None)]


class DNN(nn.Module):
    """A plain MLP over the concatenated embeddings."""

    def __init__(
        self,
        num_fields: int,
        width: int,
        hidden_units: Sequence[int] = (256, 128),
        activation: str = "relu",
        batch_norm: bool = True,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.net = mlp(
            num_fields * width, hidden_units, dropout, activation=activation, batch_norm=batch_norm
        )

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return self.net(e.flatten(1)).squeeze(-1)

    def output_bias(self) -> nn.Parameter:
        """The bias added to every logit (set to the base rate's log-odds before training)."""
        return self.net[-1].bias

    def additive_terms(self) -> list[AdditiveTerm]:
        """The logit as a sum of terms over ``e.flatten(1)`` (see the module docstring)."""
        return [("mlp", self.net)]


class DeepFM(nn.Module):
    """DeepFM (Guo et al., 2017): FM and DNN in parallel over shared embeddings."""

    def __init__(
        self,
        num_fields: int,
        width: int,
        hidden_units: Sequence[int] = (256, 128),
        activation: str = "relu",
        batch_norm: bool = True,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.fm = FM(num_fields, width)
        self.dnn = DNN(num_fields, width, hidden_units, activation, batch_norm, dropout)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return self.fm(e) + self.dnn(e)

    def output_bias(self) -> nn.Parameter:
        """The bias added to every logit (set to the base rate's log-odds before training)."""
        return self.fm.output_bias()

    def additive_terms(self) -> list[AdditiveTerm]:
        """The logit as a sum of terms over ``e.flatten(1)`` (see the module docstring)."""
        return self.fm.additive_terms() + self.dnn.additive_terms()


class WideDeep(nn.Module):
    """Wide & Deep (Cheng et al., 2016): a linear (wide) part plus a DNN."""

    def __init__(
        self,
        num_fields: int,
        width: int,
        hidden_units: Sequence[int] = (256, 128),
        activation: str = "relu",
        batch_norm: bool = True,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.wide = nn.Linear(num_fields * width, 1)
        self.deep = DNN(num_fields, width, hidden_units, activation, batch_norm, dropout)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return self.wide(e.flatten(1)).squeeze(-1) + self.deep(e)

    def output_bias(self) -> nn.Parameter:
        """The bias added to every logit (set to the base rate's log-odds before training)."""
        return self.wide.bias

    def additive_terms(self) -> list[AdditiveTerm]:
        """The logit as a sum of terms over ``e.flatten(1)`` (see the module docstring)."""
        return [("linear", self.wide), *self.deep.additive_terms()]


class DCNv2(nn.Module):
    """DCN-V2 (Wang et al., 2021), stacked: full-rank cross layers, then a DNN."""

    def __init__(
        self,
        num_fields: int,
        width: int,
        cross_layers: int = 3,
        hidden_units: Sequence[int] = (256, 128),
        activation: str = "relu",
        batch_norm: bool = True,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        d = num_fields * width
        self.cross = nn.ModuleList(nn.Linear(d, d) for _ in range(cross_layers))
        self.deep = mlp(d, hidden_units, dropout, activation=activation, batch_norm=batch_norm)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        x0 = e.flatten(1)
        x = x0
        for layer in self.cross:
            x = x0 * layer(x) + x
        return self.deep(x).squeeze(-1)

    def output_bias(self) -> nn.Parameter:
        """The bias added to every logit (set to the base rate's log-odds before training)."""
        return self.deep[-1].bias


BACKBONES: dict[str, type[nn.Module]] = {
    "lr": LR,
    "fm": FM,
    "dnn": DNN,
    "deepfm": DeepFM,
    "dcnv2": DCNv2,
    "widedeep": WideDeep,
    "autoias": AutoIASNet,  # the network AutoIAS searched (its plans' extra["architecture"])
}
