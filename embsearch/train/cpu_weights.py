"""A model's weights as CPU tensors, detached from autograd: what a run saves (``model.pt``),
a supernet keeps for a resume, and a selection hands to the runner."""

from __future__ import annotations

from collections.abc import Mapping

import torch


def cpu_weights(state: Mapping[str, torch.Tensor], copy: bool = False) -> dict[str, torch.Tensor]:
    """``state`` (a ``state_dict()``) on the CPU, detached; ``copy``: in new storage even where
    it already is on the CPU (a model trained further must not change what was kept)."""
    out = {k: v.detach().cpu() for k, v in state.items()}
    return {k: v.clone() for k, v in out.items()} if copy else out
