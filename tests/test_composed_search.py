"""Who searches the composed spaces (issue 21 item 3): uniform and mde end to end, a hybrid
plan retrained, exported and loaded back, and the one-line refusals."""

import json

import pytest
import torch

from embsearch.cli import main
from embsearch.export import export_run, load_model
from embsearch.run_config import RunConfig
from embsearch.search import load_run, run_search
from embsearch.search_spaces import COMPOSED_SPACES

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"data": "synthetic", "epochs": 1, "synthetic_rows": 2000, "batch_size": 1024, "threads": 1}


def _budget(space: str) -> str:
    """Below every full-rows plan when rows are searched (so some field must share rows)."""
    budget = {"precision": "45%", "field_dims+precision": "5%"}.get(space, "2%")
    # int4c rows of dim 1-2 cost 1/64 of the fp32 table (1.6%): the hybrid shares rows below it
    return "1%" if space == "field_dims+meta_table+precision" else budget


@pytest.mark.parametrize("controller", ["uniform", "mde", "tpe"])
@pytest.mark.parametrize("space", sorted(COMPOSED_SPACES))
def test_runs_end_to_end_in_every_composed_space(tmp_path, controller, space):
    out = tmp_path / "run"
    params = {"trials": 6} if controller == "tpe" else {}
    cfg = RunConfig(
        **SMALL,
        budgets=[_budget(space)],
        controller=controller,
        controller_params=params,
        space=space,
    )
    run_search(cfg, out, progress=False)
    _, plan, state = load_run(out)
    assert plan.space == space
    assert plan.table_bytes <= plan.budget_bytes
    assert state  # retrained
    blocks = [plan.block_spec(f, g) for f in plan.fields for g in range(len(f.groups))]
    if "meta_table" in space:
        assert any(b.kind != "full" for b in blocks)
    if space == "precision":
        assert all(b.dim == 16 for b in blocks)
        assert any(b.precision != "fp32" for b in blocks)
    if controller == "tpe":  # the study's parameters are per axis, its first trial enqueued
        assert plan.extra["study"]["trials"] >= 6


def test_the_report_names_the_blocks(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["search", "--data", "synthetic", "--epochs", "1", "--budget", "3%", "--out", str(out)]
    assert main([*argv, "--space", "meta_table", "--controller", "uniform", "--quiet"]) == 0
    shown = capsys.readouterr().out
    assert "  blocks: f00=hash m=" in shown


def test_a_hybrid_plan_retrains_exports_and_loads_back(tmp_path):
    out = tmp_path / "run"
    cfg = RunConfig(
        **SMALL, budgets=["1%"], controller="mde", space="field_dims+meta_table+precision"
    )
    run_search(cfg, out, progress=False)
    _, plan, _ = load_run(out)
    assert json.loads((out / "plan.json").read_text())["format"] == "embsearch.plan/2"
    kinds = {plan.block_spec(f, 0).kind for f in plan.fields}
    assert kinds - {"full"}  # a hybrid: shared rows somewhere
    exported = export_run(out, tmp_path / "export", "safetensors")
    from safetensors.torch import load_file

    tensors = load_file(str(exported / "weights.safetensors"))
    assert sum(t.numel() * t.element_size() for t in tensors.values()) == plan.table_bytes
    model, loaded = _trained(out), load_model(exported)
    x = torch.stack([torch.randint(0, f.rows, (256,)) for f in plan.fields], 1)
    model.eval(), loaded.eval()
    torch.testing.assert_close(model(x), loaded(x), rtol=0, atol=0)


def _trained(run):
    from embsearch import MixedDimEmbedding
    from embsearch.backbones import CTRModel, make_backbone

    cfg, plan, state = load_run(run)
    model = CTRModel(
        MixedDimEmbedding(plan),
        make_backbone(cfg.backbone, len(plan.fields), plan.width, plan.live_inputs),
    )
    model.load_state_dict(state)
    return model


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--controller", "rule", "--space", "meta_table"], "rule' works in the"),
        (["--controller", "autodim", "--space", "field_dims+precision"], "autodim' works in the"),
        (["--space", "field_dims+precision", "--precision", "fp16"], "searches it"),
        (["--space", "precision", "--budget", "10%"], "smallest plan of the precision space"),
        (["--space", "meta_tables"], "unknown search space"),
    ],
)
def test_bad_space_input_is_one_line_and_exit_2(tmp_path, capsys, args, expected):
    rc = main(
        ["search", "--data", "synthetic", "--epochs", "1", "--out", str(tmp_path / "r"), *args]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert expected in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())
