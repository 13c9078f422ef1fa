"""The Optuna controllers (``tpe``, ``random``): feasible plans only, repaired trials recorded
in the study, determinism, bad parameters, the null signal and the planted-data signal."""

from __future__ import annotations

import numpy as np
import pytest
from optuna.trial import TrialState

from embsearch.context import SearchContext
from embsearch.controllers.black_box import candidate_params, param_name
from embsearch.controllers.cma_es import CmaEs
from embsearch.controllers.evolution import Evolution, EvolutionConfig
from embsearch.controllers.random_search import RandomSearch
from embsearch.controllers.registry import get_controller
from embsearch.controllers.tpe import TPE
from embsearch.data.synthetic import make_synthetic
from embsearch.errors import ConfigError
from embsearch.search_spaces import FeatureDimsSpace, FieldDimsSpace
from embsearch.testing import check_controller, check_plan, small_dataset
from embsearch.train import TrainConfig

FAST = {"trials": 12, "n_startup_trials": 4, "supernet_epochs": 1}

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small():
    return small_dataset()


def make_ctx(ds, space, fractions, seed=0) -> SearchContext:
    budgets = sorted(int(space.full_table_bytes() * f) for f in fractions)
    cfg = TrainConfig(epochs=1, batch_size=1024, progress=False)
    return SearchContext(ds, space, budgets, train=cfg, seed=seed, log=lambda m: None)


def study_candidate(space, params) -> tuple[tuple[int, ...], ...]:
    return tuple(
        tuple(int(params[param_name(space, f, g)]) for g in range(len(groups)))
        for f, groups in enumerate(space.groups)
    )


def test_registered_and_conform():
    for name, cls in (("tpe", TPE), ("random", RandomSearch), ("cmaes", CmaEs)):
        assert get_controller(name) is cls and cls.family == "black-box"
        report = check_controller(cls, FAST if cls is TPE else {"trials": 12, "supernet_epochs": 1})
        assert report["provenance"] == [name, name]
        assert all(0.0 <= s <= 1.0 for s in report["null_agreement"])


@pytest.mark.parametrize("space_cls", [FieldDimsSpace, FeatureDimsSpace])
@pytest.mark.parametrize("seed", [0, 1])
def test_never_an_over_budget_plan_or_scored_trial(small, space_cls, seed):
    """At tight and loose budgets every plan fits, and every trial the study holds a value
    for (what the sampler learns from, what could be the result) fits too."""
    ctx = make_ctx(small, space_cls(small.schema, 16), (0.08, 0.2, 0.5), seed=seed)
    ctrl = TPE(**FAST)
    plans = ctrl.search_budgets(ctx)
    for plan, budget in zip(plans, ctx.budgets):
        check_plan(plan, ctx, budget)
    space, budget = ctrl.state.study_space, ctx.budgets[-1]  # the last budget's study
    for t in ctrl.state.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        assert space.bytes_of(study_candidate(space, t.params)) <= budget


def test_repaired_trials_are_recorded_in_the_study(small):
    """A sampled trial over the budget is told FAIL and names its repair; the repaired
    parameters are a COMPLETE trial with the score, pointing back; the study's best is the
    plan's candidate."""
    space = FieldDimsSpace(small.schema, 16, projection="pad")
    ctx = make_ctx(small, space, (0.1,))
    ctrl = RandomSearch(trials=16, supernet_epochs=1)
    plan = ctrl.search(ctx)
    budget = ctx.budgets[0]
    trials = ctrl.state.study.get_trials(deepcopy=False)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    complete = {t.number: t for t in trials if t.state == TrialState.COMPLETE}
    assert failed, "a 10% budget should repair some uniform draws"
    assert plan.extra["study"]["repaired"] == len(failed)
    by_origin = {t.user_attrs["repaired_from"]: t for t in complete.values() if t.user_attrs}
    for t in failed:
        sampled = study_candidate(space, t.params)
        assert space.bytes_of(sampled) > budget == ctx.budgets[0]
        fixed = by_origin[t.number]
        assert [list(d) for d in study_candidate(space, fixed.params)] == t.user_attrs[
            "repaired_to"
        ]
        assert fixed.params == candidate_params(space, space.repair(sampled, budget))
    assert len(complete) == 16 and len(failed) + len(complete) == len(trials)
    best = ctrl.state.study.best_trial
    assert study_candidate(space, best.params) == space.from_plan(plan)
    assert best.value == plan.extra["inherited_val_auc"]


