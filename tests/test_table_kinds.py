"""Table kinds train, save, load and export (issue 21 items 1 and 5)."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from embsearch import MixedDimEmbedding
from embsearch.backbones import CTRModel, make_backbone
from embsearch.blocks import BlockSpec, hash_coefficients
from embsearch.embeddings.rows import dequantise_rows, quantise_rows
from embsearch.embeddings.tables import make_table
from embsearch.export import export_run, load_model
from embsearch.plan import FieldPlan, GroupPlan, Plan
from embsearch.retrain import run_retrain
from embsearch.run_config import RunConfig
from embsearch.search import load_run, run_search


@pytest.mark.parametrize("op", ["concat", "add", "mult"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_qr_gives_every_id_its_own_vector(op, precision):
    table = make_table(BlockSpec("qr", 500, 6, precision, c=23, op=op)).eval()
    vectors = table(torch.arange(500))
    assert torch.unique(vectors, dim=0).shape[0] == 500


def test_int8_is_within_half_a_step_and_constant_rows_are_exact():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 16, generator=g) * torch.logspace(-4, 1, 300).unsqueeze(1)
    x[:5] = torch.tensor([0.0, 1.5, -2.25, 1e-30, 3.0]).unsqueeze(1)  # zero-range rows
    codes, scale, offset = quantise_rows(x)
    back = dequantise_rows(codes, scale, offset)
    assert torch.isfinite(back).all()
    assert torch.equal(back[:5], x[:5])
    err = (back - x).abs()
    assert (err <= scale.unsqueeze(1) / 2 * (1 + 1e-5) + 1e-7 * x.abs()).all()


def test_every_kind_trains():
    torch.manual_seed(0)
    specs = [
        BlockSpec("full", 40, 4, "int8"),
        BlockSpec("hash", 40, 4, "fp16", m=7, a=12345, b=678),
        BlockSpec("qr", 40, 4, c=6, op="mult"),
        BlockSpec("memcom", 40, 4, m=5),
        BlockSpec("pruned", 40, 4, kept=10),
    ]
    for spec in specs:
        table = make_table(spec)
        opt = torch.optim.SGD(table.parameters(), lr=1.0)
        ids = torch.arange(40)
        before = table(ids).detach()
        (table(ids) - 1.0).pow(2).sum().backward()
        opt.step()
        moved = (table(ids).detach() - before).abs().sum(1) > 0
        kept = ids < 10 if spec.kind == "pruned" else torch.ones(40, dtype=torch.bool)
        assert torch.equal(moved, kept), spec.kind  # a pruned id stays the zero vector


def _variant(plan: Plan, variant: str) -> Plan:
    """The run's plan with every field turned into blocks of one kind (or a hybrid)."""
    fields = []
    for f in plan.fields:
        r, d = f.rows, 8
        block = {
            "fp16": {"kind": "full", "precision": "fp16"},
            "int8": {"kind": "full", "precision": "int8"},
            "int8c": {"kind": "full", "precision": "int8c"},
            "int4c": {"kind": "qr", "c": max(2, int(r**0.5)), "op": "mult", "precision": "int4c"},
            "hash": {
                "kind": "hash",
                "m": max(2, r // 4),
                "hash": list(hash_coefficients(f.name, 0, 0)),
            },
            "qr": {"kind": "qr", "c": max(2, int(r**0.5)), "op": "concat"},
            "memcom": {"kind": "memcom", "m": max(2, r // 4)},
            "pruned": {"kind": "pruned", "kept": r // 2},
        }.get(variant)
        if variant == "hybrid":  # top ids full, the rest QR: Zhang et al.'s frequency split
            k = max(1, r // 10)
            groups = [
                GroupPlan(0, k, 16, {"kind": "full", "precision": "fp16"}),
                GroupPlan(k, r, d, {"kind": "qr", "c": 2, "op": "add", "precision": "int8"}),
            ]
        else:
            groups = [GroupPlan(0, r, d, block)]
        fields.append(FieldPlan(f.name, r, groups))
    return Plan(
        controller=plan.controller,
        space=plan.space,
        width=plan.width,
        fields=fields,
        budget_bytes=10**9,
        projection="linear",
        precision=variant if variant in ("int8", "int8c") else "fp32",
        data_fingerprint=plan.data_fingerprint,
    )


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("kinds") / "run"
    cfg = RunConfig(
        data="synthetic", budgets=["30%"], controller="mde", epochs=1, synthetic_rows=3000,
        batch_size=1024, threads=1,
    )  # fmt: skip
    run_search(cfg, out, progress=False)
    return out


def _readme_lookup(w: dict, plan: dict, field: dict, i: int) -> torch.Tensor:
    """The README's plain-torch recipe for plan/2 exports (kept in step with it)."""

    def table(prefix, name, j, precision):
        t = w[f"{prefix}.{name}"][j]
        if t.dtype != torch.uint8:
            return t.float()
        pre = "" if name == "weight" else f"{name}_"
        scale, offset = w[f"{prefix}.{pre}scale"], w[f"{prefix}.{pre}offset"]
        if precision == "int8":
            return t.float() * scale[j] + offset[j]
        if precision == "int4c":
            t = torch.stack([t & 15, t >> 4], -1).flatten()[: len(scale)]
        return t.float() * scale + offset

    def block(prefix, grp, j):
        kind, p = grp["kind"], grp["precision"]
        if kind == "full":
            return table(prefix, "weight", j, p)
        if kind == "hash":
            a, b = grp["hash"]
            return table(prefix, "weight", ((a * j + b) % 2147483647) % grp["m"], p)
        if kind == "qr":
            q, r = table(prefix, "q", j // grp["c"], p), table(prefix, "r", j % grp["c"], p)
            return {"concat": torch.cat([q, r]), "add": q + r, "mult": q * r}[grp["op"]]
        if kind == "memcom":
            return table(prefix, "weight", j % grp["m"], p) * w[f"{prefix}.scalar"][j].float()
        k = int(w[f"{prefix}.map"][j])
        return table(prefix, "weight", k, p) if k >= 0 else torch.zeros(grp["dim"])

    g, grp = next(
        (g, grp) for g, grp in enumerate(field["groups"]) if grp["start"] <= i < grp["stop"]
    )
    v = block(f"emb.{field['name']}.{g}", grp, i - grp["start"])
    if grp["dim"] < plan["width"]:
        v = v @ w[f"proj.{field['name']}.{grp['dim']}"].float()
    return v


@pytest.mark.parametrize(
    "variant", ["fp16", "int8", "int8c", "int4c", "hash", "qr", "memcom", "pruned", "hybrid"]
)
def test_export_round_trip_every_kind(base_run, tmp_path, variant):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    _, base_plan, _ = load_run(run, weights=False)
    plan = _variant(base_plan, variant)
    (run / "model.pt").unlink()
    plan.save(run / "plan.json")
    assert json.loads((run / "plan.json").read_text())["format"] == "embsearch.plan/2"
    run_retrain(run, epochs=1, threads=1, progress=False)  # trains the plan, keeps model.pt
    cfg, plan, state = load_run(run)
    model = CTRModel(MixedDimEmbedding(plan), make_backbone(cfg.backbone, len(plan.fields), 16))
    model.load_state_dict(state)
    warned: list[str] = []
    out = export_run(run, tmp_path / "export", "torchrec", warn=warned.append)
    # TorchRec cannot say these (int8c/int4c: its integer tables scale rows, not columns)
    assert bool(warned) == (variant in ("qr", "memcom", "hybrid", "int8c", "int4c"))
    assert all("TorchRec cannot express" in w and "\n" not in w for w in warned)
    tensors = load_file(str(out / "weights.safetensors"))
    assert sum(t.numel() * t.element_size() for t in tensors.values()) == plan.table_bytes
    loaded = load_model(out)
    g = torch.Generator().manual_seed(1)
    x = torch.stack([torch.randint(0, f.rows, (512,), generator=g) for f in plan.fields], 1)
    model.eval(), loaded.eval()
    assert torch.equal(model(x), loaded(x))
    raw = json.loads((out / "plan.json").read_text())
    emb = loaded.embedding(x[:16])
    for b in range(16):
        for f, field in enumerate(raw["fields"]):
            v = _readme_lookup(tensors, raw, field, int(x[b, f]))
            torch.testing.assert_close(v, emb[b, f], rtol=1e-5, atol=1e-6)
    if variant == "int8":  # the stored table is within half a step of the trained weights
        master = state["embedding.block_path.blocks.0_0.weight.weight"]
        name = f"emb.{plan.fields[0].name}.0"
        scale = tensors[f"{name}.scale"].unsqueeze(1)
        back = dequantise_rows(
            tensors[f"{name}.weight"], tensors[f"{name}.scale"], tensors[f"{name}.offset"]
        )
        assert ((back - master).abs() <= scale / 2 * (1 + 1e-5) + 1e-7).all()
