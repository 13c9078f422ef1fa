"""Inputs checked before use (issue 18, items 3, 7, 8, 10): run directories that work from
any working directory and refuse another dataset, strict JSON, one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from embsearch.cli import main

FAST = ["--epochs", "1", "--batch-size", "512", "--quiet"]


def _csv(path: Path, rows: int, seed: int = 0, header: str = "user,item,hour,label") -> Path:
    """A small CSV whose label depends on ``user`` (both classes in every split)."""
    rng = np.random.default_rng(seed)
    lines = [header]
    for _ in range(rows):
        u, i, h = rng.integers(0, 30), rng.integers(0, 50), rng.integers(0, 24)
        y = int(rng.random() < (0.8 if u < 15 else 0.2))
        lines.append(f"u{u},i{i},{h},{y}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _prepare(tmp: Path, name: str, rows: int = 600, seed: int = 0) -> Path:
    out = tmp / name
    src = _csv(tmp / f"{name}.csv", rows, seed)
    args = ["data", "prepare", "--format", "csv", "--input", str(src), "--label", "label"]
    assert main([*args, "--out", str(out)]) == 0
    return out


def _error(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    """Run ``args``, expect exit 2 and one ``embsearch: error:`` line; return it."""
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("embsearch: error: "), err
    return err[0]


@pytest.fixture(scope="module")
def prepared_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A dataset prepared from a relative path and a run searched on it, from ``tmp/work``."""
    tmp = tmp_path_factory.mktemp("inputs")
    work = tmp / "work"
    work.mkdir()
    mp = pytest.MonkeyPatch()
    mp.chdir(work)
    try:
        _prepare(Path("."), "data")
        args = ["search", "--data", "data", "--budget", "25%", "--controller", "uniform"]
        assert main([*args, "--out", "run", *FAST]) == 0
    finally:
        mp.undo()
    return work / "data", work / "run"


def test_retrain_and_export_work_from_another_directory(prepared_run, tmp_path, monkeypatch):
    data, run = prepared_run
    assert json.loads((run / "config.json").read_text())["data"] == str(data.resolve())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["export", str(run), "--out", "exp"]) == 0
    assert (elsewhere / "exp" / "vocab" / "index.json").is_file()  # vocab included
    assert main(["retrain", str(run), "--epochs", "1", "--quiet"]) == 0
    assert json.loads((run / "retrain.json").read_text())["test_auc"] > 0.5


def test_another_dataset_with_the_same_field_sizes_is_refused(
    prepared_run, tmp_path, capsys, monkeypatch
):
    data, run = prepared_run
    other = _prepare(tmp_path, "other", seed=1)  # same columns and row count, other values
    cfg = json.loads((run / "config.json").read_text())
    plan = json.loads((run / "plan.json").read_text())
    from embsearch.data.dataset import Dataset

    assert Dataset.load(other).schema.num_fields == Dataset.load(data).schema.num_fields
    swapped = tmp_path / "swapped"
    swapped.mkdir()
    for name in ("plan.json", "model.pt"):
        (swapped / name).write_bytes((run / name).read_bytes())
    (swapped / "config.json").write_text(json.dumps({**cfg, "data": str(other)}))
    have = Dataset.load(other).fingerprint()
    for cmd in (["retrain", str(swapped), "--quiet"], ["export", str(swapped), "--out", "x"]):
        monkeypatch.chdir(tmp_path)
        line = _error(capsys, cmd)
        assert plan["data_fingerprint"] in line and have in line
        assert not (tmp_path / "x").exists() and not (swapped / "retrain.json").exists()


def test_a_missing_data_directory_is_named(prepared_run, tmp_path, capsys):
    _, run = prepared_run
    gone = tmp_path / "gone"
    gone.mkdir()
    for name in ("plan.json", "model.pt"):
        (gone / name).write_bytes((run / name).read_bytes())
    cfg = json.loads((run / "config.json").read_text())
    (gone / "config.json").write_text(json.dumps({**cfg, "data": str(tmp_path / "moved")}))
    line = _error(capsys, ["export", str(gone), "--out", str(tmp_path / "x")])
    assert str(tmp_path / "moved") in line and "does not exist" in line


