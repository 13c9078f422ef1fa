"""The Optuna study behind a black-box controller's budget: where it lives, how a trial's
sampler is seeded, and how a killed study is taken up again (issue 22 items 3 and 4).

- **Storage.** With a :class:`~embsearch.trial_store.TrialStore` in the context (the runner
  always gives one: the run's journal file, or ``--storage URL``), the study is created
  there under the store's name for (controller, budget), and every ask and tell is written
  to it as it happens; without one (a library call, the tests) it is in memory.
- **Seeds per ask** (an extension, for resumes): before the ``k``-th sampled trial of a
  budget the study gets a fresh sampler seeded from (the budget's seed, ``k``). A sampler's
  random state lives in its process, so a resumed study with one sampler seeded once would
  draw again what the killed one drew first (TPE's random start would repeat its first
  trials). Seeded per ask, the ``k``-th draw depends only on the seed, ``k`` and the
  finished trials, as in an uninterrupted run. Each sampled trial records ``k`` in its
  user attribute ``ask``.
- **Resume.** :func:`recover` reads a study a killed run left: a sampled trial that was
  RUNNING (asked, not told) is told ``FAIL`` and marked ``killed``, and its ask index is
  asked again: the same seed over the same finished trials, so TPE and random search
  retry the same parameters (even when the kill came while its parameters were being
  drawn: enqueuing a half-written trial's parameters would not). CMA-ES's and NSGA-II's
  own draws also mix in the trial's number, so after a resume they continue from the same
  state but not with the same draws. A RUNNING trial whose repaired replacement was
  already recorded (``repaired_from`` points at it) is only closed. Finished trials are
  never run again: they come back to the loop as its first evaluations
  (:meth:`~embsearch.controllers.black_box.BlackBoxController.resumed_trials`).
- **The supernet** (``scoring='supernet'``) is saved once trained and loaded on a resume by
  :func:`~embsearch.controllers.weight_sharing.train_weight_sharing_supernet`, as every
  weight-sharing supernet is: the same weights, so the same scores, without the search's
  largest cost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from embsearch.trial_store import TrialStore

REPAIRED_FROM = "repaired_from"  # user attr of a repaired trial: the sampled trial's number
ASK = "ask"  # user attr of a sampled trial: its ask index within the budget
KILLED = "killed"  # user attr of a sampled trial a killed run left RUNNING, then retried


def ask_seed(budget_seed: int, k: int) -> int:
    """The sampler seed of the ``k``-th ask under a budget seeded ``budget_seed``."""
    return int(np.random.default_rng([budget_seed, k]).integers(2**31 - 1))


def open_study(
    store: TrialStore | None,
    name: str,
    directions: Sequence[str],
    sampler: optuna.samplers.BaseSampler,
) -> optuna.Study:
    """The budget's study: in ``store`` under ``name`` (loaded if a killed run left it),
    else in memory."""
    if store is None:
        return optuna.create_study(directions=list(directions), sampler=sampler)
    return optuna.create_study(
        storage=store.storage,
        study_name=name,
        directions=list(directions),
        sampler=sampler,
        load_if_exists=True,
    )


def is_sampled(t: FrozenTrial) -> bool:
    """An asked trial (not a repaired one added with ``study.add_trial``)."""
    return REPAIRED_FROM not in t.user_attrs


def recover(study: optuna.Study) -> int:
    """Close the trials a killed run left RUNNING (see the module docstring); returns how
    many sampled trials are finished (asks told; killed ones not counted)."""
    trials = study.get_trials(deepcopy=False)
    replaced = {t.user_attrs[REPAIRED_FROM] for t in trials if not is_sampled(t)}
    for t in trials:
        if t.state != TrialState.RUNNING or not is_sampled(t):
            continue
        if t.number not in replaced:  # unscored: its ask index is asked again
            study._storage.set_trial_user_attr(t._trial_id, KILLED, True)
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))
    return sum(1 for t in done if is_sampled(t) and not t.user_attrs.get(KILLED))


def next_ask(study: optuna.Study) -> int:
    """The ask index of the next sampled trial: one past the last that was not killed."""
    asks = [
        t.user_attrs.get(ASK)
        for t in study.get_trials(deepcopy=False)
        if is_sampled(t) and not t.user_attrs.get(KILLED)
    ]
    return 1 + max((a for a in asks if a is not None), default=-1)


def ask_study(
    study: optuna.Study, make_sampler: Callable[[int], optuna.samplers.BaseSampler], seed: int
) -> tuple[optuna.trial.Trial, int]:
    """Ask the study for its next trial under a sampler seeded for its ask index. Returns
    the trial and its index."""
    k = next_ask(study)
    study.sampler = make_sampler(ask_seed(seed, k))
    trial = study.ask()
    trial.set_user_attr(ASK, k)
    return trial, k
