"""ESAPN's pass over the data (:mod:`embsearch.controllers.esapn`): per batch, the policies
decide keep or enlarge for every id in it, the model trains on the batch with the grown
dims, and each id's previous decision is rewarded on the id's loss now.

:class:`Walk` holds the per-id state of one search: each table row's dim (an index into
the candidates), its frequency so far, its last losses, its pending decision, and the bytes
spent. Dims only grow, and a growth that would take the per-id bytes over the budget is
masked (the policies never see ``-inf``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from embsearch.controllers.esapn_policy import (
    ENLARGE,
    KEEP,
    PolicyTable,
    SizePolicy,
    field_advantages,
    reinforce_step,
)
from embsearch.controllers.esapn_probe import ReplayDropout, probe_dims, probe_losses
from embsearch.embeddings.supernets import GrowingSupernet

PRICE_STEP = 1.05  # the price's change per batch (adapt_price)


@dataclass
class WalkSettings:
    """The knobs of one pass (ESAPN's parameters, :mod:`.esapn_params`); ``batches``: how
    many the search will see (the budget's pacing)."""

    buckets: int = 16
    last_losses: int = 5
    reward_base: str = "paired"
    cost_weight: float = 0.0
    advantage: str = "field"
    pace: bool = True
    decide_at: str = "doubling"
    adapt_price: bool = True
    pool: bool = True
    probe_every: int = 2
    batches: int = 1


@dataclass
class Rewarded:
    """Decisions rewarded at a batch: their rows, states (bucket, size, could grow),
    actions and rewards."""

    rows: torch.Tensor
    states: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor


@dataclass
class Walk:
    """Per-row state over the joint table's rows (every field's ids, offset per field).

    ``row_cost[k]``: bytes of one row at candidate ``k``; ``budget``: the bytes every row
    together may take; ``field_of_row``: each row's field."""

    row_cost: torch.Tensor  # float64 [sizes]
    budget: float
    field_of_row: torch.Tensor  # int64 [rows]
    settings: WalkSettings = field(default_factory=WalkSettings)
    size: torch.Tensor = field(init=False)  # int64 [rows]: candidate index
    count: torch.Tensor = field(init=False)  # int64 [rows]: appearances so far
    losses: torch.Tensor = field(init=False)  # float64 [rows, T]: the last T batch losses
    seen: torch.Tensor = field(init=False)  # int64 [rows]: losses recorded
    pending: torch.Tensor = field(init=False)  # int64 [rows]: last action, -1 none
    pending_state: torch.Tensor = field(init=False)  # int64 [rows, 3]: bucket, size, can_grow
    pending_cost: torch.Tensor = field(init=False)  # float64 [rows]: the bytes it took
    gain_sum: torch.Tensor = field(init=False)  # float64 [rows]: paired gains since then
    gain_n: torch.Tensor = field(init=False)  # int64 [rows]: batches measured since then
    previous: tuple[torch.Tensor, torch.Tensor, torch.Tensor] = field(init=False)
    row_step: torch.Tensor = field(init=False)  # float64 [sizes]: bytes of a growth from k
    spent: float = field(init=False)
    start: float = field(init=False)
    n_fields: int = field(init=False)
    step: int = 0  # batches decided
    price: float = field(init=False)  # the bytes' price, in the batch's mean gain per byte
    grown: int = 0
    refused: int = 0
    updates: int = 0

    def __post_init__(self) -> None:
        rows = len(self.field_of_row)
        self.size = torch.zeros(rows, dtype=torch.long)
        self.count = torch.zeros(rows, dtype=torch.long)
        self.losses = torch.zeros(rows, self.settings.last_losses, dtype=torch.float64)
        self.seen = torch.zeros(rows, dtype=torch.long)
        self.pending = torch.full((rows,), -1, dtype=torch.long)
        self.pending_state = torch.zeros(rows, 3, dtype=torch.long)
        self.pending_cost = torch.zeros(rows, dtype=torch.float64)
        self.gain_sum = torch.zeros(rows, dtype=torch.float64)
        self.gain_n = torch.zeros(rows, dtype=torch.long)
        self.spent = self.start = float(self.row_cost[0]) * rows
        self.n_fields = int(self.field_of_row.max()) + 1 if rows else 0
        last = len(self.row_cost) - 1
        self.row_step = self.row_cost[torch.arange(1, last + 2).clamp(max=last)] - self.row_cost
        self.price = self.settings.cost_weight
        if self.spent > self.budget:
            raise ValueError(f"budget {self.budget} B is below the smallest dims {self.spent} B")

    @property
    def allowance(self) -> float:
        """Bytes per row at the budget: the unit of the growth cost."""
        return max(self.budget / len(self.size), 1e-9)

    def allowed(self) -> float:
        """The bytes the ids may hold by now: the budget, or with ``pace`` its share of the
        growth so far as the batches pass (``(step + 1) / batches`` of it)."""
        if not self.settings.pace:
            return self.budget
        share = min(1.0, (self.step + 1) / max(self.settings.batches, 1))
        return self.start + (self.budget - self.start) * share

    def deciding(self, u: torch.Tensor, occurrences: torch.Tensor) -> torch.Tensor:
        """Indices into ``u`` of the rows that decide at this batch: every one
        (``decide_at='every'``, the paper's), or those whose count so far reaches a power of
        two here (``'doubling'``: their frequency bucket changes)."""
        if self.settings.decide_at == "every":
            return torch.arange(len(u))
        before = self.count.numpy()[u.numpy()] + 1  # a crossing: count + 1 gains a top bit
        after = before + occurrences.numpy()
        return torch.from_numpy(np.flatnonzero((before ^ after) > before))

    def decide(self, u: torch.Tensor, policy: SizePolicy, table: PolicyTable | None = None) -> None:
        """Keep or enlarge each distinct row ``u`` (those deciding at this batch); grow the
        accepted ones (a refused growth is a keep). The rows' previous decisions move to
        :attr:`previous`, to be rewarded by :meth:`reward`. ``table``: the policy's
        :meth:`~SizePolicy.evaluate`, if the caller has it. (The per-row bookkeeping works on
        numpy views of the tensors: a batch's few hundred ids make it dispatch-bound.)"""
        un = u.numpy()
        pending, pending_state = self.pending.numpy(), self.pending_state.numpy()
        pending_cost = self.pending_cost.numpy()
        self.previous = tuple(  # copies
            torch.from_numpy(a[un]) for a in (pending, pending_state, pending_cost)
        )
        size = self.size.numpy()
        sizes = size[un]
        step = self.row_step.numpy()[sizes]
        slack = self.allowed() - self.spent
        can_grow = (sizes < len(self.row_cost) - 1) & (step <= slack + 1e-9)
        buckets = _buckets(self.count.numpy()[un], self.settings.buckets)
        fields = self.field_of_row.numpy()[un]
        table = policy.evaluate() if table is None else table
        actions = policy.sample_rows(policy.flat_index(fields, buckets, sizes), can_grow, table)
        # the batch's growths together within the slack: in a random order, the first that fit
        want = np.flatnonzero(actions == ENLARGE)
        order = want[torch.randperm(len(want), generator=policy.generator).numpy()]
        fits = np.cumsum(step[order]) <= slack + 1e-9
        actions[order[~fits]] = KEEP
        refused = len(fits) - int(np.count_nonzero(fits))
        self.refused += refused
        if self.settings.adapt_price:  # more growth wanted than the pace allows: dearer
            self.price *= PRICE_STEP if refused else 1.0 / PRICE_STEP
        took = actions == ENLARGE
        size[un] = sizes + took
        cost = step * took
        self.spent += float(cost.sum())  # whole bytes: exact in any order
        self.grown += int(np.count_nonzero(took))
        pending[un] = actions
        pending_state[un, 0], pending_state[un, 1], pending_state[un, 2] = buckets, sizes, can_grow
        pending_cost[un] = cost / self.allowance

    def measure(self, rows: torch.Tensor, gains: torch.Tensor) -> None:
        """Add a batch's paired gains (loss at the size before the pending growth minus the
        loss now) of ``rows``, whose pending decision is an enlarge."""
        rn = rows.numpy()
        self.gain_sum.numpy()[rn] += gains.double().numpy()
        self.gain_n.numpy()[rn] += 1

    def reward(self, u: torch.Tensor, now: torch.Tensor) -> Rewarded:
        """Rewards of the previous decisions of the rows ``u`` that just decided, from each
        row's loss ``now``. ``reward_base='paired'``: an enlarge earns its mean paired gain
        over the batches since it (:meth:`measure`), a keep 0, and a growth's bytes are
        charged :attr:`price` times the batch's mean gain per byte (at price 1 a growth must
        gain more than the batch's growths gain for their bytes); the price starts at
        ``cost_weight`` and, with ``adapt_price``, rises by 5% after a batch whose growths
        the budget's pace refused and falls by 5% after one it did not, so the growth wanted
        meets the bytes there are; ``'average'``: the mean of the
        row's last ``last_losses`` losses minus now (the paper's); ``'last'``: its last loss
        minus now; these two charge ``cost_weight`` per budget share a growth took. Then
        record this loss."""
        s = self.settings
        actions, states, costs = (a.numpy() for a in self.previous)
        un = u.numpy()
        seen, losses = self.seen.numpy(), self.losses.numpy()
        had = seen[un]
        t = s.last_losses
        ok = actions >= 0
        now_d = now.double().numpy()
        if s.reward_base == "paired":
            gain_sum, gain_n = self.gain_sum.numpy(), self.gain_n.numpy()
            n = gain_n[un]
            enlarge = actions == ENLARGE
            r = np.where(enlarge, gain_sum[un] / np.maximum(n, 1), 0.0)
            ok &= ~enlarge | (n > 0)  # an enlarge never measured: no reward
            gain_sum[un] = 0.0
            gain_n[un] = 0
            grew = ok & enlarge
            if s.pool and grew.any():  # each growth earns its (field, size)'s mean gain
                key = self.field_of_row.numpy()[un] * len(self.row_cost) + states[:, 1]
                cells = len(self.row_cost) * self.n_fields
                w = grew.astype(np.float64)
                total = np.bincount(key, weights=r * w, minlength=cells)  # in order, as
                count = np.bincount(key, weights=w, minlength=cells)  # index_add
                r = np.where(grew, total[key] / np.maximum(count[key], 1.0), r)
            # torch's sums (not numpy's pairwise ones) over the fractional byte shares
            spent = float(torch.from_numpy(costs[grew]).sum())
            gained = float(torch.from_numpy(r[grew]).sum())
            price = max(gained / spent, 0.0) if spent > 0 else 0.0
            r = r - self.price * price * costs
        else:
            if s.reward_base == "last":
                base = losses[un, np.maximum(had - 1, 0) % t]
            else:
                summed = torch.from_numpy(losses[un]).sum(1).numpy()
                base = summed / np.clip(had, 1, t)
            r = base - now_d - s.cost_weight * costs
            ok &= had > 0
        losses[un, had % t] = now_d
        seen[un] = had + 1
        idx = np.flatnonzero(ok)
        return Rewarded(
            *(torch.from_numpy(np.ascontiguousarray(a[idx])) for a in (un, states, actions, r))
        )


def _buckets(counts: np.ndarray, buckets: int) -> np.ndarray:
    """:func:`frequency_bucket` of int64 counts, exactly: ``floor(log2(1 + count))`` is the
    binary exponent of ``1 + count`` (exact below 2**53), capped at ``buckets - 1``."""
    return np.minimum(np.frexp((counts + 1).astype(np.float64))[1] - 1, buckets - 1).astype(
        np.int64
    )


def _distinct(rows: torch.Tensor, n_rows: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``torch.unique(rows, return_inverse=True, return_counts=True)`` of table rows below
    ``n_rows``: by counting where the table is small beside the batch (a sort otherwise)."""
    if n_rows > 16 * len(rows):
        return torch.unique(rows, return_inverse=True, return_counts=True)
    r = rows.numpy()
    counts = np.bincount(r, minlength=n_rows)
    u = np.flatnonzero(counts)
    position = np.empty(n_rows, dtype=np.int64)
    position[u] = np.arange(len(u))
    return tuple(torch.from_numpy(a) for a in (u, position[r], counts[u]))  # type: ignore[return-value]


def _per_id(
    per_row: torch.Tensor, inv: torch.Tensor, occ: torch.Tensor, fields: int
) -> torch.Tensor:
    """Each distinct id's mean loss over the rows holding it (summed in row order, as
    ``index_add_``)."""
    per_id = np.repeat(per_row.detach().cpu().double().numpy(), fields)
    return torch.from_numpy(np.bincount(inv.numpy(), per_id, len(occ)) / occ.numpy())


def walk(
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    state: Walk,
    policy: SizePolicy,
    offsets: torch.Tensor,
    values: torch.Tensor,
    *,
    model: nn.Module | None = None,
    opt: torch.optim.Optimizer | None = None,
    policy_opt: torch.optim.Optimizer | None = None,
    extra_loss: Callable[[nn.Module], torch.Tensor] | None = None,
) -> int:
    """One pass over ``batches``: decisions for every batch's ids; with a ``model`` (whose
    embedding is a :class:`GrowingSupernet`) and its ``opt``, its training step on the
    grown dims and, with a ``policy_opt``, the policies' update from the rewards. Without a
    model the walk only replays the decisions (the null signal). Returns the batches seen.

    ``reward_base='paired'`` costs one forward more (no backward) every ``probe_every``
    batches, after the training step's forward and before its optimiser step (this batch's
    growths' new columns start at zero, so the training loss is the loss at the sizes as
    they were): the rows with the ids whose pending decision is an enlarge back at their
    size before it, with the training forward's dropout masks (:mod:`.esapn_probe`)."""
    paired = state.settings.reward_base == "paired"
    replay = ReplayDropout(model) if model is not None and paired else None
    emb = model.embedding if replay is not None else None  # type: ignore[union-attr]
    n = 0
    with replay.installed() if replay is not None else nullcontext():
        try:
            if emb is not None:  # the probe reuses the training forward's read of the rows
                emb.keep_lookup = True
            for x, y in batches:
                _step(x, y, state, policy, offsets, values, model, opt, policy_opt, extra_loss, replay)  # fmt: skip
                n += 1
        finally:
            if emb is not None:
                emb.keep_lookup, emb.last_lookup = False, None
    return n