def test_retrain_says_what_a_wrong_path_is(prepared_run, tmp_path, capsys):
    _, run = prepared_run
    exp = tmp_path / "exp"
    assert main(["export", str(run), "--out", str(exp)]) == 0
    assert "export directory" in _error(capsys, ["retrain", str(exp)])
    line = _error(capsys, ["retrain", str(run / "plan.json")])
    assert "is a file" in line and str(run) in line
    assert "is a file" in _error(capsys, ["export", str(run / "config.json"), "--out", "x"])


def test_a_budget_folder_named_by_its_budget_is_pointed_to(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "budget-25pct").mkdir(parents=True)
    (run / "budget-10pct").mkdir()
    line = _error(capsys, ["retrain", str(run / "budget-25%")])
    assert str(run / "budget-25pct") in line
    line = _error(capsys, ["retrain", str(run / "budget-7%")])
    assert "budget-10pct, budget-25pct" in line


def _strict_load(path: Path) -> object:
    """Parse ``path`` as strict JSON: NaN, Infinity and -Infinity are refused."""

    def refuse(name: str) -> None:
        raise ValueError(f"{path} holds {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_a_ten_row_csv_is_refused_at_prepare_with_the_counts(tmp_path, capsys):
    src = tmp_path / "ten.csv"
    src.write_text("a,b,label\n" + "".join(f"x{i % 3},y{i % 2},{i % 2}\n" for i in range(10)))
    args = ["data", "prepare", "--format", "csv", "--input", str(src), "--label", "label"]
    line = _error(capsys, [*args, "--out", str(tmp_path / "d")])
    assert "val split has 1 row: 0 positive, 1 negative" in line
    assert not (tmp_path / "d").exists()


def test_a_one_class_validation_file_is_refused_naming_it(tmp_path, capsys):
    train, test = _csv(tmp_path / "train.csv", 200), _csv(tmp_path / "test.csv", 50, seed=2)
    val = tmp_path / "val.csv"
    val.write_text("user,item,hour,label\n" + "u1,i1,3,0\n" * 30)
    files = [str(train), str(val), str(test)]
    args = ["data", "prepare", "--format", "csv", "--input", *files, "--label", "label"]
    line = _error(capsys, [*args, "--out", str(tmp_path / "d")])
    assert str(val) in line and "30 rows: 0 positive, 30 negative" in line
    assert not (tmp_path / "d").exists()


def test_every_json_file_is_strict_when_a_metric_cannot_be_computed(tmp_path):
    """A dataset saved without ``prepare``'s check (one-class validation labels): the AUC is
    undefined, and plan.json, search.json and retrain.json say so with ``null`` + reason."""
    from embsearch.testing import small_dataset

    ds = small_dataset(rows=3000)
    ds.val.y[:] = 0.0
    ds.save(tmp_path / "d")
    args = ["search", "--data", str(tmp_path / "d"), "--controller", "uniform", *FAST]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    assert main(["retrain", str(tmp_path / "run"), "--epochs", "1", "--quiet"]) == 0
    files = sorted((tmp_path / "run").glob("*.json"))
    assert {p.name for p in files} >= {"plan.json", "search.json", "retrain.json", "config.json"}
    for p in files:
        _strict_load(p)
    metrics = _strict_load(tmp_path / "run" / "plan.json")["metrics"]
    assert metrics["val_auc"] is None and metrics["val_logloss"] is None
    assert set(metrics["null_reasons"]) == {"val_auc", "val_logloss"}
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "exp")]) == 0


def test_write_json_turns_non_finite_numbers_into_null_with_a_reason(tmp_path):
    from embsearch._atomic import write_json

    write_json(tmp_path / "a.json", {"auc": math.nan, "ll": math.inf, "ok": 0.5, "h": [-math.inf]})
    got = _strict_load(tmp_path / "a.json")
    assert got["auc"] is None and got["ll"] is None and got["ok"] == 0.5 and got["h"] == [None]
    assert set(got["null_reasons"]) == {"auc", "ll"}


