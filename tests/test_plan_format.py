"""Plan formats: plan/1 files still load, plan/2 stores every block's kind, sizes, precision."""

import json
from pathlib import Path

import pytest

from embsearch.blocks import hash_coefficients
from embsearch.errors import RunDirError
from embsearch.export import torchrec_tables
from embsearch.plan import FieldPlan, GroupPlan, Plan

FIXTURE = (
    Path(__file__).parent / "fixtures" / "plan_v1.json"
)  # written by embsearch at bf0a378 (format 1)


def test_plan_v1_file_loads_and_saves_unchanged(tmp_path):
    plan = Plan.load(FIXTURE)
    assert plan.format == "embsearch.plan/1" and plan.dims_only
    assert plan.table_bytes == json.loads(FIXTURE.read_text())["table_bytes"] == 160744
    plan.save(tmp_path / "plan.json")
    assert (tmp_path / "plan.json").read_text() == FIXTURE.read_text()


def _hybrid() -> Plan:
    a, b = hash_coefficients("user", 1, 0)
    return Plan(
        controller="t",
        space="field_dims",
        width=8,
        fields=[
            FieldPlan(
                "user",
                1000,
                [
                    GroupPlan(0, 100, 8, {"kind": "full", "precision": "fp16"}),
                    GroupPlan(100, 1000, 4, {"kind": "hash", "m": 50, "hash": [a, b]}),
                ],
            ),
            FieldPlan("item", 500, [GroupPlan(0, 500, 8, {"kind": "qr", "c": 20, "op": "add"})]),
            FieldPlan("ad", 300, [GroupPlan(0, 300, 8, {"kind": "memcom", "m": 30})]),
            FieldPlan("os", 20, [GroupPlan(0, 20, 4, {"kind": "pruned", "kept": 5})]),
        ],
        budget_bytes=10**6,
    )


def test_plan_v2_stores_kinds_sizes_and_precision(tmp_path):
    plan = _hybrid()
    assert plan.format == "embsearch.plan/2"
    # user: 100x8 fp16 + 50x4 fp32 + one 4x8 fp32 projection
    assert plan.fields[0].bytes == 100 * 8 * 2 + 50 * 4 * 4 + 4 * 8 * 4
    plan.save(tmp_path / "plan.json")
    raw = json.loads((tmp_path / "plan.json").read_text())
    assert raw["fields"][1]["groups"][0] == {
        "start": 0, "stop": 500, "dim": 8, "kind": "qr", "precision": "fp32", "c": 20, "op": "add"
    }  # fmt: skip
    again = Plan.load(tmp_path / "plan.json")
    assert again.to_json() == plan.to_json() and again.table_bytes == plan.table_bytes


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda g: g.update(m=2000), "larger than the field's 900 ids"),
        (lambda g: g.update(kind="qr", c=1), "collision factor of 1"),
        (lambda g: g.update(precision="int4"), "unknown precision 'int4'"),
    ],
)
def test_bad_plan_v2_block_is_refused_in_one_line(tmp_path, edit, words):
    raw = _hybrid().to_json()
    edit(raw["fields"][0]["groups"][1])
    (tmp_path / "plan.json").write_text(json.dumps(raw))
    with pytest.raises(RunDirError, match=words) as err:
        Plan.load(tmp_path / "plan.json")
    assert "\n" not in str(err.value)


def test_torchrec_tables_say_what_torchrec_cannot_express():
    out = torchrec_tables(_hybrid())
    rows = {t["name"]: (t["num_embeddings"], t["data_type"]) for t in out["tables"]}
    assert rows == {
        "emb.user.0": (100, "FP16"),
        "emb.user.1": (50, "FP32"),
        "emb.os.0": (5, "FP32"),
    }
    assert out["unsupported"] == ["emb.item.0 (qr)", "emb.ad.0 (memcom)"]
    assert "TorchRec cannot express 2 block(s)" in out["unsupported_note"]
    assert "\n" not in out["unsupported_note"]


def test_export_whose_weights_miss_a_part_is_refused_in_one_line(tmp_path):
    from safetensors.torch import save_file

    from embsearch import MixedDimEmbedding

    plan = _hybrid()
    tensors = MixedDimEmbedding(plan).block_tensors()
    del tensors["emb.os.0.map"]
    plan.save(tmp_path / "plan.json")
    save_file(
        {k: v.contiguous() for k, v in tensors.items()}, str(tmp_path / "weights.safetensors")
    )
    with pytest.raises(RunDirError, match="does not match its plan.json") as err:
        MixedDimEmbedding.load(tmp_path)
    assert "\n" not in str(err.value)
