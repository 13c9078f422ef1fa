"""ESAPN's passes resume (issue 22 item 4; :mod:`embsearch.controllers.esapn`).

ESAPN has no supernet epochs to checkpoint: with ``--stream`` each budget's search is one
pass over the data in time order, the model, the policies and the per-id sizes changing at
every batch. Its natural units are the batch and the pass, so ``RUN_DIR/passes.pt``
(:data:`~embsearch.controllers.rl_state.PASSES_NAME`) holds

- every finished pass (one per budget): the per-id walk state (sizes, counts, losses,
  pending decisions, price, ...), its record and the untrained policies' state (the null
  signal's); a resume does not run it again;
- the pass in progress, at the first batch boundary :data:`SECONDS` after the last
  checkpoint, or :data:`OVERHEAD` times the last one's cost if that is longer (a large
  table's write then takes at most 1/:data:`OVERHEAD` of the pass), and at each epoch's end
  without ``--stream``: the model (with each row's grown dim), its optimiser, the policy networks
  and their optimiser, the walk state, every random generator (the model's dropout, the
  policies' sampling: :func:`~embsearch.train.checkpoint.generator_states`), and how many
  batches were done; a resume rebuilds the pass as it started, puts these back and skips
  the batches done (their order is fixed: the stream's, or a seeded permutation per epoch),
  so it continues to the uninterrupted run's sizes and plan.

Every write is atomic (a kill mid-write leaves the previous one).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, fields
from typing import Any

import torch
from torch import nn

from embsearch.backbones import CTRModel
from embsearch.context import SearchContext
from embsearch.controllers.esapn_walk import Walk
from embsearch.controllers.rl_state import PASSES_NAME, load_state, save_state
from embsearch.embeddings.supernets import GrowingSupernet
from embsearch.train.checkpoint import generator_states, restore_generators

SECONDS = 60.0  # between two checkpoints of a pass in progress (a few ms each on frappe)
OVERHEAD = 20  # ... or this many times the last checkpoint's own seconds, if longer


def walk_state(walk: Walk) -> dict[str, Any]:
    """Every field of ``walk`` but its settings (rebuilt from the parameters)."""
    return {f.name: getattr(walk, f.name) for f in fields(walk) if f.name != "settings"}


def load_walk(walk: Walk, saved: dict[str, Any]) -> None:
    """Put :func:`walk_state`'s fields back into ``walk`` (built with the same settings)."""
    for k, v in saved.items():
        setattr(walk, k, tuple(v) if k == "previous" else v)


class Passes:
    """The passes of one search as ``RUN_DIR/passes.pt`` holds them (module docstring):
    ``done`` (budget -> its finished pass) and ``current`` (the pass in progress, or None)."""

    def __init__(self, ctx: SearchContext) -> None:
        self.ctx = ctx
        self.done: dict[int, dict[str, Any]] = {}
        self.current: dict[str, Any] | None = None
        self.resumed = load_state(ctx, PASSES_NAME, self)

    def state_dict(self) -> dict[str, Any]:
        return {"done": self.done, "current": self.current}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.done = {int(b): p for b, p in state["done"].items()}
        self.current = state["current"]

    def finished(self, budget: int, walk: Walk, record: dict, initial: dict) -> None:
        """Keep ``budget``'s finished pass (and forget the pass in progress)."""
        self.done[int(budget)] = {
            "walk": walk_state(walk),
            "record": record,
            "initial": initial,
            "settings": asdict(walk.settings),
        }
        self.current = None
        save_state(self.ctx, PASSES_NAME, self)


