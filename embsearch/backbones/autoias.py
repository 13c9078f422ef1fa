"""AutoIAS's networks (Wei, Wang and Zhu, "AutoIAS: Automatic Integrated Architecture
Searcher for Click-Through Rate Prediction", CIKM 2021): the searched network after the
table, and the supernet that plays every network of the search space with shared weights.

The network (the paper's three components after the embedding layer):

- *interaction layer*: for every pair of fields ``(i, j)``, ``i < j``, one interaction
  function from :data:`OPS`: ``none``; ``inner``, the inner product ``<e_i, e_j>`` (FM,
  IPNN); ``hadamard``, the element-wise product ``e_i * e_j`` (a vector of ``width``);
  ``projected``, the projected (kernel) product ``e_i^T W_ij e_j`` with a learned
  ``[width, width]`` matrix per pair (OPNN's kernel product, the paper's generalised
  product). Embeddings of different dims meet zero-padded to the width (``pad``), so a
  pair interacts over the dims both fields have;
- *deep network*: the flattened embeddings and the interactions' outputs, concatenated,
  into an MLP whose widths (one per layer) are searched, then one output unit (the
  paper's high-order implicit interactions over the explicit ones, PNN's layout).

An architecture is recorded as ``{"interactions": {"i,j": op, ...}, "mlp": [widths]}``
(pairs left out are ``none``), the backbone parameter ``architecture`` of :class:`AutoIASNet`,
so ``retrain``, ``export`` and ``load_model`` rebuild exactly the searched network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from embsearch.backbones.layers import mlp

OPS = ("none", "inner", "hadamard", "projected")  # index 0: no interaction


def field_pairs(num_fields: int) -> list[tuple[int, int]]:
    """Every pair ``(i, j)``, ``i < j``, in row-major order (the order of every op list)."""
    return [(i, j) for i in range(num_fields) for j in range(i + 1, num_fields)]


def pair_key(i: int, j: int) -> str:
    return f"{i},{j}"


def parse_architecture(
    architecture: Mapping[str, Any] | None, num_fields: int, hidden_units: Sequence[int]
) -> tuple[list[int], list[int]]:
    """``(op index per pair, MLP widths)`` of ``architecture``; ``None``: every pair's inner
    product and ``hidden_units``. ``ValueError`` naming what is wrong otherwise."""
    pairs = field_pairs(num_fields)
    if architecture is None:
        return [OPS.index("inner")] * len(pairs), [int(h) for h in hidden_units]
    unknown = set(architecture) - {"interactions", "mlp"}
    if unknown:
        raise ValueError(f"architecture keys are 'interactions' and 'mlp', got {sorted(unknown)}")
    index = {pair_key(i, j): p for p, (i, j) in enumerate(pairs)}
    ops = [0] * len(pairs)
    for key, op in dict(architecture.get("interactions") or {}).items():
        if key not in index:
            raise ValueError(
                f"architecture pair {key!r} is not 'i,j' with 0 <= i < j < {num_fields}"
            )
        if op not in OPS:
            raise ValueError(f"architecture op {op!r} of pair {key} is not one of {OPS}")
        ops[index[key]] = OPS.index(op)
    widths = architecture.get("mlp", list(hidden_units))
    if not isinstance(widths, (list, tuple)) or not widths or any(int(w) < 1 for w in widths):
        raise ValueError(f"architecture mlp must be a non-empty list of widths >= 1, got {widths}")
    return ops, [int(w) for w in widths]


def architecture_record(ops: Sequence[int], widths: Sequence[int], num_fields: int) -> dict:
    """The JSON form of ``(op index per pair, MLP widths)`` (``none`` pairs left out)."""
    pairs = field_pairs(num_fields)
    return {
        "interactions": {pair_key(i, j): OPS[o] for (i, j), o in zip(pairs, ops) if o},
        "mlp": [int(w) for w in widths],
    }


def _products(
    e: torch.Tensor, left: torch.Tensor, right: torch.Tensor, kernels: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Hadamard ``[B, P, w]``, inner ``[B, P]`` and projected ``[B, P]`` (None: no kernels)
    products of the pairs ``(left[p], right[p])`` of ``e`` ``[B, F, w]``."""
    ei, ej = e.index_select(1, left), e.index_select(1, right)  # backward: one index_add each
    had = ei * ej
    proj = None if kernels is None else torch.einsum("bpw,pwv,bpv->bp", ei, kernels, ej)
    return had, had.sum(-1), proj


