"""OptEmbed's pruned rows leave the table (issue 21 item 4): the credited space's bytes, the
plan's id -> row maps beside plan.json, a pruned id's zero vector, and a search whose plan
retrains with its maps and exports to identical lookups."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from embsearch.cli import main
from embsearch.controllers.optembed_rows import uncredited_bytes
from embsearch.embeddings.mixed_dim import MixedDimEmbedding
from embsearch.errors import ConfigError, RunDirError
from embsearch.export import load_embedding
from embsearch.plan import FieldPlan, GroupPlan, Plan
from embsearch.row_maps import keep_to_map
from embsearch.run_dir import load_run
from embsearch.search_spaces import FieldDimsSpace
from embsearch.search_spaces.pruned_rows import PrunedRowsSpace
from embsearch.testing import small_dataset

FAST = ["--epochs", "1", "--batch-size", "1024", "--quiet"]


@pytest.fixture(scope="module")
def schema():
    return small_dataset().schema


def test_credited_space_counts_kept_rows_and_the_map_exactly(schema):
    """A field keeping ``k`` of ``n`` ids at dim ``d`` costs ``k*d*4 + n*s`` (``s``: 1 B a
    map entry up to 128 kept rows, 2 B above) when that is below ``n*d*4``, else ``n*d*4``."""
    rows = [f.cardinality for f in schema.fields]
    kept = [n // 10 if i % 2 == 0 else n - 1 for i, n in enumerate(rows)]
    space = PrunedRowsSpace(FieldDimsSpace(schema, 16, projection="pad"), kept)

    def hand(n: int, k: int, d: int) -> int:
        size = 1 if k <= 128 else 2
        return min(k * d * 4 + n * size, n * d * 4) if k < n else n * d * 4

    for f, (n, k) in enumerate(zip(rows, kept)):
        for d in space.candidates:
            assert space.field_cost(f, (d,)) == hand(n, k, d), (n, k, d)
    cand = space.uniform(16)
    plan = space.to_plan(cand, "optembed", space.bytes_of(cand))
    assert plan.table_bytes == sum(hand(n, k, 16) for n, k in zip(rows, kept))
    kinds = [plan.block_spec(fp, 0).kind for fp in plan.fields]
    assert kinds == [
        "pruned" if k * 64 + n * (1 if k <= 128 else 2) < n * 64 else "full"
        for n, k in zip(rows, kept)
    ]
    assert uncredited_bytes(plan) == FieldDimsSpace(schema, 16, projection="pad").bytes_of(cand)
    # the % reference stays the full table of every row
    assert space.full_table_bytes() == sum(rows) * 16 * 4


def test_credited_space_never_over_budget(schema):
    """Repair and the knapsack of the credited space keep every candidate within budget, and
    the credit never costs bytes."""
    rng = np.random.default_rng(0)
    rows = [f.cardinality for f in schema.fields]
    base = FieldDimsSpace(schema, 16, projection="linear")
    for _ in range(30):
        kept = [int(rng.integers(0, n + 1)) for n in rows]
        space = PrunedRowsSpace(base, kept)
        budget = int(rng.integers(space.min_bytes(), base.full_table_bytes() // 2 + 2))
        cand = space.sample(rng)
        assert space.bytes_of(cand) <= base.bytes_of(cand)
        fixed = space.repair(cand, budget)
        assert space.bytes_of(fixed) <= budget
        plan = space.to_plan(fixed, "optembed", budget)
        assert plan.table_bytes == space.bytes_of(fixed) <= budget


def _plan_with_map() -> tuple[Plan, np.ndarray]:
    keep = np.zeros(300, dtype=bool)
    keep[[3, 10, 50, 299]] = True
    plan = Plan(
        "optembed",
        "field_dims",
        4,
        [
            FieldPlan("a", 300, [GroupPlan(0, 300, 4, {"kind": "pruned", "kept": 4})]),
            FieldPlan("b", 20, [GroupPlan(0, 20, 2)]),
        ],
        10**6,
        projection="linear",
    )
    plan.set_row_maps({"emb.a.0.map": keep_to_map(keep)})
    return plan, keep


def test_maps_are_saved_beside_the_plan_with_their_hash(tmp_path):
    plan, keep = _plan_with_map()
    plan.save(tmp_path / "plan.json")
    raw = json.loads((tmp_path / "plan.json").read_text())
    assert raw["row_maps"]["file"] == "plan.row_maps.safetensors"
    assert "299" not in (tmp_path / "plan.json").read_text().split('"row_maps"')[1]  # no ids
    back = Plan.load(tmp_path)
    assert np.array_equal(back.row_maps["emb.a.0.map"], keep_to_map(keep))
    assert back.row_maps["emb.a.0.map"].dtype == np.int8 and back.table_bytes == plan.table_bytes
    assert Plan.from_json(back.to_json()).to_json() == back.to_json()
    # an altered or missing maps file, a map that does not fit: one line each
    data = bytearray((tmp_path / "plan.row_maps.safetensors").read_bytes())
    data[-1] ^= 1
    (tmp_path / "plan.row_maps.safetensors").write_bytes(bytes(data))
    with pytest.raises(RunDirError, match="SHA-256"):
        Plan.load(tmp_path)
    (tmp_path / "plan.row_maps.safetensors").unlink()
    with pytest.raises(RunDirError, match="does not exist"):
        Plan.load(tmp_path)
    with pytest.raises(ConfigError, match="int8"):
        plan.set_row_maps({"emb.a.0.map": np.zeros(300, dtype=np.int16)})
    with pytest.raises(ConfigError, match="do not match"):
        plan.set_row_maps({})
    # a plan naming maps it was not read with does not build a table with default maps
    with pytest.raises(ConfigError, match="Plan.load"):
        MixedDimEmbedding(Plan.from_json(raw))


def test_a_pruned_id_embeds_as_the_zero_vector():
    """OptEmbed's official ``mode_oov='zero'``: a pruned id's vector is 0 (after the
    projection too); a kept id reads its own row."""
    plan, keep = _plan_with_map()
    emb = MixedDimEmbedding(plan).eval()
    ids = torch.arange(300)
    x = torch.stack([ids, ids % 20], 1)
    out = emb(x)[:, 0]
    assert bool((out[torch.from_numpy(~keep)] == 0).all())
    table = emb.block_path.blocks["0_0"]
    assert torch.equal(out[10], table.weight(torch.tensor([1]))[0])  # id 10: second kept row
    assert bool((out[torch.from_numpy(keep)].abs().sum(-1) > 0).all())


def test_search_retrain_and_export_keep_the_learned_maps(tmp_path, monkeypatch):
    """A search whose thresholds prune most rows (``threshold_init`` high): its plan stores
    pruned blocks within budget with the credit recorded; retrain trains the plan with the
    maps fixed; the export holds them (``emb.<field>.0.map``), its tensors add up to
    ``table_bytes`` and it loads to identical lookups."""
    from embsearch import run_config

    monkeypatch.setattr(run_config.RunConfig, "synthetic_rows", 6000)
    run, exp = tmp_path / "run", tmp_path / "exp"
    params = ["population=4", "generations=1", "top_k=2", "threshold_init=0.13"]
    args = ["search", "--controller", "optembed", "--budget", "25%", "--out", str(run), *FAST]
    assert main(args + [x for p in params for x in ("--param", p)]) == 0
    _, plan, state = load_run(run)
    pruned = [fp for fp in plan.fields if plan.block_spec(fp, 0).kind == "pruned"]
    assert pruned and plan.table_bytes <= plan.budget_bytes
    rec = plan.extra["rows"]
    assert rec["bytes_credited"] == uncredited_bytes(plan) - plan.table_bytes > 0
    assert plan.extra["pruned_rows_stored"] is False
    for fp in pruned:
        spec = plan.block_spec(fp, 0)
        name = f"emb.{fp.name}.0.map"
        assert int((plan.row_maps[name] >= 0).sum()) == spec.kept
        fraction = plan.extra["pruned_row_fraction"][fp.name]
        assert spec.kept == fp.rows - round(fraction * fp.rows)
    # retrain (the run made untrained): the saved model's maps are the plan's
    (run / "model.pt").unlink()
    assert main(["retrain", str(run), "--quiet", "--epochs", "1"]) == 0
    _, plan, state = load_run(run)
    f = plan.fields.index(pruned[0])
    key = next(k for k in state if k.endswith(f"blocks.{f}_0.map"))
    assert np.array_equal(state[key].numpy(), plan.row_maps[f"emb.{pruned[0].name}.0.map"])
    # export: the maps in weights.safetensors, every byte counted, identical lookups
    assert main(["export", str(run), "--out", str(exp)]) == 0
    weights = load_file(str(exp / "weights.safetensors"))
    assert sum(t.numel() * t.element_size() for t in weights.values()) == plan.table_bytes
    for fp in pruned:
        assert np.array_equal(
            weights[f"emb.{fp.name}.0.map"].numpy(), plan.row_maps[f"emb.{fp.name}.0.map"]
        )
    ours = MixedDimEmbedding(plan)
    ours.load_state_dict({k[len("embedding.") :]: v for k, v in state.items() if "embedding." in k})
    loaded = load_embedding(exp)
    x = torch.stack([torch.arange(400) % fp.rows for fp in plan.fields], 1)
    assert torch.equal(ours.eval()(x), loaded.eval()(x))


def test_prune_rows_false_stores_every_row(tmp_path, monkeypatch):
    """``prune_rows=false`` (the table of the paper's OptEmbed-D ablation): the same search
    keeps every row, no maps."""
    from embsearch import run_config

    monkeypatch.setattr(run_config.RunConfig, "synthetic_rows", 6000)
    run = tmp_path / "run"
    params = ["population=4", "generations=1", "top_k=2", "threshold_init=0.13", "prune_rows=false"]
    args = ["search", "--controller", "optembed", "--budget", "25%", "--out", str(run), *FAST]
    assert main(args + [x for p in params for x in ("--param", p)]) == 0
    plan = Plan.load(run)
    assert plan.dims_only and plan.row_maps is None and plan.extra["pruned_rows_stored"] is True
    assert plan.extra["rows"]["bytes_credited"] == 0
    assert not (run / "plan.row_maps.safetensors").exists()


def test_optembed_searches_a_composed_space_through_the_cli(tmp_path, monkeypatch):
    """OptEmbed's evolution over the generic candidate (keys into the space's options): its
    trials are recorded (a study over option keys, not dims), the plan keeps the budget, has
    no credited rows, went through the uniform gate (``test_optembed_gate.py``), and exports."""
    from embsearch import run_config

    monkeypatch.setattr(run_config.RunConfig, "synthetic_rows", 6000)
    run = tmp_path / "run"
    space = "field_dims+meta_table+precision"
    params = ["population=4", "generations=1", "top_k=2"]
    args = ["search", "--controller", "optembed", "--budget", "5%", "--space", space]
    assert (
        main(args + ["--out", str(run), *FAST] + [x for p in params for x in ("--param", p)]) == 0
    )
    plan = Plan.load(run)
    assert plan.space == space and plan.table_bytes <= plan.budget_bytes
    assert plan.row_maps is None and "uniform_margin" in plan.extra
    assert not plan.dims_only  # 5% is below every full fp32 plan: rows shared or bits cut
    assert main(["export", str(run), "--out", str(tmp_path / "exp")]) == 0