def test_a_plan_keeping_no_embedding_is_refused(tmp_path, capsys):
    line = _error(capsys, ["search", "--candidates", "0", "--out", str(tmp_path / "r")])
    assert "--candidates" in line and "no embedding" in line
    assert not (tmp_path / "r").exists()
    from embsearch.plan import FieldPlan, GroupPlan, Plan

    plan = Plan("x", "field_dims", 16, [FieldPlan("a", 5, [GroupPlan(0, 5, 0)])], 100)
    plan.save(tmp_path / "plan.json")
    with pytest.raises(Exception, match="keeps no embedding"):
        Plan.load(tmp_path / "plan.json")


def test_an_id_like_column_is_warned_of(tmp_path, capsys):
    src = _csv(tmp_path / "a.csv", 400)
    lines = src.read_text().splitlines()
    src.write_text(
        "\n".join([lines[0] + ",ts", *(f"{r},t{k}" for k, r in enumerate(lines[1:]))]) + "\n"
    )
    args = ["data", "prepare", "--format", "csv", "--input", str(src), "--label", "label"]
    assert main([*args, "--out", str(tmp_path / "d")]) == 0
    err = capsys.readouterr().err
    assert "'ts' looks like an id" in err and "--drop ts" in err
    assert "'user'" not in err and "'item'" not in err
    meta = json.loads((tmp_path / "d" / "schema.json").read_text())["meta"]
    assert list(meta["id_like_fields"]) == ["ts"]


def test_training_without_a_computable_auc_reports_nan_not_a_sentinel():
    from embsearch.controllers.uniform import Uniform
    from embsearch.testing import make_test_context, small_dataset

    ds = small_dataset(rows=3000)
    ds.val.y[:] = 1.0
    ctx = make_test_context(Uniform, dataset=ds)
    plan = Uniform().search_budgets(ctx)[0]
    _, result = ctx.train_plan(plan)
    assert math.isnan(result.val_auc) and math.isnan(result.val_logloss)


@pytest.mark.parametrize(
    "name, needle",
    [
        (":Foo", "package.module:Class"),
        ("..x:Y", "package.module:Class"),
        ("embsearch.controllers.mde:", "package.module:Class"),
        ("embsearch.controllers.base:Controller", "abstract (it does not implement search)"),
        ("embsearch.controllers.base:AskTellController", "abstract"),
    ],
)
def test_a_bad_controller_path_is_one_line(tmp_path, capsys, name, needle):
    line = _error(capsys, ["search", "--controller", name, "--out", str(tmp_path / "r")])
    assert needle in line
    assert "abstract" in _error(capsys, ["controllers", "embsearch.controllers.base:Controller"])
    assert not (tmp_path / "r").exists()


def test_duplicate_column_names_are_one_line(tmp_path, capsys):
    src = tmp_path / "d.csv"
    src.write_text("user,user,label\n" + "a,b,1\nc,d,0\n" * 40)
    args = ["data", "prepare", "--format", "csv", "--input", str(src), "--label", "label"]
    line = _error(capsys, [*args, "--out", str(tmp_path / "o")])
    assert "2 columns named 'user'" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("fmt", ["csv", "criteo"])
def test_a_binary_input_is_echoed_escaped_and_cut(tmp_path, capsys, fmt):
    rng = np.random.default_rng(0)
    src = tmp_path / "blob"
    src.write_bytes(
        b"\x7fELF\x02\x01\x01\x00" + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()
    )
    args = ["data", "prepare", "--format", fmt, "--input", str(src), "--out", str(tmp_path / "o")]
    line = _error(capsys, [*args, *(["--label", "x"] if fmt == "csv" else [])])
    assert line.isprintable() and "\ufffd" not in line and len(line) < 700, line


