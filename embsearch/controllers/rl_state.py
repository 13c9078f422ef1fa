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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from embsearch.search_loop import AskTell, ByCandidate, Trial


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
