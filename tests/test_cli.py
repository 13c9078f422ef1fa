"""The command line, end to end, and its one-line errors."""

import json
import re

import pytest

from embsearch.cli import main
from embsearch.controllers.registry import BUILTIN, describe

FAST = ["--epochs", "1", "--batch-size", "1024", "--quiet"]


@pytest.fixture(autouse=True)
def _small_synthetic(monkeypatch):
    from embsearch import run_config

    monkeypatch.setattr(run_config.RunConfig, "synthetic_rows", 6000)


def test_search_export_retrain(tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "search",
                "--data",
                "synthetic",
                "--budget",
                "25%",
                "--controller",
                "mde",
                "--out",
                str(run),
                *FAST,
            ]
        )
        == 0
    )
    plan = json.loads((run / "plan.json").read_text())
    for key in (
        "format",
        "controller",
        "space",
        "budget_bytes",
        "table_bytes",
        "precision",
        "fields",
        "metrics",
    ):
        assert key in plan
    assert plan["table_bytes"] <= plan["budget_bytes"]
    assert {"val_auc", "val_logloss"} <= set(plan["metrics"])
    assert all({"name", "rows", "dim", "bytes"} <= set(f) for f in plan["fields"])
    assert (run / "search.json").is_file() and (run / "model.pt").is_file()

    assert main(["export", str(run), "--out", str(tmp_path / "exp")]) == 0
    assert (tmp_path / "exp" / "weights.safetensors").is_file()

    assert main(["retrain", str(run), "--with-baseline", "--quiet"]) == 0
    r = json.loads((run / "retrain.json").read_text())
    for key in (
        "test_auc",
        "test_logloss",
        "table_bytes",
        "baseline_test_auc",
        "baseline_table_bytes",
    ):
        assert key in r
    assert r["baseline_table_bytes"] > r["table_bytes"]
    assert 0.5 < r["test_auc"] <= 1.0


def test_several_budgets_give_a_plan_each(tmp_path):
    run = tmp_path / "multi"
    assert (
        main(
            [
                "search",
                "--budget",
                "10%",
                "--budget",
                "40%",
                "--controller",
                "uniform",
                "--out",
                str(run),
                *FAST,
            ]
        )
        == 0
    )
    small = json.loads((run / "budget-10pct" / "plan.json").read_text())
    big = json.loads((run / "budget-40pct" / "plan.json").read_text())
    assert small["table_bytes"] < big["table_bytes"]
    assert main(["export", str(run), "--out", str(tmp_path / "e")]) == 2  # ambiguous: which budget?


def test_config_file(tmp_path):
    cfg = tmp_path / "search.toml"
    cfg.write_text('controller = "cprec"\nbudgets = ["30%"]\nepochs = 1\nbatch_size = 1024\n')
    assert main(["search", "--config", str(cfg), "--out", str(tmp_path / "r"), "--quiet"]) == 0
    assert json.loads((tmp_path / "r" / "plan.json").read_text())["controller"] == "cprec"