def test_printable_escapes_and_cuts():
    from embsearch._text import printable

    assert printable("a\x00b\nc\ufffdé") == "a\\x00b\\nc\\ufffdé"
    assert printable("x" * 300, 10) == "x" * 10 + "... (290 more characters)"


@pytest.mark.parametrize("text, nbytes", [("1e9", 10**9), ("2.5e3KiB", 2_560_000), ("1E6", 10**6)])
def test_a_budget_in_e_notation_is_read(text, nbytes):
    from embsearch.budget import parse_budget

    assert parse_budget(text).nbytes == nbytes


def test_a_budget_too_large_for_a_float_is_one_line():
    from embsearch.budget import parse_budget
    from embsearch.errors import BudgetError

    with pytest.raises(BudgetError, match="too large"):
        parse_budget("1e999")


def test_vocabulary_is_importable_from_the_package():
    import embsearch
    from embsearch import Vocabulary
    from embsearch.data.vocab import Vocabulary as Direct

    assert Vocabulary is Direct and "Vocabulary" in embsearch.__all__


def test_torchrec_json_names_the_projections_to_the_width():
    from embsearch.export import torchrec_tables
    from embsearch.plan import FieldPlan, GroupPlan, Plan

    fields = [
        FieldPlan("a", 10, [GroupPlan(0, 4, 8), GroupPlan(4, 10, 2)]),
        FieldPlan("b", 5, [GroupPlan(0, 5, 16)]),
    ]
    linear = torchrec_tables(Plan("x", "feature_dims", 16, fields, 10**6))
    assert linear["width"] == 16 and linear["projection"] == "linear"
    assert [(p["name"], p["shape"], p["tables"]) for p in linear["projections"]] == [
        ("proj.a.2", [2, 16], ["emb.a.1"]),
        ("proj.a.8", [8, 16], ["emb.a.0"]),
    ]
    assert "width 16" in linear["note"]
    pad = torchrec_tables(Plan("x", "feature_dims", 16, fields, 10**6, projection="pad"))
    assert pad["projections"] == [] and "zero-pad" in pad["note"]


def test_piped_output_starts_with_no_blank_lines(tmp_path, capfd, monkeypatch):
    from embsearch.run_config import RunConfig

    monkeypatch.setattr(RunConfig, "synthetic_rows", 6000)
    args = ["search", "--controller", "uniform", "--epochs", "1", "--out", str(tmp_path / "r")]
    assert main(args) == 0  # progress on (no --quiet), stderr not a terminal
    out, err = capfd.readouterr()
    assert out.splitlines()[0].strip() and not any(not ln.strip() for ln in err.splitlines())


def test_a_validation_auc_below_chance_is_pointed_out(tmp_path, capsys):
    from embsearch.testing import small_dataset

    ds = small_dataset(rows=3000)
    ds.val.y[:] = 1.0 - ds.val.y  # validation labels inverted: the model ranks them backwards
    ds.save(tmp_path / "d")
    args = ["search", "--data", str(tmp_path / "d"), "--controller", "uniform", *FAST]
    assert main([*args, "--out", str(tmp_path / "r")]) == 0
    assert "below 0.5, worse than chance" in capsys.readouterr().out


def test_a_controller_returning_a_plan_without_embeddings_is_refused(tmp_path, monkeypatch, capsys):
    """A plan whose every dim is 0 (here a plug-in's) is refused before anything is
    written, in one line."""
    (tmp_path / "zero_controller.py").write_text(
        "from embsearch import Controller\n"
        "class Zero(Controller):\n"
        "    name, family, paper = 'zero', 'custom', 'none'\n"
        "    def search(self, ctx):\n"
        "        cand = tuple((0,) * len(g) for g in ctx.space.groups)\n"
        "        return self.make_plan(ctx, cand)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "run"
    args = ["search", "--data", "synthetic", "--budget", "25%", "--candidates", "0,4,16"]
    assert main([*args, "--controller", "zero_controller:Zero", "--out", str(out), *FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "keeps no embedding at all" in err[0], err
    assert not (out / "plan.json").exists()
