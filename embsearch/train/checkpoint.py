"""A training's per-epoch checkpoint (issue 22 item 4: "a one-shot controller's supernet
resumes from its last per-epoch checkpoint (model, optimiser, RNG states)").

:func:`save_checkpoint` writes, atomically (:func:`embsearch._atomic.write_file`: a kill
mid-write leaves the previous epoch's file), the trainer's :class:`~embsearch.train.trainer.
TrainerState` after an epoch together with every random generator the next epochs draw
from: python's, numpy's and torch's global ones (CUDA's too where there is one), the
trainer's batch-order generator and any ``torch.Generator`` a module of the model holds (a
supernet's dim sampler, :class:`~embsearch.embeddings.supernets.masked.MaskedSupernet`).
:func:`load_checkpoint` and :func:`restore_generators` put them back, so the epochs after
the checkpoint draw what an uninterrupted run would have drawn: the same weights, bitwise,
on the same device and threads (tests/test_supernet_resume.py).

A training whose hooks keep state outside the model (NIS's and AutoIAS's policies, drawn
from and updated between weight steps) hands that state over as a :class:`Stateful`; its
``state_dict()`` is saved beside the trainer's (``hooks``) and put back before the model is
rebuilt on a resume.
"""

from __future__ import annotations

import random
from dataclasses import fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from embsearch._atomic import write_file
from embsearch.train.trainer import TrainerState

CHECKPOINT_NAME = "supernet.epoch.pt"  # in the run directory while its supernet trains


class Stateful(Protocol):
    """State a training hook keeps outside the model: tensors, numbers, strings, lists and
    dicts of them (what ``torch.load(weights_only=True)`` reads back)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def _module_generators(model: nn.Module) -> dict[str, torch.Generator]:
    """Every ``torch.Generator`` held as an attribute of a module of ``model``, by path."""
    out = {}
    for name, module in model.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, torch.Generator):
                out[f"{name}:{attr}"] = value
    return out


def generator_states(model: nn.Module, generator: torch.Generator | None) -> dict[str, Any]:
    """The states of every generator training draws from (see the module docstring)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(np.asarray(keys).copy()), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "batches": None if generator is None else generator.get_state(),
        "modules": {k: g.get_state() for k, g in _module_generators(model).items()},
    }


def restore_generators(
    states: dict[str, Any], model: nn.Module, generator: torch.Generator | None
) -> None:
    """Put back what :func:`generator_states` took (``model`` built as before)."""
    random.setstate(states["python"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy(), pos, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    if generator is not None and states["batches"] is not None:
        generator.set_state(states["batches"])
    held = _module_generators(model)
    for key, state in states["modules"].items():
        held[key].set_state(state)


def save_checkpoint(
    path: Path,
    state: TrainerState,
    model: nn.Module,
    generator: torch.Generator | None,
    hooks: Stateful | None = None,
) -> None:
    """Write ``state``, the generators' states and ``hooks``' state to ``path`` atomically."""
    trainer = {f.name: getattr(state, f.name) for f in fields(state)}  # no copies
    blob = {"trainer": trainer, "generators": generator_states(model, generator)}
    if hooks is not None:
        blob["hooks"] = hooks.state_dict()
    write_file(path, lambda tmp: torch.save(blob, tmp))


def load_checkpoint(path: Path) -> tuple[TrainerState, dict[str, Any]] | None:
    """``path``'s trainer state and generator states (``None``: no checkpoint there); the
    hooks' state, when saved, is under the generator states' key ``"hooks"``."""
    if not path.is_file():
        return None
    blob = torch.load(path, map_location="cpu", weights_only=True)
    return TrainerState(**blob["trainer"]), {**blob["generators"], "hooks": blob.get("hooks")}
