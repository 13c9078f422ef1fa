"""Export round-trips: identical logits, exact bytes, loadable with plain torch."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from embsearch import MixedDimEmbedding
from embsearch.cli import main
from embsearch.errors import RunDirError
from embsearch.export import export_run, load_model
from embsearch.run_config import RunConfig
from embsearch.search import load_run, run_search


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "cprec"
    cfg = RunConfig(
        data="synthetic",
        budgets=["30%"],
        controller="cprec",
        epochs=1,
        synthetic_rows=6000,
        batch_size=1024,
    )
    run_search(cfg, out, progress=False)
    return out


def test_export_round_trip_identical_logits(run_dir, tmp_path):
    cfg, plan, state = load_run(run_dir)
    from embsearch.backbones import CTRModel, make_backbone

    original = CTRModel(
        MixedDimEmbedding(plan), make_backbone(cfg.backbone, len(plan.fields), plan.width)
    )
    original.load_state_dict(state)
    out = export_run(run_dir, tmp_path / "export")
    loaded = load_model(out)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(np.stack([rng.integers(0, f.rows, 256) for f in plan.fields], 1)).long()
    original.eval(), loaded.eval()
    assert torch.equal(original(x), loaded(x))


def test_export_bytes_equal_table_bytes(run_dir, tmp_path):
    out = export_run(run_dir, tmp_path / "export")
    plan = json.loads((out / "plan.json").read_text())
    tensors = load_file(str(out / "weights.safetensors"))
    assert sum(t.numel() * t.element_size() for t in tensors.values()) == plan["table_bytes"]
    assert plan["table_bytes"] <= plan["budget_bytes"]
    assert plan["table_bytes"] == sum(f["bytes"] for f in plan["fields"])


def test_plain_torch_loading_as_documented(run_dir, tmp_path):
    """The README's recipe (no embsearch) gives the same vectors as MixedDimEmbedding.load."""
    out = export_run(run_dir, tmp_path / "export")
    plan = json.loads((out / "plan.json").read_text())
    w = load_file(str(out / "weights.safetensors"))

    def lookup(field, i):
        g, grp = next(
            (g, grp) for g, grp in enumerate(field["groups"]) if grp["start"] <= i < grp["stop"]
        )
        v = w[f"emb.{field['name']}.{g}"][i - grp["start"]]
        if grp["dim"] < plan["width"]:
            v = (
                v @ w[f"proj.{field['name']}.{grp['dim']}"]
                if plan["projection"] == "linear"
                else torch.nn.functional.pad(v, (0, plan["width"] - grp["dim"]))
            )
        return v

    emb = MixedDimEmbedding.load(out)
    x = torch.tensor([[min(i * 7, f["rows"] - 1) for f in plan["fields"]] for i in range(20)])
    expected = emb(x)
    for b in range(x.shape[0]):
        for j, field in enumerate(plan["fields"]):
            torch.testing.assert_close(lookup(field, int(x[b, j])), expected[b, j])


def test_loading_an_export_imports_no_controller_runner_or_engine(run_dir, tmp_path):
    """Loading an exported table or model (in a fresh interpreter) loads neither the search
    runner, nor a controller, nor the engine they run on: the import-linter contract in
    pyproject.toml, checked here at run time (the package's ``__init__`` included)."""
    out = export_run(run_dir, tmp_path / "export")
    code = (
        "import sys\n"
        "import embsearch\n"
        "from embsearch.load_export import load_model\n"
        f"load_model({str(out)!r})\n"
        f"embsearch.MixedDimEmbedding.load({str(out)!r})\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('embsearch'))))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "embsearch.embeddings.mixed_dim" in loaded
    heavy = {"search", "search_loop", "retrain", "context", "evaluator", "controllers", "data"}
    below = {m.split(".")[1] for m in loaded if "." in m}  # embsearch.<this>...
    assert not below & heavy, sorted(below)


def test_torchrec_config(run_dir, tmp_path):
    out = export_run(run_dir, tmp_path / "export", fmt="torchrec")
    cfg = json.loads((out / "torchrec.json").read_text())
    plan = json.loads((out / "plan.json").read_text())
    keys = {"name", "num_embeddings", "embedding_dim", "feature_names", "pooling", "data_type"}
    assert all(keys <= set(t) for t in cfg["tables"])
    assert sum(t["num_embeddings"] for t in cfg["tables"]) == sum(f["rows"] for f in plan["fields"])


def test_export_refuses_existing_output(run_dir, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("keep")
    with pytest.raises(RunDirError):
        export_run(run_dir, tmp_path / "busy")
    assert (tmp_path / "busy" / "x").read_text() == "keep"


def _edit_plan(path, edit):
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw))


@pytest.mark.parametrize(
    "damage,needle",
    [
        (lambda d: (d / "plan.json").write_text("{"), "plan.json is damaged (not valid JSON"),
        (lambda d: (d / "plan.json").write_text("[]"), "a JSON object was expected"),
        (lambda d: (d / "config.json").write_text("[1]"), "expected a table of options"),
        (lambda d: (d / "model.pt").write_bytes(b"garbage"), "model.pt cannot be read"),
        (
            lambda d: _edit_plan(d / "plan.json", lambda r: r.update(table_bytes=None)),
            "not a valid plan",
        ),
        (
            lambda d: _edit_plan(
                d / "plan.json", lambda r: r["fields"][0]["groups"][0].update(dim=999)
            ),
            "dim 999 is outside [0, 16]",
        ),
        (
            lambda d: _edit_plan(
                d / "plan.json",
                lambda r: (r["fields"][0]["groups"][0].update(dim=5), r.pop("table_bytes")),
            ),
            "does not match its plan.json",
        ),
    ],
)
def test_damaged_run_dir_is_one_line_and_writes_nothing(run_dir, tmp_path, capsys, damage, needle):
    """A run directory whose files were damaged or edited by hand: one line, no export."""
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    damage(copy)
    out = tmp_path / "exported"
    assert main(["export", str(copy), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err
    assert not out.exists()
    assert {p.name for p in tmp_path.iterdir()} == {"run"}  # no temporary leftovers
