"""CUDA checks, run by benchmarks/gpu_check.sh on a GPU machine; skipped elsewhere."""

import pytest
import torch

from embsearch.embeddings.supernets import AutoEmbSupernet
from embsearch.run_config import RunConfig
from embsearch.search import run_search
from embsearch.search_spaces import FeatureDimsSpace
from embsearch.train.trainer import DeviceData

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def test_data_resident_on_gpu(small_ds):
    data = DeviceData(small_ds, torch.device("cuda"))
    assert data.split("train").x.is_cuda and data.split("train").y.is_cuda


def test_mixed_table_same_on_cpu_and_gpu(small_ds):
    import numpy as np

    from embsearch.embeddings import MixedDimEmbedding

    space = FeatureDimsSpace(small_ds.schema, width=16, n_groups=3)
    emb = MixedDimEmbedding(space.to_plan(space.sample(np.random.default_rng(0)), "t", 10**9))
    x = torch.from_numpy(small_ds.val.x[:512]).long()
    torch.testing.assert_close(emb(x), emb.cuda()(x.cuda()).cpu())


def test_autoemb_mixing_same_on_cpu_and_gpu(small_ds):
    """On CPU AutoEmb mixes once per distinct id of a batch, on CUDA every row on its own
    (no host syncs): same output and gradients."""
    space = FeatureDimsSpace(small_ds.schema, width=16, n_groups=3)
    counts = [f.frequencies() for f in small_ds.schema.fields]
    torch.manual_seed(0)
    supernet = AutoEmbSupernet(space.groups, space.candidates, space.width, counts).train()
    supernet.branches.update_stats = False
    x = torch.from_numpy(small_ds.val.x[:512]).long()
    out = supernet(x)
    grads = torch.autograd.grad(out.square().sum(), list(supernet.parameters()))
    supernet.cuda()
    out_gpu = supernet(x.cuda())
    grads_gpu = torch.autograd.grad(out_gpu.square().sum(), list(supernet.parameters()))
    torch.testing.assert_close(out_gpu.cpu(), out, rtol=1e-4, atol=1e-5)
    for g, g_gpu in zip(grads, grads_gpu):
        torch.testing.assert_close(g_gpu.cpu(), g, rtol=1e-3, atol=1e-5 * float(g.abs().max()))


def test_search_on_cuda_with_amp(tmp_path):
    cfg = RunConfig(
        data="synthetic",
        budgets=["25%"],
        controller="mde",
        epochs=1,
        device="cuda",
        synthetic_rows=6000,
    )
    (r,) = run_search(cfg, tmp_path / "run", progress=False)
    assert r.plan.table_bytes <= r.plan.budget_bytes
    assert 0.5 < r.plan.metrics["val_auc"] <= 1.0