@pytest.mark.parametrize(
    "line,needle",
    [
        ('epochs = "x"', "epochs must be an integer >= 1, got 'x'"),
        ("lr = nan", "lr must be a number > 0"),
        ('candidates = [2, "x"]', "candidates must be a list of integers"),
        ("budgets = [true]", "budgets must be a list of budgets"),
        ("controller_params = 3", "controller_params must be a table"),
    ],
)
def test_config_file_values_of_the_wrong_kind_are_one_line(tmp_path, capsys, line, needle):
    """A config file's bad value names the file and the option, not a traceback from training."""
    cfg = tmp_path / "search.toml"
    cfg.write_text(line + "\n")
    out = tmp_path / "run"
    assert main(["search", "--config", str(cfg), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}: {needle}" in err and err.count("\n") == 1
    assert not out.exists()


def test_a_bad_flag_beside_a_config_file_is_named_as_the_flag(tmp_path, capsys):
    cfg = tmp_path / "search.toml"
    cfg.write_text("epochs = 1\n")
    out = tmp_path / "run"
    assert main(["search", "--config", str(cfg), "--lr", "-1", "--out", str(out)]) == 2
    assert capsys.readouterr().err == "embsearch: error: --lr must be a number > 0, got -1.0\n"


def test_a_budget_holding_the_whole_table_is_warned_of(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", "--out", str(out), *FAST, "--budget", "100%", "--budget", "25%"]) == 0
    err = capsys.readouterr().err
    assert err.count("embsearch: warning: budget 100% = ") == 1  # not the 25% one
    assert "constrains nothing" in err and err.count("\n") == 1


def test_controllers_json(capsys):
    assert main(["controllers", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"uniform", "mde", "cprec"} <= {r["name"] for r in rows}
    assert all(r["family"] and r["paper"] for r in rows)


def test_controllers_describes_one(capsys):
    assert main(["controllers", "rule"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("rule (evolutionary): ")
    assert "projection: pad only" in out and "  blocks=" in out
    assert re.search(r"  blocks=16 +dimension blocks B per embedding", out)  # one line of help
    assert "Steps, as in the paper" in out  # the module's documented steps
    assert main(["controllers", "dnis", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["params"]["projection"] == "pad" and info["fixed_projection"] is None
    assert main(["controllers", "examples.custom_controller:MutualInfo"]) == 0
    assert capsys.readouterr().out.startswith("mutual-info (custom): ")
    assert main(["controllers", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown controller 'nope'" in err and err.count("\n") == 1


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_every_builtin_parameter_has_a_line_of_help(name):
    """``embsearch controllers NAME`` explains every parameter a built-in controller takes."""
    info = describe(name)
    assert set(info["param_help"]) == set(info["params"])
    assert all(text.strip() for text in info["param_help"].values()), info["param_help"]


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--budget", "4XB"], "cannot read budget"),
        (["--budget", "10"], "below the smallest plan"),
        (["--controller", "nope"], "unknown controller"),
        (["--controller", "no.such.module:Thing"], "cannot import controller module"),
        (["--data", "/does/not/exist"], "does not exist"),
        (["--backbone", "transformer"], "unknown backbone"),
        (["--candidates", "2,4,64"], "must lie in"),
        (["--param", "alpha=5"], "mde: alpha must be a number in [0, 1], got 5"),
        (["--param", "bogus=1"], "has no parameter"),
        (["--config", "/no/such.toml"], "does not exist"),
        (["--controller", "rule", "--projection", "linear"], "only builds --projection pad"),
        (["--controller", "rule", "--candidates", "2,4,8,16"], "can only add 0"),
        (["--candidates", "2,abc"], "give comma-separated integers"),
        (["--controller", "optembed", "--space", "feature_dims"], "drop --space to use its"),
        (["--lr", "-1"], "--lr must be a number > 0"),
        (["--max-seconds", "0"], "--max-seconds must be a number of seconds > 0"),
        (["--eval-every", "-1"], "--eval-every must be an integer >= 0"),
    ],
)
def test_bad_input_one_line_no_output(tmp_path, capsys, args, needle):
    out = tmp_path / "run"
    rc = main(["search", "--out", str(out), *FAST, *args])
    err = capsys.readouterr().err
    assert rc == 2
    assert needle in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporary leftovers either


def test_existing_run_dir_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "plan.json").write_text("{}")
    assert main(["search", "--out", str(out), *FAST]) == 2
    assert "already holds" in capsys.readouterr().err
    assert (out / "plan.json").read_text() == "{}"


def test_retrain_on_missing_dir(tmp_path, capsys):
    assert main(["retrain", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_training_that_ends_still_rising_says_so(tmp_path, capsys):
    """One epoch always ends on its best epoch: the search and the retrain say more epochs
    would help, and the plan and retrain.json record the epochs run."""
    run = tmp_path / "run"
    args = ["search", "--data", "synthetic", "--budget", "25%", "--controller", "uniform"]
    assert main([*args, "--out", str(run), "--epochs", "1", "--batch-size", "1024"]) == 0
    assert "still rising at the last epoch (1)" in capsys.readouterr().out
    plan = json.loads((run / "plan.json").read_text())
    assert plan["extra"]["training"] == {"epochs_run": 1, "best_epoch": 1}
    assert main(["retrain", str(run), "--epochs", "1"]) == 0
    assert "still rising" in capsys.readouterr().out
    r = json.loads((run / "retrain.json").read_text())
    assert r["epochs_run"] == 1 and r["best_epoch"] == 1


def test_a_plateau_gives_no_hint():
    from embsearch.train.trainer import TrainResult

    plateau = TrainResult(0.7, 0.6, best_epoch=3, epochs_run=5, seconds=1.0)
    rising = TrainResult(0.7, 0.6, best_epoch=5, epochs_run=5, seconds=1.0)
    assert not plateau.still_improving and plateau.epochs_hint() is None
    assert rising.still_improving and "(5)" in rising.epochs_hint()


@pytest.mark.parametrize(
    "args,projection",
    [
        ([], "pad"),  # the controller's own structure (DNIS's masks, OptEmbed's)
        (["--projection", "linear"], "linear"),  # the flag reaches a controller choosing its own
        (["--projection", "linear", "--param", "projection=pad"], "pad"),  # --param wins
    ],
)
@pytest.mark.parametrize("controller", ["dnis", "optembed"])
def test_projection_flag_reaches_a_controller_choosing_its_own(
    tmp_path, args, projection, controller
):
    out = tmp_path / "run"
    argv = ["search", "--out", str(out), *FAST, "--controller", controller, *args]
    assert main(argv) == 0
    plan = json.loads((out / "plan.json").read_text())
    assert plan["projection"] == projection
    assert plan["table_bytes"] <= plan["budget_bytes"]


def test_search_says_when_optembed_keeps_the_uniform_plan(tmp_path, capsys):
    """A margin no pick can clear returns the uniform plan, and the search says so and how to
    get the pick instead."""
    out = tmp_path / "run"
    argv = ["search", "--out", str(out), *FAST, "--controller", "optembed"]
    argv += ["--param", "uniform_margin=1000000", "--param", "generations=1"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    plan = json.loads((out / "plan.json").read_text())
    if plan["extra"].get("uniform_margin") is None:  # the pick was the uniform plan itself
        assert "kept the uniform plan" not in printed
    else:
        assert "kept the uniform plan" in printed and "uniform_margin=0" in printed
        assert len({f["dim"] for f in plan["fields"]}) == 1


def test_a_search_cut_short_by_max_seconds_says_so_even_when_quiet(tmp_path, capsys):
    """``--max-seconds`` too short for the supernet: the plan is the best found in time, and
    the summary says what was cut (``--quiet`` hides progress, not this)."""
    out = tmp_path / "run"
    args = ["--controller", "optembed", "--budget", "10%", "--max-seconds", "0.01", "--quiet"]
    assert main(["search", "--out", str(out), *FAST, *args]) == 0
    said = capsys.readouterr().out
    assert "--max-seconds cut short supernet training and the search after" in said
    plan = json.loads((out / "plan.json").read_text())
    assert plan["table_bytes"] <= plan["budget_bytes"]
    assert plan["extra"]["search"]["stop_reason"] == "time"


def test_controllers_list_cites_each_paper_by_first_author_and_year(capsys):
    assert main(["controllers"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"autodim .* Zhao et al\. 2021", out)  # its arXiv:2006.14827 is no year
    assert re.search(r"rule .* Chen et al\. 2021", out)
    assert "controllers NAME" in out


def test_a_run_config_built_in_code_is_checked_like_the_command_line(tmp_path):
    """``run_search`` (and ``retrain``'s overrides) validate the options they train with."""
    from embsearch.errors import ConfigError
    from embsearch.run_config import RunConfig
    from embsearch.search import run_search

    with pytest.raises(ConfigError, match="--batch-size must be an integer >= 1, got 0"):
        run_search(RunConfig(batch_size=0), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_eval_every_reaches_the_search_and_the_retrain(tmp_path):
    """``--eval-every`` is saved with the run, and the search's and the retrain's trainings
    validate within epochs: their records give the steps (synthetic: 48,000 training rows,
    47 steps an epoch at batch 1024)."""
    run = tmp_path / "run"
    args = ["search", "--data", "synthetic", "--budget", "25%", "--controller", "uniform"]
    assert main([*args, "--out", str(run), *FAST, "--eval-every", "10"]) == 0
    assert json.loads((run / "config.json").read_text())["eval_every"] == 10
    training = json.loads((run / "plan.json").read_text())["extra"]["training"]
    validated = (10, 20, 30, 40, 47)  # every 10th step and the epoch's end
    assert training["steps_run"] in validated and training["best_step"] in validated
    assert main(["retrain", str(run), "--quiet"]) == 0
    r = json.loads((run / "retrain.json").read_text())
    assert r["steps_run"] in validated and r["best_step"] in validated
    assert main(["retrain", str(run), "--quiet", "--eval-every", "0"]) == 0  # override: per epoch
    assert "steps_run" not in json.loads((run / "retrain.json").read_text())


def test_the_readme_config_example_is_a_valid_config():
    """The README's search.toml parses into a RunConfig with the values it shows."""
    import tomllib
    from pathlib import Path

    from embsearch.run_config import RunConfig

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"```toml\n(.*?)```", readme, re.S)
    assert block is not None
    cfg = RunConfig.from_mapping(tomllib.loads(block.group(1)))
    assert cfg.budgets == ["10%", "4MiB"] and cfg.controller_params == {"arch_lr": 0.1}
    assert cfg.eval_every == 500


def test_retrain_also_tests_the_model_rule_served(tmp_path, capsys):
    """RULE serves its plan from the supernet (no retraining): retrain reports that model's
    test AUC beside the retrained one's, and it is the run's own weights on the test split."""
    import torch

    from embsearch.plan import Plan
    from embsearch.search import build_space, load_dataset, load_run, make_context
    from embsearch.train.trainer import evaluate

    run = tmp_path / "rule"
    args = ["search", "--data", "synthetic", "--budget", "40%", "--controller", "rule"]
    params = [
        "--param",
        "estimator_samples=8",
        "--param",
        "generations=1",
        "--param",
        "population=4",
    ]
    params += ["--param", "top_k=2"]
    config = tmp_path / "small.toml"
    config.write_text("synthetic_rows = 6000\n")  # a few seconds
    assert main([*args, *params, "--config", str(config), "--out", str(run), *FAST]) == 0
    assert json.loads((run / "plan.json").read_text())["extra"]["served_from_supernet"] is True
    capsys.readouterr()
    assert main(["retrain", str(run), "--quiet"]) == 0
    out = capsys.readouterr().out
    report = json.loads((run / "retrain.json").read_text())
    cfg, plan, state = load_run(run)
    ds = load_dataset(cfg)
    ctx = make_context(cfg, ds, build_space(cfg, ds, plan.space), [plan.budget_bytes], False)
    model = ctx.build_model(Plan.load(run / "plan.json"))
    model.load_state_dict(state)
    with torch.no_grad():
        auc, _ = evaluate(model, ctx.data.split("test"))
    assert report["served_test_auc"] == pytest.approx(auc, abs=1e-9)
    assert f"served from the supernet, as searched: test AUC {auc:.4f}" in out


def test_search_options_are_declared_once():
    """Every RunConfig field is one Option; every Option with help is a `search` flag whose
    value lands in that field, and a bad value is refused with the same words from the flag
    and from a --config file."""
    from dataclasses import fields

    from embsearch.cli import build_parser
    from embsearch.errors import ConfigError
    from embsearch.run_config import OPTIONS, RunConfig

    assert [o.name for o in OPTIONS] == [f.name for f in fields(RunConfig)]
    search = build_parser()._subparsers._group_actions[0].choices["search"]
    dests = {a.dest for a in search._actions}
    assert {o.name for o in OPTIONS if o.help} <= dests
    assert "synthetic_rows" not in dests  # a --config key only
    for o in OPTIONS:
        if o.kind == "int" and o.positive:
            with pytest.raises(ConfigError, match=rf"^{o.flag} must be {re.escape(o.allowed)}"):
                RunConfig(**{o.name: 0}).validate()
            with pytest.raises(ConfigError, match=rf"^cfg.toml: {o.name} must be"):
                RunConfig(**{o.name: 0}).validate("cfg.toml")


def test_short_citation_names_the_papers_year_not_the_librarys():
    from embsearch.cli import short_citation
    from embsearch.controllers.registry import get_controller

    assert short_citation(get_controller("tpe").paper) == "Bergstra et al. 2011"
    assert short_citation(get_controller("cmaes").paper) == "Hansen et al. 2001"
    assert short_citation(get_controller("nsga2").paper) == "Deb et al. 2002"
    assert short_citation(get_controller("optembed").paper) == "Lyu et al. 2022"  # not arXiv's
