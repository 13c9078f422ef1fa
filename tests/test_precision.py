"""Precision is counted and stored as the plan says (issue 21, "what is wrong today")."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from embsearch.blocks import PRECISIONS
from embsearch.budget import field_bytes, parse_budget
from embsearch.cli import main
from embsearch.embeddings import MixedDimEmbedding
from embsearch.export import export_run
from embsearch.plan import Plan
from embsearch.search_spaces import FieldDimsSpace


def test_percent_reference_is_the_fp32_table_whatever_the_precision(small_ds):
    fp32 = FieldDimsSpace(small_ds.schema, width=16)
    full = sum(small_ds.schema.cardinalities) * 16 * 4
    for precision in ("fp32", "fp16", "int8"):
        space = FieldDimsSpace(small_ds.schema, width=16, precision=precision)
        assert space.full_table_bytes() == fp32.full_table_bytes() == full


def test_hand_counted_field_bytes_per_precision():
    # 100 ids at dim 4 + 20 at dim 16, width 16: one 4x16 projection
    assert field_bytes([100, 20], [4, 16], 16, "linear", "fp32") == (400 + 320 + 64) * 4
    assert field_bytes([100, 20], [4, 16], 16, "linear", "fp16") == (400 + 320 + 64) * 2
    # int8: one byte a weight, an fp32 scale and offset a row, the projection in fp16
    assert field_bytes([100, 20], [4, 16], 16, "linear", "int8") == 720 + 120 * 8 + 64 * 2
    # a dropped block (dim 0) stores nothing, not even a scale
    assert field_bytes([100, 20], [0, 16], 16, "pad", "int8") == 320 + 20 * 8


def test_fp16_and_int8_plans_export_their_own_dtypes_and_bytes(small_ds):
    x = torch.stack([torch.randint(0, c, (32,)) for c in small_ds.schema.cardinalities], 1)
    for precision, dtype in (("fp16", torch.float16), ("int8", torch.uint8)):
        space = FieldDimsSpace(small_ds.schema, width=8, candidates=[2, 8], precision=precision)
        cand = tuple((2 if f % 2 else 8,) for f in range(space.num_fields))
        plan = space.to_plan(cand, "t", 10**9)
        emb = MixedDimEmbedding(plan)
        tensors = emb.block_tensors()
        rows = {k: v for k, v in tensors.items() if k.startswith("emb.") and k.endswith(".weight")}
        assert rows and all(v.dtype == dtype for v in rows.values())
        assert sum(t.numel() * t.element_size() for t in tensors.values()) == plan.table_bytes
        loaded = MixedDimEmbedding(plan)
        loaded.load_block_tensors(tensors)
        held = [p for p in loaded.state_dict().values() if p.dim() == 2 and p.shape[0] > 8]
        assert held and all(p.dtype == dtype for p in held)  # it holds the plan's dtype
        emb.eval(), loaded.eval()
        assert torch.equal(emb(x), loaded(x))


def test_a_budget_buys_more_dims_at_lower_precision(small_ds):
    spaces = {p: FieldDimsSpace(small_ds.schema, width=16, precision=p) for p in PRECISIONS}
    budget = spaces["fp32"].resolve_budget(parse_budget("25%"))
    assert {s.resolve_budget(parse_budget("25%")) for s in spaces.values()} == {budget}
    pref = [
        np.log2(np.array(spaces["fp32"].candidates, dtype=float))[None]
        for _ in small_ds.schema.fields
    ]
    total = {}
    for p, space in spaces.items():
        cand = space.best_under_budget(pref, budget)
        assert space.bytes_of(cand) <= budget
        total[p] = sum(d for dims in cand for d in dims)
    assert total["fp16"] > total["fp32"] and total["int8"] > total["fp32"]


def test_search_with_precision_plans_trains_and_exports_that_precision(tmp_path, monkeypatch):
    code = main(
        ["search", "--data", "synthetic", "--budget", "25%", "--controller", "mde", "--epochs",
         "1", "--threads", "1", "--precision", "fp16", "--out", str(tmp_path / "run"), "--quiet"]
    )  # fmt: skip
    assert code == 0
    plan = Plan.load(tmp_path / "run")
    assert plan.precision == "fp16" and plan.format == "embsearch.plan/2"
    assert json.loads((tmp_path / "run" / "config.json").read_text())["precision"] == "fp16"
    out = export_run(tmp_path / "run", tmp_path / "export")
    tensors = load_file(str(out / "weights.safetensors"))
    assert {t.dtype for t in tensors.values()} == {torch.float16}
    assert sum(t.numel() * t.element_size() for t in tensors.values()) == plan.table_bytes
    # fp32 tensors under an fp16 plan have the plan's element counts: the check sees their bytes
    real = MixedDimEmbedding.block_tensors
    monkeypatch.setattr(
        MixedDimEmbedding,
        "block_tensors",
        lambda self: {k: v.float() for k, v in real(self).items()},
    )
    with pytest.raises(RuntimeError, match=f"export holds {2 * plan.table_bytes} B"):
        export_run(tmp_path / "run", tmp_path / "export2")


def test_unknown_precision_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "c.toml").write_text('precision = "int4"\n')
    assert main(["search", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "embsearch: error: unknown precision 'int4'; use one of fp32, fp16, int8, int8c, int4c"
    )
    assert not (tmp_path / "r").exists()


def test_search_report_names_a_precision_other_than_fp32(small_ds, tmp_path):
    from embsearch.report import plan_lines

    for precision, label in (("fp32", "  dims: "), ("int8", "  dims (int8 rows): ")):
        space = FieldDimsSpace(small_ds.schema, width=8, precision=precision)
        lines = list(plan_lines(space.to_plan(space.uniform(8), "t", 10**9), tmp_path))
        assert lines[1].startswith(label)