class PassInProgress:
    """One budget's pass of ``epochs`` epochs, checkpointed as :meth:`batches` says."""

    def __init__(
        self,
        passes: Passes,
        budget: int,
        model: nn.Module,
        policy: nn.Module,
        opts: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
        walk: Walk,
        epochs: int,
    ) -> None:
        self.passes, self.budget, self.walk, self.epochs = passes, int(budget), walk, epochs
        self.model, self.policy, self.opts = model, policy, opts
        self.both = nn.ModuleDict({"model": model, "policy": policy})  # their generators
        self.epoch, self.skip, self.seen = 0, 0, 0  # where the pass continues
        self.cost = 0.0  # the last checkpoint's seconds

    def restore(self) -> bool:
        """On a resume: the killed run's state of this pass, if it saved one."""
        cur = self.passes.current
        if cur is None or int(cur["budget"]) != self.budget:
            return False
        self.model.load_state_dict(cur["model"])
        self.model.embedding.row_dims.copy_(cur["row_dims"])  # not in the state_dict
        self.policy.load_state_dict(cur["policy"])
        for opt, saved in zip(self.opts, cur["opts"]):
            opt.load_state_dict(saved)
        load_walk(self.walk, cur["walk"])
        restore_generators(cur["generators"], self.both, None)
        self.epoch, self.skip, self.seen = int(cur["epoch"]), int(cur["skip"]), int(cur["seen"])
        self.passes.ctx.record(
            event="esapn pass resumed", controller="esapn", budget=self.budget, after=self.seen
        )
        return True

    def save(self, epoch: int, skip: int) -> None:
        """Checkpoint the pass after ``skip`` batches of ``epoch`` (``seen`` in all)."""
        store = self.passes.ctx.store
        if store is None or store.run_dir is None:
            return
        t0 = time.perf_counter()
        self.passes.current = {
            "budget": self.budget,
            "epoch": epoch,
            "skip": skip,
            "seen": self.seen,
            "model": self.model.state_dict(),
            "row_dims": self.model.embedding.row_dims.detach().cpu(),
            "policy": self.policy.state_dict(),
            "opts": [opt.state_dict() for opt in self.opts],
            "walk": walk_state(self.walk),
            "generators": generator_states(self.both, None),
        }
        save_state(self.passes.ctx, PASSES_NAME, self.passes)
        self.cost = time.perf_counter() - t0

    def batches(
        self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], epoch: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``batches`` of ``epoch`` less those a resumed pass did; a checkpoint before the
        first batch :data:`SECONDS` (or :data:`OVERHEAD` times its cost) after the last one
        (when a batch is asked for, the steps of the batches before it are done), and at the
        epoch's end but the last."""
        skip = self.skip if epoch == self.epoch else 0
        last = time.perf_counter()
        for i, batch in enumerate(batches):
            if i < skip:
                continue
            if i > skip and time.perf_counter() - last >= max(SECONDS, OVERHEAD * self.cost):
                self.save(epoch, i)
                last = time.perf_counter()
            self.seen += 1
            yield batch
        if epoch + 1 < self.epochs:
            self.save(epoch + 1, 0)


def restore_finished(ctrl: Any, ctx: SearchContext, budget: int) -> bool:
    """Put ``budget``'s finished pass back into the ESAPN ``ctrl``'s state (its walk, record
    and untrained policies; an untrained model lends the null signal its row offsets);
    whether the killed run had finished it."""
    done = ctrl.state.passes.done.get(int(budget))
    if done is None:
        return False
    space = ctrl.state.space
    emb = GrowingSupernet(
        space.width, space.candidates, space.groups, space.schema.names, space.candidates[0]
    )
    model = CTRModel(emb, ctrl.supernet_context(ctx).make_backbone())
    walk = Walk(
        ctrl._row_costs(ctrl.state.space),
        float(budget),
        model.embedding.field_of_row.cpu(),
        ctrl._settings(ctx),
    )
    load_walk(walk, done["walk"])
    ctrl.state.walks[budget], ctrl.state.records[budget] = walk, done["record"]
    ctrl.state.initial[budget] = done["initial"]
    ctrl.state.supernet = model
    ctx.log(f"esapn [budget {budget} B]: its pass finished before the resume; not run again")
    return True