def test_deterministic_under_a_seed(small):
    space = FeatureDimsSpace(small.schema, 16)
    runs = []
    for _ in range(2):
        ctrl = TPE(**FAST)
        plans = ctrl.search_budgets(make_ctx(small, space, (0.15, 0.3)))
        params = [t.params for t in ctrl.state.study.get_trials(deepcopy=False)]
        runs.append(([p.field_dims for p in plans], params))
    assert runs[0] == runs[1]


def test_null_plan_is_the_samplers_first_candidate(small):
    space = FieldDimsSpace(small.schema, 16, projection="pad")
    ctx = make_ctx(small, space, (0.25,))
    ctrl = TPE(**FAST)
    plan = ctrl.search(ctx)
    first = ctrl.state.study.trials[0]
    null = ctrl.null_candidate(ctx, ctx.budgets[0])
    assert null == space.repair(study_candidate(space, first.params), ctx.budgets[0])
    assert plan.extra["signal"]["null_signal"] == TPE.null_signal


def test_cmaes_models_every_block_and_learns_from_repaired_trials(small):
    """CMA-ES never falls back to independent (random) sampling: after its one startup
    trial every sampled trial carries a CMA-ES generation, each repaired trial carries its
    sampled trial's, and at a tight budget (most draws repaired) the generations advance."""
    space = FieldDimsSpace(small.schema, 16, projection="pad")
    ctx = make_ctx(small, space, (0.1,))
    ctrl = CmaEs(trials=30, supernet_epochs=1, popsize=6)
    plan = ctrl.search(ctx)
    check_plan(plan, ctx, ctx.budgets[0])
    trials = ctrl.state.study.get_trials(deepcopy=False)
    by_number = {t.number: t for t in trials}
    gens = []
    for t in trials:
        if t.number == 0 or t.user_attrs.get("repaired_from") == 0:  # the startup trial
            continue
        gen = t.system_attrs.get("cma:generation")
        assert gen is not None, t.number
        if "repaired_from" in t.user_attrs:
            assert gen == by_number[t.user_attrs["repaired_from"]].system_attrs["cma:generation"]
        gens.append(gen)
    assert plan.extra["study"]["repaired"] > 10 and max(gens) >= 3
    dims = sorted(space.candidates)
    for t in trials:  # parameters are indices into the sorted candidate dims
        assert set(t.params.values()) <= set(range(len(dims)))


def test_trials_in_flight_are_told_by_id(small):
    """Several trials may be out at once and be told in any order: each id's values land
    on its own Optuna trial."""
    space = FieldDimsSpace(small.schema, 16, projection="pad")
    ctx = make_ctx(small, space, (1.0,))  # everything fits: no repaired trial
    ctrl = RandomSearch(trials=3, supernet_epochs=1)
    ctrl.prepare(ctx, None)
    ctrl.start(ctx, ctx.budgets[0])
    out = [ctrl.ask_trial() for _ in range(3)]
    assert len({t.id for t in out}) == 3 and not ctrl.done()
    for k, trial in reversed(list(enumerate(out))):
        ctrl.tell_trial(trial.id, {"score": 0.1 * k, "bytes": 0.0})
    assert ctrl.done()
    for k, trial in enumerate(out):
        t = ctrl.state.study.trials[trial.id]
        assert (
            t.value == pytest.approx(0.1 * k)
            and study_candidate(space, t.params) == trial.candidate
        )