def _kernels(pairs: int, width: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(pairs, width, width) / width)


class AutoIASNet(nn.Module):
    """AutoIAS's searched network: per-pair interactions and an MLP (module docstring)."""

    def __init__(
        self,
        num_fields: int,
        width: int,
        architecture: Mapping[str, Any] | None = None,
        hidden_units: Sequence[int] = (256, 128),
        activation: str = "relu",
        batch_norm: bool = True,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        ops, widths = parse_architecture(architecture, num_fields, hidden_units)
        pairs = field_pairs(num_fields)
        self.architecture = architecture_record(ops, widths, num_fields)
        for name, code in (("inner", 1), ("had", 2), ("proj", 3)):
            chosen = [p for p, o in zip(pairs, ops) if o == code]
            self.register_buffer(
                f"{name}_pairs", torch.tensor(chosen, dtype=torch.long).reshape(-1, 2), False
            )
        n_proj = int(self.proj_pairs.shape[0])
        self.kernels = _kernels(n_proj, width) if n_proj else None
        n_in = (
            num_fields * width
            + int(self.inner_pairs.shape[0])
            + int(self.had_pairs.shape[0]) * width
            + n_proj
        )
        self.net = mlp(n_in, widths, dropout, activation=activation, batch_norm=batch_norm)

    def interactions(self, e: torch.Tensor) -> torch.Tensor:
        """The chosen pairs' outputs, ``[B, inner + hadamard * width + projected]``."""
        out = [e.flatten(1)]
        if len(self.inner_pairs):
            out.append((e[:, self.inner_pairs[:, 0]] * e[:, self.inner_pairs[:, 1]]).sum(-1))
        if len(self.had_pairs):
            out.append((e[:, self.had_pairs[:, 0]] * e[:, self.had_pairs[:, 1]]).flatten(1))
        if self.kernels is not None:
            ei, ej = e[:, self.proj_pairs[:, 0]], e[:, self.proj_pairs[:, 1]]
            out.append(torch.einsum("bpw,pwv,bpv->bp", ei, self.kernels, ej))
        return torch.cat(out, 1)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return self.net(self.interactions(e)).squeeze(-1)

    def output_bias(self) -> nn.Parameter:
        """The bias added to every logit (set to the base rate's log-odds before training)."""
        return self.net[-1].bias


class AutoIASSupernet(nn.Module):
    """Every AutoIAS network with shared weights: all :data:`OPS` on every pair and the
    MLP at its widest (``max_widths``). A sub-architecture keeps its pairs' chosen outputs
    and the first ``k`` units of each layer (masks): the first layer's weights on the
    outputs it keeps, and each layer's on the units it keeps, are the sub-network's.

    ``sampled = (ops [B, P], widths [B, L])`` (set by the sampler before a training forward)
    gives each example its own sub-architecture; :meth:`set_architecture` fixes one for
    evaluation; with neither, the forward plays the whole supernet (every op of every pair,
    the widest MLP): the teacher of AutoIAS's distillation."""

    def __init__(
        self,
        num_fields: int,
        width: int,
        max_widths: Sequence[int],
        activation: str = "relu",
        batch_norm: bool = True,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        pairs = field_pairs(num_fields)
        self.width, self.num_fields, self.n_pairs = int(width), num_fields, len(pairs)
        idx = torch.tensor(pairs, dtype=torch.long).reshape(-1, 2)
        self.register_buffer("left", idx[:, 0], False)
        self.register_buffer("right", idx[:, 1], False)
        self.kernels = _kernels(len(pairs), width)
        n_in = num_fields * width + len(pairs) * (2 + width)
        self.blocks = nn.ModuleList()
        for h in max_widths:
            self.blocks.append(
                mlp(n_in, [h], dropout, None, activation=activation, batch_norm=batch_norm)
            )
            n_in = h
        self.out = nn.Linear(n_in, 1)
        self.sampled: tuple[torch.Tensor, torch.Tensor] | None = None
        self.fixed: tuple[torch.Tensor, torch.Tensor] | None = None

    def set_architecture(self, ops: Sequence[int] | None, widths: Sequence[int] | None) -> None:
        """Play one sub-architecture (``None``: the whole supernet) until changed."""
        if ops is None or widths is None:
            self.fixed = None
            return
        dev = self.out.weight.device
        self.fixed = (
            torch.as_tensor(list(ops), dtype=torch.long, device=dev),
            torch.as_tensor(list(widths), dtype=torch.long, device=dev),
        )

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        arch = self.sampled if self.training and self.sampled is not None else self.fixed
        self.sampled = None  # one draw serves one forward
        if arch is not None and arch[0].dim() == 2 and len(arch[0]) != len(e):
            raise RuntimeError("internal: sampled architectures do not match the batch")
        return self.play(e, arch)

    def input_columns(self, ops: Sequence[int]) -> torch.Tensor:
        """The first layer's input columns a sub-architecture with ``ops`` keeps: the
        flattened embeddings, then its inner, Hadamard and projected outputs (the order of
        :class:`AutoIASNet`'s input)."""
        fw, p, w = self.num_fields * self.width, self.n_pairs, self.width
        cols = [torch.arange(fw)]
        for code, start, size in ((1, fw, 1), (2, fw + p, w), (3, fw + p + p * w, 1)):
            chosen = torch.tensor([i for i, o in enumerate(ops) if o == code], dtype=torch.long)
            cols.append((start + chosen[:, None] * size + torch.arange(size)).flatten())
        return torch.cat(cols).to(self.out.weight.device)

    @torch.no_grad()
    def play_fixed(
        self, e: torch.Tensor, ops: Sequence[int], widths: Sequence[int]
    ) -> torch.Tensor:
        """Evaluation-mode logits of one sub-architecture computed as its own network: only
        its pairs' products, only the first layer's weights on the outputs it keeps and
        each layer's first ``k`` units (the same logits as :meth:`play` with its masks, up
        to float rounding, at a fraction of the cost)."""
        ops = [int(o) for o in ops]
        parts = [e.flatten(1)]
        for code in (1, 2, 3):
            idx = [p for p, o in enumerate(ops) if o == code]
            if not idx:
                continue
            sel = torch.tensor(idx, dtype=torch.long, device=e.device)
            ei, ej = e[:, self.left[sel]], e[:, self.right[sel]]
            if code == 1:
                parts.append((ei * ej).sum(-1))
            elif code == 2:
                parts.append((ei * ej).flatten(1))
            else:
                parts.append(torch.einsum("bpw,pwv,bpv->bp", ei, self.kernels[sel], ej))
        h, cols = torch.cat(parts, 1), self.input_columns(ops)
        for block, k in zip(self.blocks, widths):
            k = int(k)
            for module in block:
                if isinstance(module, nn.Linear):
                    h = F.linear(h, module.weight[:k, cols], module.bias[:k])
                elif isinstance(module, nn.BatchNorm1d):
                    h = F.batch_norm(
                        h,
                        module.running_mean[:k],
                        module.running_var[:k],
                        module.weight[:k],
                        module.bias[:k],
                        False,
                        0.0,
                        module.eps,
                    )
                elif not isinstance(module, nn.Dropout):
                    h = module(h)
            cols = torch.arange(k, device=h.device)
        return F.linear(h, self.out.weight[:, cols], self.out.bias).squeeze(-1)

    def play(self, e: torch.Tensor, arch: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        """Logits of ``e`` under ``arch`` (``(ops, widths)``, per example ``[B, .]`` or one
        for all ``[.]``; ``None``: the whole supernet)."""
        had, inner, proj = _products(e, self.left, self.right, self.kernels)
        if arch is not None:
            ops = arch[0] if arch[0].dim() == 2 else arch[0].unsqueeze(0)
            inner = inner * (ops == 1)
            had = had * (ops == 2).unsqueeze(-1)
            proj = proj * (ops == 3)
        h = torch.cat([e.flatten(1), inner, had.flatten(1), proj], 1)
        for layer, block in enumerate(self.blocks):
            h = block(h)
            if arch is not None:
                k = arch[1][..., layer].unsqueeze(-1)  # [B, 1] or [1]
                units = torch.arange(h.shape[1], device=h.device)
                h = h * (units < k)
        return self.out(h).squeeze(-1)
