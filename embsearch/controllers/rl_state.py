"""The RL family's state beyond one process (issue 22 items 4 and 5): what a resume needs
of a policy that learned while a supernet trained, and trials told in the order they were
asked when they run in workers.

- :class:`PolicyStates`: a search state's per-budget policies (their parameters, Adam
  states, baselines, generators: each policy's ``state_dict``) and reward history, as one
  :class:`~embsearch.train.checkpoint.Stateful`. NIS and AutoIAS hand it to
  :func:`~embsearch.controllers.weight_sharing.train_weight_sharing_supernet` as the state
  of their training hooks, so the per-epoch checkpoint and the saved supernet hold it.
- :class:`InOrder`: trial ids around an ask/tell controller whose ``tell`` must see the
  results in ask order (NIS's REINFORCE batch pairs each reward with the sample asked at
  that place) and which has nothing to ask while a batch is out: with ``--jobs N`` trials
  finish in any order; the results are held and told in ask order, and "nothing now" is
  answered until the batch's update, so the policy draws what the serial run draws.
- :func:`save_state` / :func:`load_state`: a search's state after its supernet, in a file of
  the run directory, written atomically at the controller's natural unit (AutoIAS: after
  each generator update, :data:`GENERATOR_NAME`; ESAPN: after each budget's pass,
  :data:`PASSES_NAME`) and read back on ``--resume``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from embsearch._atomic import write_file
from embsearch.context import SearchContext
from embsearch.search_loop import AskTell, ByCandidate, Trial
from embsearch.train.checkpoint import Stateful

GENERATOR_NAME = "generator.pt"  # AutoIAS's generators and rewards, after each update
PASSES_NAME = "passes.pt"  # ESAPN's finished passes (one per budget)


class PolicyStates:
    """``state.policies`` (budget -> a policy with ``state_dict``/``load_state_dict``),
    ``state.history`` (budget -> mean rewards) and the attributes named in ``extra`` of a
    search state, saved and put back together."""

    def __init__(self, state: Any, extra: Sequence[str] = ()) -> None:
        self.state, self.extra = state, tuple(extra)

    def state_dict(self) -> dict[str, Any]:
        st = self.state
        return {
            "policies": {int(b): p.state_dict() for b, p in st.policies.items()},
            "history": {int(b): [float(r) for r in h] for b, h in st.history.items()},
            **{k: getattr(st, k) for k in self.extra},
        }

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        st = self.state
        if sorted(int(b) for b in saved["policies"]) != sorted(int(b) for b in st.policies):
            raise ValueError("internal: a checkpoint of other budgets' policies")
        for b, policy in st.policies.items():
            policy.load_state_dict(saved["policies"][int(b)])
        st.history = {int(b): [float(r) for r in h] for b, h in saved["history"].items()}
        for k in self.extra:
            setattr(st, k, saved[k])


class InOrder(ByCandidate):
    """Trials numbered 0, 1, ... around ``asker``; "nothing now" while ``busy()``; each
    result held until every earlier trial's is in, then told in ask order."""

    def __init__(self, asker: AskTell, busy: Callable[[], bool]) -> None:
        super().__init__(asker)
        self.busy = busy
        self.next_told = 0
        self.held: dict[int, float] = {}

    def ask_trial(self) -> Trial | None:
        return None if self.busy() else super().ask_trial()

    def tell_trial(self, trial_id: int, metrics: dict[str, float]) -> None:
        self.held[trial_id] = float(metrics["score"])
        while self.next_told in self.held:
            self.asker.tell(self.out.pop(self.next_told), self.held.pop(self.next_told))
            self.next_told += 1


def save_state(ctx: SearchContext, name: str, state: Stateful) -> None:
    """Write ``state``'s ``state_dict()`` to ``RUN_DIR/name`` atomically (no run directory:
    nothing)."""
    store = ctx.store
    if store is None or store.run_dir is None:
        return
    blob = state.state_dict()
    write_file(store.run_dir / name, lambda tmp: torch.save(blob, tmp))


def load_state(ctx: SearchContext, name: str, state: Stateful) -> bool:
    """On a resume, put ``RUN_DIR/name`` back into ``state``; whether there was one."""
    store = ctx.store
    if store is None or not store.resume or store.run_dir is None:
        return False
    path = store.run_dir / name
    if not path.is_file():
        return False
    state.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return True
