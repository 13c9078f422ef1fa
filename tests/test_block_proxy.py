"""The composed-candidate proxy: the supernet's rows fitted to each block kind."""

import numpy as np
import pytest
import torch

from embsearch.backbones import CTRModel
from embsearch.blocks import hash_coefficients
from embsearch.controllers.block_proxy import BlockProxyEvaluator, fitted_rows
from embsearch.controllers.uniform import Uniform
from embsearch.embeddings.rows import round_rows
from embsearch.embeddings.supernets import MaskedSupernet
from embsearch.evaluator import InheritedWeightEvaluator
from embsearch.search_spaces import BlockOption
from embsearch.testing import make_test_context


def test_hash_rows_are_the_mean_of_the_colliding_rows():
    w = torch.randn(50, 4)
    got = fitted_rows(w, BlockOption(4, "hash", 8), "f", 0)
    a, b = hash_coefficients("f", 0, 0)
    row = ((torch.arange(50) * a + b) % (2**31 - 1)) % 8
    for i in range(50):
        torch.testing.assert_close(got[i], w[row == row[i]].mean(0))


def test_qr_mult_recovers_a_table_it_can_store_and_memcom_scales():
    q, r = torch.rand(13, 3) + 0.5, torch.rand(8, 3) + 0.5
    ids = torch.arange(100)
    w = q[ids // 8] * r[ids % 8]  # exactly a QR-mult table with c = 8
    torch.testing.assert_close(fitted_rows(w, BlockOption(3, "qr", 8), "f", 0), w)
    base = torch.randn(5, 3)
    s = torch.rand(100) + 0.5
    w = base[ids % 5] * s.unsqueeze(1)
    got = fitted_rows(w, BlockOption(3, "memcom", 5), "f", 0)
    assert ((got - w).norm(dim=1) / w.norm(dim=1)).max() < 0.5  # one shared row a bucket
    fp = fitted_rows(w, BlockOption(3, "full", 0, "int8"), "f", 0)
    torch.testing.assert_close(fp, round_rows(w, "int8"))


@pytest.mark.usefixtures("one_thread")
def test_full_fp32_candidates_score_as_the_dims_evaluator():
    ctx = make_test_context(Uniform, space="field_dims+meta_table+precision")
    space = ctx.space.with_projection("pad")
    torch.manual_seed(0)
    emb = MaskedSupernet(space.width, space.candidates, space.groups, space.schema.names)
    model = CTRModel(emb, ctx.make_backbone())
    with torch.no_grad():
        emb.table.normal_(0, 0.1)
    val = ctx.data.split("val")
    proxy = BlockProxyEvaluator(model, space, val, max_rows=512)
    dims = InheritedWeightEvaluator(model, val, max_rows=512)
    rng = np.random.default_rng(0)
    for _ in range(3):
        ds = [int(rng.choice([1, 4, 16])) for _ in space.groups]
        cand = tuple((space.key_of(f, 0, BlockOption(d)),) for f, d in enumerate(ds))
        assert proxy(cand) == pytest.approx(dims(tuple((d,) for d in ds)), abs=1e-6)
    hashed = tuple(
        (space.key_of(f, 0, space.block_options(f, 0)[-1]),) for f in range(len(space.groups))
    )
    assert 0.0 <= proxy(hashed) <= 1.0