def _step(
    x: torch.Tensor,
    y: torch.Tensor,
    state: Walk,
    policy: SizePolicy,
    offsets: torch.Tensor,
    values: torch.Tensor,
    model: nn.Module | None,
    opt: torch.optim.Optimizer | None,
    policy_opt: torch.optim.Optimizer | None,
    extra_loss: Callable[[nn.Module], torch.Tensor] | None,
    replay: ReplayDropout | None,
) -> None:
    """One batch of :func:`walk`."""
    rows = (x.to(offsets.device) + offsets).reshape(-1).cpu()
    u, inv, occ = _distinct(rows, len(state.size))
    d = state.deciding(u, occ).numpy()
    un = u.numpy()
    ud = torch.from_numpy(un[d])
    emb: GrowingSupernet | None = None if model is None else model.embedding  # type: ignore[assignment]
    pending = state.pending.numpy()
    probed = np.flatnonzero(pending[un] == ENLARGE) if replay is not None else []
    dims = None
    if emb is not None and len(probed) and state.step % state.settings.probe_every == 0:
        dims = _probe_dims(emb, x, rows, (u, inv), state, values)
    table = policy.evaluate()  # one table: the sampling and the update
    state.decide(ud, policy, table)
    state.count.numpy()[un] += occ.numpy()
    state.step += 1
    if model is None or opt is None or emb is None:
        return
    if emb.row_dims.device.type == "cpu":  # GrowingSupernet.grow on numpy views (rows distinct)
        row_dims, udn = emb.row_dims.numpy(), ud.numpy()
        row_dims[udn] = np.maximum(row_dims[udn], values.numpy()[state.size.numpy()[udn]])
    else:
        emb.grow(ud.to(emb.row_dims.device), values[state.size[ud]].to(emb.row_dims.device))
    rng = torch.get_rng_state() if dims is not None else None
    logits = model(x).float()  # a growth's new columns are zero: as before
    per_row = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    loss = per_row.mean()
    if extra_loss is not None:
        loss = loss + extra_loss(model)
    probe = None
    if dims is not None and replay is not None and rng is not None:
        probe = probe_losses(model, emb, x, y, dims, replay, rng, _LOSS)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    now = _per_id(per_row, inv, occ, x.shape[1]).numpy()
    if probe is not None:
        before = _per_id(probe, inv, occ, x.shape[1]).numpy()
        state.measure(torch.from_numpy(un[probed]), torch.from_numpy(before[probed] - now[probed]))
    got = state.reward(ud, torch.from_numpy(now[d]))
    if policy_opt is not None and len(got.rows):
        fields = torch.from_numpy(state.field_of_row.numpy()[got.rows.numpy()])
        adv = (
            field_advantages(got.rewards, fields, state.n_fields)
            if state.settings.advantage == "field"
            else got.rewards
        )
        s = got.states.numpy()
        states = (
            fields,
            *(torch.from_numpy(s[:, k]) for k in (0, 1)),
            torch.from_numpy(s[:, 2] > 0),
        )
        reinforce_step(policy, policy_opt, states, got.actions, adv, table)
        state.updates += 1


_LOSS = nn.BCEWithLogitsLoss(reduction="none")


def _probe_dims(
    emb: GrowingSupernet,
    x: torch.Tensor,
    rows: torch.Tensor,
    distinct: tuple[torch.Tensor, torch.Tensor],
    state: Walk,
    values: torch.Tensor,
) -> torch.Tensor:
    """:func:`~.esapn_probe.probe_dims` from the batch's table ``rows`` (flat, on the CPU;
    ``distinct``: :func:`_distinct`'s rows and inverse) and the walk's pending decisions, by
    numpy views where the table is on the CPU."""
    u, inv = distinct
    if emb.row_dims.device.type != "cpu":
        probed = torch.nonzero(state.pending[rows] == ENLARGE)[:, 0]
        return probe_dims(emb, x, rows[probed], state.pending_state[:, 1], values)
    un, inv = u.numpy(), inv.numpy()  # per distinct row, then spread over the batch
    hit = state.pending.numpy()[un] == ENLARGE
    before = values.numpy()[state.pending_state.numpy()[un, 1]]
    dims = np.where(hit, before, emb.row_dims.numpy()[un])
    return torch.from_numpy(dims[inv]).view(x.shape)
