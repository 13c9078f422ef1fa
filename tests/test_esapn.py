"""ESAPN (issue 23, item 2): its policies, its budget handling, the streaming setting
(``data prepare --order-by``, ``search --stream``) and what it finds on planted data."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embsearch.backbones import CTRModel
from embsearch.context import SearchContext
from embsearch.controllers.esapn import ESAPN
from embsearch.controllers.esapn_policy import SizePolicy, field_advantages, reinforce_step
from embsearch.controllers.esapn_walk import Walk, WalkSettings, walk
from embsearch.data.dataset import Dataset
from embsearch.data.prepare import prepare
from embsearch.data.synthetic import make_synthetic
from embsearch.data.vocab import load_vocab
from embsearch.errors import BudgetError, ConfigError
from embsearch.run_config import RunConfig
from embsearch.search import run_search
from embsearch.search_spaces import FeatureDimsSpace
from embsearch.train import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def make_ctx(ds, space, fractions, seed=0, stream=False) -> SearchContext:
    budgets = [int(space.full_table_bytes() * f) for f in fractions]
    cfg = TrainConfig(epochs=1, batch_size=512, progress=False)
    return SearchContext(
        ds, space, budgets, train=cfg, seed=seed, log=lambda m: None, stream=stream
    )


@pytest.fixture(scope="module")
def small():
    return make_synthetic(rows=3000, seed=1, cardinalities=(40, 60, 30, 50), informative=(1, 2))


def test_reinforce_finds_the_best_action():
    """Policy-gradient sanity: where enlarge earns 1 and keep 0 in one state (field 1,
    bucket 2, size 0), enlarge passes probability 0.9 within 100 updates of 16 samples."""
    pol = SizePolicy(2, 4, 3, hidden=8, seed=0)
    opt = torch.optim.Adam(pol.parameters(), lr=0.05)
    n = 16
    f, b, s = torch.full((n,), 1), torch.full((n,), 2), torch.zeros(n, dtype=torch.long)
    grow = torch.ones(n, dtype=torch.bool)
    for _ in range(100):
        a = pol.sample(f, b, s, grow)
        reinforce_step(pol, opt, (f, b, s, grow), a, field_advantages(a.double(), f, 2))
        if float(pol.enlarge_probabilities()[1, 2, 0]) > 0.9:
            break
    assert float(pol.enlarge_probabilities()[1, 2, 0]) > 0.9


def test_masked_enlarge_is_never_taken_and_stays_finite():
    pol = SizePolicy(1, 2, 3, seed=0)
    n = 64
    zeros = torch.zeros(n, dtype=torch.long)
    never = torch.zeros(n, dtype=torch.bool)
    assert int(pol.sample(zeros, zeros, zeros, never).sum()) == 0
    lp = pol.log_probs(zeros, zeros, zeros, never)
    assert bool(torch.isfinite(lp).all())
    assert torch.allclose(lp[:, 0], torch.zeros(n))


def test_field_advantages_of_equal_rewards_are_zero():
    adv = field_advantages(torch.full((6,), 0.3), torch.tensor([0, 0, 1, 1, 1, 2]), 3)
    assert torch.equal(adv, torch.zeros(6, dtype=torch.float64))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(st.integers(1, 30), min_size=1, max_size=4),
    slack=st.integers(0, 400),
    pace=st.booleans(),
    seed=st.integers(0, 5),
)
def test_walk_never_spends_over_the_budget(rows, slack, pace, seed):
    """The decisions alone (no model), any policy, any budget over the smallest dims: the
    per-id bytes never pass the budget and no size shrinks."""
    cost = torch.tensor([4.0, 8.0, 16.0, 32.0], dtype=torch.float64)
    field_of_row = torch.cat([torch.full((r,), f) for f, r in enumerate(rows)])
    budget = float(cost[0]) * len(field_of_row) + slack
    state = Walk(cost, budget, field_of_row, WalkSettings(pace=pace, batches=20))
    pol = SizePolicy(len(rows), 16, 4, seed=seed)
    with torch.no_grad():
        pol.out_bias[:, 1] = 3.0  # a policy that wants to grow
    g = torch.Generator().manual_seed(seed)
    x = torch.stack([torch.randint(0, r, (20 * 8,), generator=g) for r in rows], 1)
    offsets = torch.tensor([0, *np.cumsum(rows)[:-1].tolist()])
    batches = [(x[i : i + 8], torch.zeros(8)) for i in range(0, len(x), 8)]
    before = state.size.clone()
    walk(batches, state, pol, offsets, torch.tensor([1, 2, 4, 8]))
    assert state.spent <= budget + 1e-6
    assert float(cost[state.size].sum()) == pytest.approx(state.spent)
    assert bool((state.size >= before).all())


def test_probe_replays_the_training_forwards_dropout_masks():
    """The paired probe runs after the training forward and replays its dropout masks: its
    losses equal a forward under the training step's random state (as the probe drew them
    before; a forward with other masks differs), and batch norm's running statistics are
    those the training forward alone left."""
    from embsearch.backbones.models import DeepFM
    from embsearch.controllers.esapn_probe import ReplayDropout, probe_losses
    from embsearch.embeddings.supernets import GrowingSupernet

    emb = GrowingSupernet(8, [2, 4, 8], [[(0, 30)], [(0, 20)]], ["a", "b"], 8, seed=0)
    model = CTRModel(emb, DeepFM(2, 8, hidden_units=(16, 8))).train()
    g = torch.Generator().manual_seed(0)
    x = torch.stack(
        [torch.randint(0, 30, (64,), generator=g), torch.randint(0, 20, (64,), generator=g)], 1
    )
    y = (torch.rand(64, generator=g) < 0.3).float()
    dims = torch.full((64, 2), 8)
    dims[:, 1] = 4  # the probe: field b back at 4
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
    norm = model.backbone.dnn.net[1]

    def at(dims_, seed):
        torch.manual_seed(seed)
        emb.example_dims = dims_
        with torch.no_grad():
            out = loss_fn(model(x), y)
        emb.example_dims = None
        return out

    expected, other = at(dims, 5), at(dims, 6)
    torch.manual_seed(5)
    rng = torch.get_rng_state()
    replay = ReplayDropout(model)
    with replay.installed():
        model(x).sum().backward()  # the training forward: draws and keeps the masks
        stats = norm.running_mean.clone()
        got = probe_losses(model, emb, x, y, dims, replay, rng, loss_fn)
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(got, other, atol=1e-3)
    assert torch.equal(norm.running_mean, stats)
    assert "forward" not in vars(model.backbone.dnn.net[3])  # the modules' own forward back


@pytest.mark.parametrize("fraction", [0.15, 0.3, 0.8])
def test_no_plan_over_budget(small, fraction):
    ctx = make_ctx(small, FeatureDimsSpace(small.schema, 8, n_groups=2), [fraction])
    plan = ESAPN(batch_size=200).search(ctx)
    assert plan.table_bytes <= ctx.budget
    assert plan.projection == "pad"
    assert 0.0 <= plan.extra["signal"]["null_agreement"] <= 1.0
    assert plan.extra["provenance"].startswith("policy")
    assert plan.extra["pass"]["bytes_of_ids"] <= ctx.budget
    assert any("shuffled" in n for n in plan.notes)  # no --stream: said in the plan


def test_fill_spends_the_budget_the_pass_left(small):
    """``fill`` scales the learned sizes to the budget: at least the bytes of the nearest
    candidates' plan (when that fits) and never over the budget."""
    ctx = make_ctx(small, FeatureDimsSpace(small.schema, 8, n_groups=2), [0.6])
    filled = ESAPN(batch_size=200).search(ctx)
    nearest = ESAPN(batch_size=200, fill=False).search(ctx)
    assert nearest.table_bytes <= filled.table_bytes <= ctx.budget
    assert "scaled to the budget" in filled.extra["provenance"]


