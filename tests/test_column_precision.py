"""Column-wise int8c / int4c (an extension of issue 21's precision axis, ``blocks.py``):
bytes, packing, round trip, eval = the exported table, composed spaces, TorchRec."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from embsearch.blocks import BlockSpec
from embsearch.controllers.uniform import Uniform, uniform_choice
from embsearch.embeddings.rows import (
    Rows,
    column_params,
    dequantise_columns,
    pack_nibbles,
    quantise_columns,
    round_rows,
    unpack_nibbles,
)
from embsearch.embeddings.tables import make_table
from embsearch.export import torchrec_tables
from embsearch.plan import FieldPlan, GroupPlan, Plan
from embsearch.run_config import RunConfig
from embsearch.search_spaces import COMPOSED_SPACES
from embsearch.search_spaces.field_dims import FieldDimsSpace
from embsearch.testing import make_test_context
from tests.test_composed_spaces import schema_of


def test_hand_counted_bytes_of_odd_dims_and_their_parts():
    # int4c dim 5: 3 bytes a row (the last high nibble empty) + 5 columns x (scale, offset)
    spec = BlockSpec("full", 10, 5, "int4c")
    assert spec.parts() == [
        ("weight", (10, 3), "uint8"),
        ("scale", (5,), "float32"),
        ("offset", (5,), "float32"),
    ]
    assert spec.bytes() == 10 * 3 + 5 * 8
    # int8c QR concat dim 5: q 4 rows x 3, r 3 rows x 2, each table its own columns' scales
    qr = BlockSpec("qr", 10, 5, "int8c", c=3)
    assert qr.bytes() == (4 * 3 + 3 * 8) + (3 * 2 + 2 * 8)
    assert [n for n, _, _ in qr.parts()] == ["q", "q_scale", "q_offset", "r", "r_scale", "r_offset"]


def test_nibble_order_and_odd_dims_pack_and_unpack():
    codes = torch.tensor([[1, 2, 3], [15, 0, 7]], dtype=torch.uint8)
    packed = pack_nibbles(codes)
    # column 2k in the low nibble of byte k, 2k+1 in the high one, 0 past an odd dim
    assert packed.tolist() == [[0x21, 0x03], [0x0F, 0x07]]
    assert torch.equal(unpack_nibbles(packed, 3), codes)
    g = torch.Generator().manual_seed(0)
    for dim in (1, 2, 7, 16):
        c = torch.randint(0, 16, (9, dim), generator=g, dtype=torch.uint8)
        assert pack_nibbles(c).shape == (9, (dim + 1) // 2)
        assert torch.equal(unpack_nibbles(pack_nibbles(c), dim), c)


@pytest.mark.parametrize("bits", [8, 4])
def test_round_trip_within_half_a_step_and_constant_columns_exact(bits):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 7, generator=g) * torch.logspace(-4, 1, 7)  # columns of every scale
    x[:, 2] = 0.37  # zero range: stored exactly, no division by zero
    x[:, 5] = 0.0
    scale, offset = column_params(x, bits)
    codes = quantise_columns(x, scale, offset, bits)
    assert int(codes.max()) <= 2**bits - 1
    back = dequantise_columns(codes, scale, offset)
    assert torch.isfinite(back).all()
    assert torch.equal(back[:, 2], x[:, 2]) and torch.equal(back[:, 5], x[:, 5])
    assert ((back - x).abs() <= scale / 2 * (1 + 1e-5) + 1e-7 * x.abs()).all()
    # 4 bits: 15 steps a column, so the error reaches a good share of the half step
    assert float(((back - x).abs() / scale.clamp(min=1e-30)).max()) > 0.4


@pytest.mark.parametrize("precision", ["int8c", "int4c"])
def test_eval_lookup_uses_the_whole_tables_columns_and_export_gives_it_back(precision):
    rows = Rows(60, 5, precision)
    with torch.no_grad():
        rows.weight[7] = torch.tensor([3.0, -2.0, 0.5, 1.0, 4.0])  # sets every column's range
    rows.eval()
    ids = torch.tensor([0, 1, 2, 59])
    stored = round_rows(rows.weight.detach(), precision)  # quantised over all 60 rows
    assert torch.equal(rows(ids), stored[ids])
    # quantising the 4 gathered rows alone would give other values (a narrower range)
    assert not torch.equal(rows(ids), round_rows(rows.weight.detach()[ids], precision))
    loaded = Rows(60, 5, precision)
    loaded.load_parts(rows.export())
    assert torch.equal(loaded(torch.arange(60)), stored)
    # the weights change (an optimiser step while training): eval sees the new table
    rows.train()
    with torch.no_grad():
        rows.weight[7] = 0.0
    rows.eval()
    assert torch.equal(rows(ids), round_rows(rows.weight.detach(), precision)[ids])


@pytest.mark.parametrize("kind", ["full", "hash", "qr", "memcom", "pruned"])
@pytest.mark.parametrize("precision", ["int8c", "int4c"])
def test_every_kind_exports_its_bytes_and_loads_to_identical_lookups(kind, precision):
    spec = BlockSpec(kind, 40, 5, precision, m=9, c=7, op="mult", kept=30, a=12345, b=678)
    torch.manual_seed(0)
    table = make_table(spec)
    with torch.no_grad():  # trained-looking tables: rows of different scales
        for p in table.parameters():
            p.mul_(torch.logspace(-1, 2, p.shape[0]).view(-1, *([1] * (p.dim() - 1))))
    tensors = table.export("b")
    assert sum(t.numel() * t.element_size() for t in tensors.values()) == spec.bytes()
    loaded = make_table(spec)
    loaded.load("b", tensors)
    table.eval(), loaded.eval()
    ids = torch.arange(40)
    assert torch.equal(table(ids), loaded(ids))


def test_qat_rounds_in_training_and_passes_the_gradient_straight_through():
    rows = Rows(20, 3, "int4c", qat=True)
    ids = torch.tensor([1, 2, 2])
    out = rows(ids)
    torch.testing.assert_close(out, round_rows(rows.weight.detach(), "int4c")[ids])
    out.sum().backward()
    grad = torch.zeros(20, 3)
    grad[1], grad[2] = 1.0, 2.0
    assert torch.equal(rows.weight.grad, grad)
    assert not Rows(20, 3, "int4c", qat=False)(ids).equal(out)  # PTQ trains on fp32 rows
    assert not Rows(20, 3, "fp16", qat=True).qat  # only the column-wise precisions


def _plan(precision: str, kind: str = "full") -> Plan:
    block = {"kind": kind, "precision": precision}
    if kind == "qr":
        block.update(c=4, op="mult")
    return Plan(
        controller="t",
        space="t",
        width=8,
        fields=[FieldPlan("a", 50, [GroupPlan(0, 50, 8, block)])],
        budget_bytes=10**9,
    )


@pytest.mark.parametrize("precision", ["int8c", "int4c"])
def test_torchrec_names_column_wise_blocks_it_cannot_express_in_one_line(precision):
    out = torchrec_tables(_plan(precision))
    assert out["tables"] == []
    assert out["unsupported"] == [f"emb.a.0 ({precision}: column-wise scales)"]
    note = out["unsupported_note"]
    assert "TorchRec cannot express 1 block" in note and "\n" not in note
    assert torchrec_tables(_plan("int8"))["tables"][0]["data_type"] == "INT8"  # row-wise maps


@settings(max_examples=20, deadline=None)
@given(
    cards=st.lists(st.integers(1, 3000), min_size=1, max_size=4),
    precision=st.sampled_from(["int8c", "int4c"]),
    frac=st.floats(0.0, 1.0),
    seed=st.integers(0, 1000),
)
def test_dims_only_search_at_a_column_wise_precision_never_exceeds_the_budget(
    cards, precision, frac, seed
):
    space = FieldDimsSpace(schema_of(cards, seed), width=8, precision=precision)
    lo, hi = space.min_bytes(), space.bytes_of(space.max_candidate())
    budget = lo + int(frac * max(hi - lo, 0))
    rng = np.random.default_rng(seed)
    pref = [[rng.normal(size=len(space.block_keys(f, 0)))] for f in range(space.num_fields)]
    best = space.best_under_budget(pref, budget)
    plan = space.to_plan(best, "test", budget)
    assert plan.precision == precision and plan.table_bytes == space.bytes_of(best) <= budget


def test_the_precision_axis_offers_them_and_uniform_takes_the_setting_of_most_bytes():
    # two fields of 900 and 100 ids at width 16: 10% of the fp32 table is 6400 B, 6.4 B an id
    space = COMPOSED_SPACES["field_dims+meta_table+precision"](schema_of([900, 100]), width=16)
    precs = {o.precision for o in space.block_options(0, 0)}
    assert {"int8c", "int4c"} <= precs
    budget = int(0.10 * space.full_table_bytes())
    narrow, cand = uniform_choice(space, budget)
    opts = [narrow.option(f, 0, k[0]) for f, k in enumerate(cand)]
    # full rows everywhere; int4c at dim 12 (6 B an id + 8 B a column) beats fp16 dim 3 (6 B)
    assert {(o.kind, o.precision, o.dim) for o in opts} == {("full", "int4c", 12)}
    assert narrow.bytes_of(cand) <= budget


def test_column_ptq_turns_qat_off_and_is_recorded_only_when_on():
    ctx = make_test_context(Uniform)
    rows = [m for m in ctx.build_model(_plan("int4c")).modules() if isinstance(m, Rows)]
    assert rows and all(r.qat for r in rows)  # the default: quantisation-aware
    ptq = replace(ctx, train=replace(ctx.train, column_qat=False))
    assert not any(m.qat for m in ptq.build_model(_plan("int4c")).modules() if isinstance(m, Rows))
    assert "column_ptq" not in RunConfig().to_json()  # earlier runs' configs still match
    assert RunConfig(column_ptq=True).to_json()["column_ptq"] is True