def test_evolution_answers_nothing_now_while_a_generation_is_out(small):
    space = FieldDimsSpace(small.schema, 16)
    budget = int(space.full_table_bytes() * 0.5)
    evo = Evolution(
        space,
        budget,
        EvolutionConfig(population=3, generations=1, top_k=2),
        np.random.default_rng(0),
    )
    out = [evo.ask() for _ in range(3)]
    assert evo.ask() is None and not evo.done()  # nothing now: the generation is not told
    for k, cand in enumerate(out):
        evo.tell(cand, float(k))
    assert evo.ask() is not None  # the next generation, bred from the told scores


@pytest.mark.parametrize(
    "cls, params, words",
    [
        (TPE, {"trials": 0}, "trials"),
        (TPE, {"n_startup_trials": -1}, "n_startup_trials"),
        (TPE, {"scoring": "finetune"}, "scoring"),
        (TPE, {"multivariate": "yes"}, "multivariate"),
        (RandomSearch, {"n_startup_trials": 3}, "n_startup_trials"),
    ],
)
def test_bad_parameters_are_one_line(cls, params, words):
    with pytest.raises(ConfigError, match=words) as err:
        cls(**params)
    assert "\n" not in str(err.value)


# -- planted data: CI runs this again under AVX2 kernels (.ci/run) ----------------------------
@pytest.fixture(scope="module")
def planted():
    return make_synthetic(rows=20_000, seed=0, cardinalities=(500,) * 12)


@pytest.mark.planted
@pytest.mark.parametrize("name", ["tpe", "cmaes"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_informative_fields_get_more_dims(planted, name, seed):
    """Every field has the same cardinality, so only informativeness can explain where the
    sampler puts its dims. Mean dim informative / noise at 25% (64 trials, 2 supernet
    epochs; samplers seeded per ask), seeds 0, 1, 2: on an AMD EPYC tpe 2.99, 1.98, 3.20,
    cmaes 3.31, 2.60, 1.60; on an Intel Sapphire Rapids tpe 2.28, 1.40, 1.40 (AVX2 kernels
    2.02, 1.71, 1.96), cmaes 2.80, 2.80, 2.99 (2.00, 2.06, 2.31); hence the 1.3 asserted.
    Over seeds 0-29 (Sapphire Rapids) the plan misses 1.3 on 1 (tpe) and 3 (cmaes) seeds: a
    best-of-64 pick on a 2-epoch supernet, whose top candidates carry the signal only ~70%
    of the time (nsga21, bb21).

    nsga2 is not asserted here: at 64 trials (4 generations of 16) NSGA-II picks no better
    than random search on this fixture (11/60 seeds under 1.3 each, mean AUC 0.7144 against
    0.7136), and it failed seeds 0-1 (1.05, 1.17) on the Sapphire Rapids with the default
    kernels and 1-2 (1.23, 1.28) under AVX2 while passing all three on the AMD EPYC. No
    faithful change lifted it (population sizes, the paper's tournament and SBX operators,
    constrained domination, more trials: nsga21's notes); its front and budget behaviour are
    tested in test_nsga2.py."""
    space = FieldDimsSpace(planted.schema, 16, projection="pad")
    budgets = [int(space.full_table_bytes() * 0.25)]
    cfg = TrainConfig(epochs=2, batch_size=1024, progress=False)
    ctx = SearchContext(planted, space, budgets, train=cfg, seed=seed, log=lambda m: None)
    plan = get_controller(name)().search(ctx)
    assert plan.extra["provenance"] == name
    dims = {f.name: f.dims[0] for f in plan.fields}
    meta = planted.schema.meta
    informative = np.mean([dims[n] for n in meta["informative"]])
    noise = np.mean([dims[n] for n in meta["noise"]])
    assert informative > 1.3 * noise, (informative, noise)