def test_budget_below_the_smallest_dims_one_line(small):
    ctx = make_ctx(small, FeatureDimsSpace(small.schema, 8, n_groups=2), [0.05])
    with pytest.raises(BudgetError, match=r"^esapn: budget \d+ B is below [^\n]*$"):
        ESAPN().search(ctx)


# No planted-signal test here, on purpose. test_esapn_gives_informative_fields_more_dims
# asserted informative / noise dims per id > 1.1 on NIS's planted fixture (feature_dims, 40%,
# fill=False, 3 passes), and held by luck: on an AMD EPYC 1.41, 1.68, 1.18 (seeds 0-2); on an
# Intel Sapphire Rapids, seeds 0-9, 1.25, 1.50, 1.02, 1.41, 0.82, 0.82, 1.27, 1.08, 1.07, 0.96
# (AVX2 kernels: 1.14, 1.37, 1.38, 1.12, 0.95, 0.94, 1.34, 1.00, 1.07, 0.96). The fixture does
# not reward the claim for a loss-driven method: trained at fixed dims (ESAPN's own loop, growth
# off, seeds 0-5), informative fields at dim 4 instead of 2 moved validation AUC by -0.0064 to
# +0.0025, while noise fields at 1 instead of 4 gained +0.011 to +0.030 on every seed; every field
# at dim 1 was as good as any setting. A test of ESAPN's signal needs a fixture where width pays
# on held-out rows (open; esapn21's notes). ESAPN's budget, fill, resume and streaming behaviour
# are tested above and below.


