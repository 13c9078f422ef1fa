"""The mixed-dimension table computes what its plan says, for every layout."""

import numpy as np
import torch
from torch import nn

from embsearch.budget import bytes_per_weight
from embsearch.embeddings import MixedDimEmbedding
from embsearch.search_spaces import FeatureDimsSpace, FieldDimsSpace


def _reference(emb: MixedDimEmbedding, x: torch.Tensor) -> torch.Tensor:
    """Per-element lookup written the slow, obvious way from the exported block tensors."""
    blocks = emb.block_tensors()
    out = torch.zeros(x.shape[0], x.shape[1], emb.width)
    for b in range(x.shape[0]):
        for f, fp in enumerate(emb.plan.fields):
            i = int(x[b, f])
            g = next(k for k, grp in enumerate(fp.groups) if grp.start <= i < grp.stop)
            d = fp.groups[g].dim
            if d == 0:
                continue
            v = blocks[f"emb.{fp.name}.{g}"][i - fp.groups[g].start]
            if d != emb.width and emb.projection == "linear":
                v = v @ blocks[f"proj.{fp.name}.{d}"]
            out[b, f, : d if emb.projection == "pad" or d == emb.width else emb.width] = v
    return out


def _x(schema, n=64, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(
        np.stack([rng.integers(0, f.cardinality, n) for f in schema.fields], 1)
    ).long()


def test_field_dims_forward_matches_reference(small_ds):
    space = FieldDimsSpace(small_ds.schema, width=16)
    cand = tuple((d,) for d in (2, 16, 8, 4, 16, 2, 8, 4))
    emb = MixedDimEmbedding(space.to_plan(cand, "t", 10**9))
    x = _x(small_ds.schema)
    torch.testing.assert_close(emb(x), _reference(emb, x))


def test_grouped_forward_matches_reference_linear_and_pad(small_ds):
    for projection in ("linear", "pad"):
        space = FeatureDimsSpace(
            small_ds.schema, width=8, candidates=[0, 2, 4, 8], n_groups=3, projection=projection
        )
        rng = np.random.default_rng(1)
        cand = space.sample(rng)
        emb = MixedDimEmbedding(space.to_plan(cand, "t", 10**9))
        x = _x(small_ds.schema, seed=2)
        torch.testing.assert_close(emb(x), _reference(emb, x))


def test_uniform_table_uses_one_fused_table(small_ds):
    space = FieldDimsSpace(small_ds.schema, width=16)
    emb = MixedDimEmbedding(space.to_plan(space.uniform(16), "t", 10**9))
    assert len(emb.tables) == 1 and emb.tables[0].shape == (sum(small_ds.schema.cardinalities), 16)
    x = _x(small_ds.schema)
    torch.testing.assert_close(emb(x), _reference(emb, x))


def test_block_tensor_bytes_equal_plan_bytes(small_ds):
    space = FeatureDimsSpace(small_ds.schema, width=16, n_groups=4)
    for seed in range(5):
        plan = space.to_plan(space.sample(np.random.default_rng(seed)), "t", 10**9)
        emb = MixedDimEmbedding(plan)
        nbytes = sum(t.numel() for t in emb.block_tensors().values()) * bytes_per_weight("fp32")
        assert nbytes == plan.table_bytes
        params = sum(p.numel() for p in emb.parameters()) * 4
        assert params == plan.table_bytes


def test_block_tensors_round_trip(small_ds):
    space = FeatureDimsSpace(small_ds.schema, width=16, n_groups=2)
    plan = space.to_plan(space.sample(np.random.default_rng(3)), "t", 10**9)
    a, b = MixedDimEmbedding(plan), MixedDimEmbedding(plan)
    b.load_block_tensors(a.block_tensors())
    x = _x(small_ds.schema)
    assert torch.equal(a(x), b(x))


def _concatenated(emb: MixedDimEmbedding, x: torch.Tensor) -> torch.Tensor:
    """The field-dims forward as it was: every class's fields concatenated, put back in field
    order by ``index_select`` and transposed (the reference for values and gradients)."""
    xt = x.t()
    off = emb.block_offset[:, 0].unsqueeze(1)
    parts, order = [], []
    for c, fields in enumerate(emb._class_fields):
        idx = torch.tensor(fields, dtype=torch.long)
        parts.append(emb._lookup(c, xt.index_select(0, idx) + off[idx]))
        order += fields
    zero = [f for f in range(x.shape[1]) if f not in order]
    if zero:
        parts.append(parts[0].new_zeros((len(zero), x.shape[0], emb.width)))
    restore = torch.argsort(torch.tensor(order + zero))
    return torch.cat(parts).index_select(0, restore).transpose(0, 1)


def test_field_dims_forward_and_gradients_equal_the_concatenated_form(small_ds):
    """The stacked output (contiguous, fields in order, dim-0 fields zero) has exactly the
    values and parameter gradients of the concatenate-and-reorder form, projected or padded."""
    x = _x(small_ds.schema, n=128, seed=4)
    for projection in ("linear", "pad"):
        space = FieldDimsSpace(small_ds.schema, width=8, candidates=[0, 2, 4, 8])
        space.projection = projection
        cand = tuple((d,) for d in (2, 0, 8, 4, 2, 0, 8, 4))
        emb = MixedDimEmbedding(space.to_plan(cand, "t", 10**9))
        grad = torch.randn(x.shape[0], x.shape[1], emb.width)
        params = [p for p in emb.parameters() if p.requires_grad]
        out = emb(x)
        assert out.is_contiguous() and torch.equal(out, _concatenated(emb, x))
        assert out[:, 1].abs().sum() == 0 and out[:, 5].abs().sum() == 0
        got = torch.autograd.grad((out * grad).sum(), params)
        want = torch.autograd.grad((_concatenated(emb, x) * grad).sum(), params)
        assert len(got) == len(want) > 1 and all(map(torch.equal, got, want))


def test_padded_plan_backbone_starts_as_the_narrow_tables_would(small_ds):
    """A zero-padded plan's backbone input layers are initialised for its live inputs (each
    field's largest dim), not for the padded ``fields x width``: PyTorch's ``1/sqrt(fan_in)``
    bound is that of the narrow table with the same dims. Projected plans keep the default."""
    from embsearch.backbones import make_backbone

    space = FieldDimsSpace(small_ds.schema, width=16)
    cand = tuple((d,) for d in (2, 16, 8, 4, 16, 2, 8, 4))
    space.projection = "pad"
    padded = space.to_plan(cand, "t", 10**9)
    space.projection = "linear"
    projected = space.to_plan(cand, "t", 10**9)
    assert padded.live_inputs == 60
    assert projected.live_inputs == 8 * 16
    for plan, fan_in in ((padded, 60), (projected, 8 * 16)):
        torch.manual_seed(0)
        backbone = make_backbone("deepfm", len(plan.fields), 16, plan.live_inputs)
        for layer in (backbone.dnn.net[0], backbone.fm.linear):
            bound = fan_in**-0.5
            assert float(layer.weight.detach().abs().max()) <= bound + 1e-6
            assert float(layer.weight.detach().abs().max()) > 0.95 * bound
    linears = [m for m in make_backbone("deepfm", 8, 16, 60).dnn.net if isinstance(m, nn.Linear)]
    deep = linears[1]  # the second layer is unchanged
    assert float(deep.weight.detach().abs().max()) <= 256**-0.5 + 1e-6
