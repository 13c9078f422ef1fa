"""ESAPN's paired probe (:mod:`embsearch.controllers.esapn_walk`, ``reward_base='paired'``):
the batch's per-row losses with the ids whose pending decision is an enlarge back at their
size before it, under the same weights, dropout masks and batch as the training step, so
that the loss change is the growth's alone (the labels' noise cancels).

Cost (issue 23: a streaming pass at most 1.5x a plain epoch). The probe is one more
forward, no backward. It runs *after* the training step's forward and before its
optimiser step (the weights are the same, and a growth decided in this batch changes
nothing yet: its new columns are zero), so it replays the dropout masks the training
forward drew (:class:`ReplayDropout`) instead of drawing them again under a forked random
state: on CPU ``torch.dropout``'s Bernoulli draw took about 2 ms of a 500-row DeepFM
forward's 8, a quarter of the pass. The masks are the same ones the forked draw gave
(the recording runs ``torch.dropout``'s own steps), so the rewards are unchanged. The
probe also reuses the training forward's read of the batch's embedding rows
(``GrowingSupernet.last_lookup``: the table has not changed yet).
A backbone's random operations outside ``nn.Dropout`` modules draw from the training
forward's starting random state, as before. Batch norm's running statistics are restored
after the probe, so only the training forward updates them (the probe used to move them a
second time per batch).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import MethodType

import torch
from torch import nn

from embsearch.embeddings.supernets import GrowingSupernet


class ReplayDropout:
    """While installed (:meth:`installed`), the model's ``nn.Dropout`` modules in training
    mode keep the mask each draws (:attr:`recording`) or apply the masks they kept
    (``recording`` false: no random draw).

    On the CPU a recording module runs ``torch.dropout``'s own CPU steps (a float noise
    ``bernoulli_(1 - p)``, divided by ``1 - p``, times the input: what ``nn.Dropout`` runs in
    a plain epoch, the same draws and values) and keeps the noise, so the probe's replay is
    one product. (``torch.native_dropout``'s boolean mask, used before, was cast to float
    three times a batch: in its forward, its backward and the replay.) Elsewhere
    ``torch.dropout`` is ``native_dropout``'s fused kernel, kept with its mask."""

    def __init__(self, model: nn.Module) -> None:
        self.modules = [m for m in model.modules() if type(m) is nn.Dropout and 0 < m.p < 1]
        self.norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self.masks: dict[int, torch.Tensor] = {}
        self.recording = True

    def _forward(self, module: nn.Dropout, x: torch.Tensor) -> torch.Tensor:
        if not module.training:
            return x
        key = id(module)
        if self.recording:
            if x.device.type == "cpu":
                noise = torch.empty_like(x).bernoulli_(1 - module.p)
                noise.div_(1 - module.p)
                self.masks[key] = noise
                return x.mul_(noise) if module.inplace else x * noise
            out, mask = torch.native_dropout(x, module.p, True)
            self.masks[key] = mask
            return out
        mask = self.masks[key]
        if mask.dtype != torch.bool:  # the CPU's noise
            return x * mask
        return x * mask * (1.0 / (1.0 - module.p))

    @contextmanager
    def installed(self) -> Iterator[ReplayDropout]:
        """The modules' forwards replaced for the block, restored after it."""
        for m in self.modules:
            m.forward = MethodType(lambda mod, x: self._forward(mod, x), m)  # type: ignore[method-assign]
        try:
            yield self
        finally:
            for m in self.modules:
                del m.forward
            self.masks.clear()


def probe_dims(
    emb: GrowingSupernet,
    x: torch.Tensor,
    rows: torch.Tensor,
    sizes_before: torch.Tensor,
    values: torch.Tensor,
) -> torch.Tensor:
    """``[batch, fields]`` dims of the batch's ids, the table rows ``rows`` (their pending
    decision an enlarge) at the candidate index ``sizes_before`` (per table row) instead of
    their own. Taken before the batch's decisions grow any row."""
    table_rows = emb.rows_of(x.to(emb.row_dims.device))
    dims = emb.row_dims[table_rows]
    flag = torch.zeros(len(emb.row_dims), dtype=torch.bool, device=dims.device)
    flag[rows.to(dims.device)] = True
    hit = flag[table_rows]
    dims[hit] = values[sizes_before[table_rows[hit].cpu()]].to(dims.device)
    return dims


@torch.no_grad()
def probe_losses(
    model: nn.Module,
    emb: GrowingSupernet,
    x: torch.Tensor,
    y: torch.Tensor,
    dims: torch.Tensor,
    replay: ReplayDropout,
    rng_state: torch.Tensor,
    loss_fn: nn.Module,
) -> torch.Tensor:
    """Per-row losses of the batch under ``dims`` (:func:`probe_dims`), in training mode with
    the training forward's dropout masks (``replay``), its read of the batch's rows where
    it kept one (``emb.last_lookup``, with ``keep_lookup``) and, for any other random
    operation, its starting random state ``rng_state``; batch norm's running statistics
    are left as the training forward set them. An evaluation-mode probe (running statistics, no
    dropout) lost the planted signal (informative/noise 0.7-1.2 over seeds 0-5)."""
    # batch norm in training mode without its running statistics: the batch's own, as
    # before, and nothing updated (the originals are saved for the training step's backward)
    norms = [m for m in replay.norms if m.training]
    saved = [dict(m._buffers) for m in norms]
    for m, bufs in zip(norms, saved):
        m._buffers.update(dict.fromkeys(bufs))
    devices = [x.device] if x.device.type == "cuda" else []
    emb.example_dims = dims
    if emb.last_lookup is not None:  # the training forward's read of this batch's rows
        emb.example_lookup = emb.last_lookup.detach()
    replay.recording = False
    try:
        with torch.random.fork_rng(devices=devices):
            torch.set_rng_state(rng_state)
            return loss_fn(model(x).float(), y)
    finally:
        replay.recording = True
        emb.example_dims = emb.example_lookup = None
        for m, bufs in zip(norms, saved):
            m._buffers.update(bufs)
