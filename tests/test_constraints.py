"""Per-field constraints (issue 21 item 6): parsed in one line, applied to the search space,
obeyed by every registered controller and recorded in the plan."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embsearch.budget import parse_budget
from embsearch.constraints import FieldConstraint, merge_flags, parse_constraints
from embsearch.controllers.registry import available, get_controller
from embsearch.errors import BudgetError, ConfigError
from embsearch.search_spaces import COMPOSED_SPACES, SPACES
from embsearch.testing import check_plan, make_test_context

pytestmark = pytest.mark.usefixtures("one_thread")

# against what searches pick unconstrained: f00 (21 ids, most often the largest dim) at most 2,
# f07 (717 ids, most often small) at least 4, f01 (289 ids) never dropped, f02 at 2 or 8
CONSTRAINTS = {
    "f00": {"max_dim": 2},
    "f01": {"keep": True},
    "f02": {"dims": [2, 8]},
    "f07": {"min_dim": 4},
}
# small trial counts: a test's length (the plans must obey whatever the search finds)
FAST = {"trials": 8, "generations": 3, "population": 8, "top_k": 4, "search_updates": 5}
FAST["blocks"] = 8  # NIS's and RULE's block dims 2, 4, ..., 16 (f00 takes at most 2)
BUDGET = {"nis": "30%"}  # one block of 2 columns for every group at least


def _params(cls):
    return {k: v for k, v in FAST.items() if k in cls.param_specs}


def _search(name, space=None, budgets=None, constraints=CONSTRAINTS):
    budgets = budgets or (BUDGET.get(name, "20%"),)
    cls = get_controller(name)
    ctx = make_test_context(cls, budgets=budgets, space=space, constraints=constraints)
    controller = cls(**_params(cls))
    plans = controller.search_budgets(ctx)
    for plan, budget in zip(plans, ctx.budgets):
        check_plan(plan, ctx, budget)  # bytes within the budget, and every constraint obeyed
        assert plan.extra["constraints"] == CONSTRAINTS if constraints is CONSTRAINTS else True
    return plans


@pytest.mark.parametrize("name", sorted(available()))
def test_every_controller_obeys_the_constraints(name):
    plans = _search(name)
    dims = plans[0].field_dims
    assert all(d <= 2 for d in dims["f00"]) and all(d > 0 for d in dims["f01"])
    assert all(d in (2, 8) for d in dims["f02"]) and all(d >= 4 for d in dims["f07"])
    if name == "optembed":  # its uniform gate compared the pick with the constrained uniform
        # plan, exactly ``uniform``'s (dim 3 at the width, f00 2, f02 2, f07 4; nothing pruned)
        assert plans[0].extra["uniform_margin"]["uniform_dim"] == 3


def _composed_claims():
    return [
        (name, "field_dims+meta_table+precision")
        for name in sorted(available())
        if "field_dims+meta_table+precision" in get_controller(name).supported_spaces
    ]


@pytest.mark.parametrize(("name", "space"), _composed_claims())
def test_composed_controllers_obey_kinds_and_precisions(name, space):
    constraints = {**CONSTRAINTS, "f01": {"keep": True, "kinds": ["full", "qr"]}}
    constraints["f03"] = {"precisions": ["fp32", "fp16"]}
    plans = _search(name, space=space, budgets=("3%",), constraints=constraints)
    f01 = next(f for f in plans[0].fields if f.name == "f01")
    assert plans[0].block_spec(f01, 0).kind in ("full", "qr")


def test_parse_flags_and_tables_agree():
    flags = parse_constraints(["f0:min_dim=8", "f0:keep", "f1:dims=16,8", "f2:kinds=full,qr"])
    table = parse_constraints({"f0": {"min_dim": 8, "keep": True}, "f1": {"dims": [8, 16]},
                               "f2": {"kinds": "full,qr"}})  # fmt: skip
    assert flags == table
    assert flags["f1"] == FieldConstraint(dims=(8, 16))
    assert not flags["f0"].allows(0) and not flags["f0"].allows(4) and flags["f0"].allows(16)
    assert flags["f2"].allows(4, "qr") and not flags["f2"].allows(4, "hash")
    assert FieldConstraint(max_dim=4).allows(0)  # a dropped block: only keep / dims rule it out
    # the file's table under the flags: a flag's key replaces the file's for that field
    assert merge_flags({"f0": {"min_dim": 4}}, ["f0:max_dim=8", "f0:min_dim=2"]) == {
        "f0": {"min_dim": 2, "max_dim": 8}
    }


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (["f0:width=8"], "unknown key 'width'; keys: min_dim"),
        (["f0:min_dim=eight"], "not a whole number"),
        (["f0:min_dim=-1"], "negative"),
        (["f0:kinds=full,bloom"], "bloom is not a kind; use full"),
        (["f0:precisions=fp8"], "fp8 is not a precision"),
        (["f0:min_dim=8", "f0:max_dim=4"], "min_dim=8 is above max_dim=4"),
        (["f0min_dim=8"], "write FIELD:KEY=VALUE"),
        (["f0:max_dim"], "needs a value"),
        ({"f0": 8}, "expected a table of keys"),
    ],
)
def test_bad_constraints_are_refused_in_one_line(raw, says):
    with pytest.raises(ConfigError, match=says) as err:
        parse_constraints(raw)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("space", "raw", "says"),
    [
        ("field_dims", {"user": {"keep": True}}, "no field of the data: user; fields: f00, f01"),
        ("field_dims", {"f00": {"kinds": ["qr"]}}, "needs a space that searches meta_table"),
        ("field_dims", {"f00": {"precisions": ["fp16"]}}, "searches precision"),
        ("field_dims", {"f00": {"dims": [12]}}, r"dim\(s\) 12 are not offered"),
        ("meta_table", {"f00": {"max_dim": 8}}, "leaves field 'f00' .* no option"),
        ("field_dims+meta_table", {"f00": {"kinds": ["pruned"]}}, "no option"),
    ],
)
def test_constraints_the_space_cannot_meet_are_refused(small_ds, space, raw, says):
    with pytest.raises(ConfigError, match=says):
        SPACES[space](small_ds.schema).with_constraints(parse_constraints(raw))


def test_budget_below_the_constrained_minimum_names_it(small_ds):
    free = SPACES["field_dims"](small_ds.schema)
    space = free.with_constraints(parse_constraints({"f06": {"min_dim": 16}}))
    assert space.min_bytes() > free.min_bytes()
    budget = free.min_bytes() + 1  # feasible without the constraint
    with pytest.raises(BudgetError, match=f"under the constraints .*{space.min_bytes()}"):
        space.check_budget(budget)


@pytest.mark.parametrize("name", ["field_dims", "feature_dims", *COMPOSED_SPACES])
def test_space_operations_stay_inside_the_constraints(small_ds, name):
    raw = {"f00": {"min_dim": 8}, "f01": {"keep": True}, "f02": {"dims": [2, 4]}}
    if name in ("meta_table", "precision"):
        raw = {"f01": {"keep": True}, "f02": {"min_dim": 16}}
    space = SPACES[name](small_ds.schema).with_constraints(parse_constraints(raw))
    budget = space.resolve_budget(parse_budget("40%" if name == "precision" else "10%"))
    rng = np.random.default_rng(0)
    low = 1 if "dims" in getattr(space, "axes", ("dims",)) else space.width
    cands = [space.sample(rng) for _ in range(20)] + [space.max_candidate(), space.uniform(low)]
    free = SPACES[name](small_ds.schema)
    cands += [space.repair(free.max_candidate(), budget), space.repair(free.sample(rng), budget)]
    prefs = [np.zeros((len(g), len(space.all_keys(f, 0)))) for f, g in enumerate(space.groups)]
    if name in COMPOSED_SPACES:
        prefs = [[np.zeros(len(space.all_keys(f, 0)))] for f in range(space.num_fields)]
    cands.append(space.best_under_budget(prefs, budget))
    for cand in cands:
        plan = space.to_plan(cand, "test", max(budget, space.bytes_of(cand)))
        for fname, c in parse_constraints(raw).items():
            f = next(f for f in plan.fields if f.name == fname)
            spec = plan.block_spec(f, 0)
            assert c.allows(spec.dim, spec.kind, spec.precision), (cand, fname)
    assert space.bytes_of(cands[-1]) <= budget and space.bytes_of(cands[-2]) <= budget


def test_a_candidate_that_breaks_a_constraint_is_not_a_plan(small_ds):
    space = SPACES["field_dims"](small_ds.schema)
    space = space.with_constraints({"f00": FieldConstraint(min_dim=8)})
    cand = ((2,), *space.max_candidate()[1:])
    with pytest.raises(RuntimeError, match="chose dim 2 full fp32 .* breaks f00:min_dim=8"):
        space.to_plan(cand, "rogue", space.bytes_of(cand))


# -- the command line: --constraint and a config file's table --------------------------------
CLI_FAST = ["--epochs", "1", "--batch-size", "1024", "--quiet"]


@pytest.fixture
def _small_synthetic(monkeypatch):
    from embsearch import run_config

    monkeypatch.setattr(run_config.RunConfig, "synthetic_rows", 6000)


@pytest.mark.usefixtures("_small_synthetic")
def test_cli_constraints_from_flags_and_config_reach_the_plan(tmp_path, capsys):
    from embsearch.cli import main

    cfg = tmp_path / "search.toml"
    cfg.write_text(
        'controller = "mde"\nbudgets = ["25%"]\nepochs = 1\nbatch_size = 1024\n'
        "[constraints]\nf00 = {max_dim = 2}\nf07 = {min_dim = 2}\n"
    )
    out = tmp_path / "run"
    flags = ["--constraint", "f07:min_dim=8", "--constraint", "f01:keep"]
    assert main(["search", "--config", str(cfg), *flags, "--out", str(out), "--quiet"]) == 0
    want = {"f00": {"max_dim": 2}, "f07": {"min_dim": 8}, "f01": {"keep": True}}
    plan = json.loads((out / "plan.json").read_text())
    assert plan["extra"]["constraints"] == want
    assert json.loads((out / "config.json").read_text())["constraints"] == want
    dims = {f["name"]: f["dim"] for f in plan["fields"]}
    assert dims["f00"] <= 2 and dims["f07"] >= 8 and dims["f01"] > 0
    assert "  constraints: f00:max_dim=2 f01:keep f07:min_dim=8" in capsys.readouterr().out


def test_constraints_enter_the_resume_fingerprint_and_old_configs_keep_theirs():
    from embsearch.run_config import RunConfig
    from embsearch.run_state import fingerprint

    plain = RunConfig()
    assert "constraints" not in plain.to_json()  # a run from before constraints: same hash
    held = RunConfig(constraints={"f00": {"keep": True}})
    assert fingerprint(held.to_json(), "d") != fingerprint(plain.to_json(), "d")


@pytest.mark.usefixtures("_small_synthetic")
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--constraint", "user:keep"], "names no field of the data: user; fields: f00, f01"),
        (["--constraint", "f00:depth=2"], "unknown key 'depth'"),
        (["--constraint", "f00:min_dim=x"], "not a whole number"),
        (["--constraint", "f00:min_dim=8", "--constraint", "f00:max_dim=4"], "above max_dim"),
        (["--constraint", "f00:kinds=qr"], "needs a space that searches meta_table"),
        (["--constraint", "f00:precisions=int8"], "needs a space that searches precision"),
        (["--constraint", "f00:dims=3"], r"dim\(s\) 3 are not offered"),
        (
            ["--constraint", "f00:max_dim=4", "--space", "meta_table"],
            "leaves field 'f00' .* no option",
        ),
        (
            ["--constraint", "f07:min_dim=16", "--budget", "10%"],
            "below the smallest plan of the field_dims space under the constraints "
            r"\(f07:min_dim=16\).* at least \d+",
        ),
    ],
)
def test_cli_bad_constraints_one_line_nothing_written(tmp_path, capsys, args, says):
    import re

    from embsearch.cli import main

    out = tmp_path / "run"
    assert main(["search", "--controller", "mde", *args, "--out", str(out), *CLI_FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(says, err), err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("projection", ["linear", "pad"])
def test_constrained_min_bytes_is_the_cheapest_allowed_candidate(small_ds, projection):
    raw = {"f00": {"min_dim": 4}, "f03": {"dims": [2, 16]}, "f07": {"min_dim": 8}}
    space = SPACES["feature_dims"](small_ds.schema, projection=projection)
    space = space.with_constraints(parse_constraints(raw))
    brute = sum(min(space._priced_options(f)[1]) for f in range(space.num_fields))
    assert space.min_bytes() == brute
    assert space.bytes_of(space.repair(space.max_candidate(), brute)) == brute


def test_a_block_policy_never_draws_what_a_constraint_rules_out(small_ds):
    from embsearch.controllers.nis_policy import BlockPolicy
    from embsearch.search_spaces import constrain

    space = SPACES["feature_dims"](small_ds.schema, projection="pad")
    space = space.with_constraints(parse_constraints(CONSTRAINTS))
    slots = [(f, g, b - a) for f, gs in enumerate(space.groups) for g, (a, b) in enumerate(gs)]
    costs = np.array([[space._pad_cost(n, c) for c in space.candidates] for _, _, n in slots])
    policy = BlockPolicy(constrain.mask_costs(space, costs), space.full_table_bytes(), seed=0)
    picked, _ = policy.sample(256)
    for s, (f, g, _) in enumerate(slots):
        drawn = {space.candidates[i] for i in picked[:, s].tolist()}
        assert drawn <= set(space.block_keys(f, g)), (f, g, drawn)
    assert {space.candidates[i] for i in picked[:, 0].tolist()} == {1, 2}  # f00: max_dim=2


def test_check_controller_takes_constraints_for_a_plug_in():
    from embsearch.testing import check_controller
    from examples.custom_controller import MutualInfo

    check_controller(MutualInfo, constraints=CONSTRAINTS, budgets=("20%", "40%"))


_SPACE_NAMES = ["field_dims", "feature_dims", "field_dims+meta_table+precision"]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.sampled_from(_SPACE_NAMES),
    st.dictionaries(
        st.sampled_from([f"f0{i}" for i in range(8)]),
        st.fixed_dictionaries(
            {},
            optional={
                "min_dim": st.sampled_from([1, 2, 4]),
                "max_dim": st.sampled_from([4, 8, 16]),
                "keep": st.just(True),
                "dims": st.sampled_from([[2, 8], [1, 16], [4]]),
            },
        ),
        max_size=4,
    ),
    st.sampled_from([0.1, 0.25, 0.5]),
    st.integers(0, 2**16),
)
def test_random_constraints_every_knapsack_repair_and_sample_obeys(
    small_ds, name, raw, share, seed
):
    try:
        held = parse_constraints(raw)
        space = SPACES[name](small_ds.schema).with_constraints(held)
        budget = space.resolve_budget(parse_budget(f"{share:.0%}"))
    except (ConfigError, BudgetError):  # an empty dims set or a tight budget: refused, fine
        return
    rng = np.random.default_rng(seed)
    free = SPACES[name](small_ds.schema)
    wants = [space.repair(free.sample(rng), budget), space.repair(space.sample(rng), budget)]
    if name != "field_dims+meta_table+precision":
        prefs = [rng.normal(size=(len(g), len(space.candidates))) for g in space.groups]
        wants.append(space.best_under_budget(prefs, budget))
    for cand in wants:
        assert space.bytes_of(cand) <= budget
        plan = space.to_plan(cand, "test", budget)  # refuses a candidate that breaks one
        for fname, c in held.items():
            f = next(f for f in plan.fields if f.name == fname)
            for g in range(len(f.groups)):
                spec = plan.block_spec(f, g)
                assert c.allows(spec.dim, spec.kind, spec.precision)
    assert space.min_bytes() <= min(space.bytes_of(c) for c in wants)