# -- the streaming setting --------------------------------------------------------------------
def _timed_csv(path, n=600, seed=0):
    """A CSV whose rows are out of time order: ``t`` a permutation of ``0..n-1``, ``h`` =
    ``t % 7`` (a value every split knows, to read the order back)."""
    rng = np.random.default_rng(seed)
    t = rng.permutation(n)
    y = (rng.random(n) < 0.3).astype(int)
    y[:2], y[-2:] = [0, 1], [0, 1]
    a = rng.integers(0, 6, n)
    lines = ["label,a,t,h"] + [f"{y[i]},{a[i]},{t[i]},{t[i] % 7}" for i in range(n)]
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    return t


def _hours(directory, split):
    ds = Dataset.load(directory)
    vocab = load_vocab(directory)["h"]
    ids = np.asarray(ds.split(split).x[:, ds.schema.names.index("h")])
    return np.array([int(vocab[i - 1]) for i in ids])  # values[k]: the value of id k + 1


def test_order_by_splits_chronologically(tmp_path):
    """One input: train holds the earliest 80% of the times, val the next 10%, test the
    latest; each split is written in time order; the column can be dropped as a feature;
    the order is recorded."""
    src = tmp_path / "in.csv.gz"
    _timed_csv(src)
    out = tmp_path / "p"
    prepare("csv", [str(src)], str(out), label="label", drop=["t"], order_by="t")
    ds = Dataset.load(out)
    assert ds.schema.meta["order_by"] == "t"
    assert "t" not in ds.schema.names
    spans = {"train": range(0, 480), "val": range(480, 540), "test": range(540, 600)}
    for split, times in spans.items():  # t is 0..599: each split holds its span, in order
        assert list(_hours(out, split)) == [t % 7 for t in times]


def test_order_by_bad_column_one_line(tmp_path):
    src = tmp_path / "in.csv.gz"
    _timed_csv(src)
    from embsearch.errors import DataError

    with pytest.raises(DataError, match=r"^--order-by 'when': [^\n]*no such[^\n]*$"):
        prepare("csv", [str(src)], str(tmp_path / "p"), label="label", order_by="when")
    assert not (tmp_path / "p").exists()


def test_stream_refused_without_a_recorded_order(tmp_path, small):
    """``--stream`` on data without an order, or with a controller that does not stream:
    one line, nothing written."""
    for controller, match in (("esapn", "recorded time order"), ("mde", "does not take")):
        cfg = RunConfig(data="synthetic", controller=controller, stream=True, epochs=1)
        with pytest.raises(ConfigError, match=match):
            run_search(cfg, tmp_path / controller, progress=False)
        assert not any((tmp_path / controller).glob("*"))
    ctx = make_ctx(small, FeatureDimsSpace(small.schema, 8, n_groups=2), [0.3], stream=True)
    with pytest.raises(ConfigError, match=r"^--stream needs [^\n]*$"):
        ESAPN().search(ctx)


def test_stream_reads_train_once_in_order(tmp_path):
    """With ``--stream`` ESAPN makes one pass over the ordered train split, in file (time)
    order, and says nothing about shuffling."""
    src = tmp_path / "in.csv.gz"
    _timed_csv(src, n=1500)
    out = tmp_path / "p"
    prepare("csv", [str(src)], str(out), label="label", drop=["t"], order_by="t")
    ds = Dataset.load(out)
    space = FeatureDimsSpace(ds.schema, 8, n_groups=1)
    ctx = make_ctx(ds, space, [0.5], stream=True)
    seen = []
    split = ctx.data.split("train")
    batches = split.batches

    def spy(size, **kw):
        seen.append(kw)
        return batches(size, **kw)

    split.batches = spy
    plan = ESAPN(batch_size=100, epochs=3).search(ctx)
    assert plan.extra["pass"]["stream"] is True and plan.extra["pass"]["passes"] == 1
    assert plan.extra["pass"]["batches"] == 12  # 1200 train rows / 100, once
    assert all(not kw.get("shuffle") for kw in seen)
    assert not plan.notes
    assert plan.table_bytes <= ctx.budget
