"""Backbone parameters, the user's own backbone, their checks and their bytes (issue 19)."""

import json
import textwrap

import pytest
import torch
from torch import nn

from embsearch.backbones import CTRModel, backbone_params, dense_bytes, make_backbone
from embsearch.backbones.regularize import penalty
from embsearch.cli import main
from embsearch.errors import ConfigError
from embsearch.testing import check_backbone

FAST = ["--epochs", "1", "--batch-size", "1024", "--quiet"]
MLP_BACKBONES = ["dnn", "deepfm", "widedeep", "dcnv2"]


@pytest.fixture(autouse=True)
def _small(monkeypatch):
    from embsearch import run_config

    monkeypatch.setattr(run_config.RunConfig, "synthetic_rows", 6000)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _old_mlp(d: int) -> nn.Sequential:
    """The MLP every backbone had before backbone parameters existed: 256-128, ReLU."""
    return nn.Sequential(
        nn.Linear(d, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 1)
    )


def _recipe_mlp(d: int) -> nn.Sequential:
    """The default MLP since the recipe (issue 19): 256-128, each hidden layer Linear, batch
    norm, ReLU, dropout 0.2 (FuxiCTR's MLP_Block order)."""
    return nn.Sequential(
        nn.Linear(d, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(256, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(128, 1),
    )  # fmt: skip


OLD_PARAMS = {"batch_norm": False, "dropout": 0.0}


@pytest.mark.parametrize("mlp, params", [(_recipe_mlp, {}), (_old_mlp, OLD_PARAMS)])
def test_defaults_build_the_recipe_and_old_parameters_the_networks_of_before(mlp, params):
    """With no parameter given, each backbone is the recipe's network; with batch norm and
    dropout off, it draws the same weights in the same order as the fixed networks before
    issue 19 (so runs recorded before the recipe rebuild bit for bit)."""
    f, w = 5, 4
    d = f * w
    _old_mlp = mlp  # noqa: N806 - the MLP under test, in the table below
    old = {
        "lr": lambda: nn.ModuleDict({"linear": nn.Linear(d, 1)}),
        "fm": lambda: nn.ModuleDict({"linear": nn.Linear(d, 1)}),
        "dnn": lambda: nn.ModuleDict({"net": _old_mlp(d)}),
        "deepfm": lambda: nn.ModuleDict(
            {
                "fm": nn.ModuleDict({"linear": nn.Linear(d, 1)}),
                "dnn": nn.ModuleDict({"net": _old_mlp(d)}),
            }
        ),
        "widedeep": lambda: nn.ModuleDict(
            {"wide": nn.Linear(d, 1), "deep": nn.ModuleDict({"net": _old_mlp(d)})}
        ),
        "dcnv2": lambda: nn.ModuleDict(
            {"cross": nn.ModuleList(nn.Linear(d, d) for _ in range(3)), "deep": _old_mlp(d)}
        ),
    }
    for name, build in old.items():
        torch.manual_seed(7)
        want = build().state_dict()
        torch.manual_seed(7)
        net_params = params if name not in ("lr", "fm") else {}
        got = make_backbone(name, f, w, params=net_params).state_dict()
        assert list(got) == list(want), name
        assert all(torch.equal(got[k], want[k]) for k in want), name
    assert backbone_params("deepfm") == {
        "hidden_units": [256, 128],
        "activation": "relu",
        "batch_norm": True,
        "dropout": 0.2,
        "weight_decay": 0.0,
        "embedding_regularizer": 0.05,
        "base_rate_bias": 0.1,
        "lr_plateau_factor": 0.1,
    }
    assert backbone_params("dcnv2")["cross_layers"] == 3
    assert backbone_params("lr") == {  # no MLP: FuxiCTR's FM regularizer (params.py)
        "weight_decay": 0.0,
        "embedding_regularizer": 5e-6,
        "base_rate_bias": 0.1,
        "lr_plateau_factor": 0.1,
    }
    assert backbone_params("fm")["embedding_regularizer"] == 5e-6


def test_the_trainer_default_schedule_is_the_recipe():
    """TrainConfig's lr_plateau_factor default is the backbone parameter's (one recipe)."""
    from embsearch.backbones.params import TRAINING_PARAMS
    from embsearch.train import TrainConfig

    assert TrainConfig().lr_plateau_factor == TRAINING_PARAMS["lr_plateau_factor"].default


@pytest.mark.parametrize("name", MLP_BACKBONES)
def test_network_parameters_shape_the_mlp(name):
    params = {"hidden_units": [7, 5, 3], "activation": "tanh", "batch_norm": True, "dropout": 0.0}
    b = make_backbone(name, 4, 2, params=params)
    mods = list(b.modules())
    linears = [m for m in mods if isinstance(m, nn.Linear) and m.out_features in (7, 5, 3)]
    assert [m.out_features for m in linears] == [7, 5, 3]
    assert [m.num_features for m in mods if isinstance(m, nn.BatchNorm1d)] == [7, 5, 3]
    assert sum(isinstance(m, nn.Tanh) for m in mods) == 3
    assert not any(isinstance(m, (nn.ReLU, nn.Dropout)) for m in mods)
    seq = next(m for m in mods if isinstance(m, nn.Sequential))  # Linear, BN, act (FuxiCTR)
    assert [type(m) for m in seq[:3]] == [nn.Linear, nn.BatchNorm1d, nn.Tanh]


def test_cross_layers_count():
    assert len(make_backbone("dcnv2", 3, 4, params={"cross_layers": 5}).cross) == 5
    assert len(make_backbone("dcnv2", 3, 4, params={"cross_layers": 0}).cross) == 0
    with pytest.raises(ConfigError, match="cross_layers"):
        backbone_params("deepfm", {"cross_layers": 2})  # DCN-V2's only


@pytest.mark.parametrize("name", MLP_BACKBONES)
def test_dropout_is_active_in_training_and_off_in_evaluation(name):
    torch.manual_seed(0)
    b = make_backbone(name, 4, 3, params={"dropout": 0.5, "batch_norm": False})
    assert sum(isinstance(m, nn.Dropout) and m.p == 0.5 for m in b.modules()) == 2
    torch.manual_seed(0)
    plain = make_backbone(name, 4, 3, params=OLD_PARAMS)  # the same weights (dropout has none)
    x = torch.randn(32, 4, 3)
    b.train()
    assert not torch.equal(b(x), b(x))  # a fresh mask each call
    b.eval(), plain.eval()
    assert torch.equal(b(x), b(x))
    assert torch.equal(b(x), plain(x))  # off in evaluation: the network without dropout


def test_weight_decay_penalty_gradient_is_wd_times_the_backbone_weights():
    torch.manual_seed(0)
    model = CTRModel(nn.Embedding(10, 3), make_backbone("dnn", 1, 3))
    assert penalty({"weight_decay": 0.0, "embedding_regularizer": 0.0}) is None
    penalty({"weight_decay": 0.1, "embedding_regularizer": 0.0})(model).backward()
    for p in model.backbone.parameters():
        torch.testing.assert_close(p.grad, 0.1 * p.detach())
    assert model.embedding.weight.grad is None  # the table is not decayed


def test_embedding_regularizer_gradient_equals_finite_differences():
    """(lambda/2)*||E||^2 over every block of a mixed-dim table, not the projections."""
    from embsearch.embeddings.mixed_dim import MixedDimEmbedding
    from embsearch.plan import FieldPlan, GroupPlan, Plan

    torch.manual_seed(0)
    fields = [
        FieldPlan("a", 6, [GroupPlan(0, 2, 4), GroupPlan(2, 6, 2)]),
        FieldPlan("b", 5, [GroupPlan(0, 5, 1)]),
    ]
    plan = Plan(controller="t", space="feature_dims", budget_bytes=10**6, width=4, fields=fields)
    emb = MixedDimEmbedding(plan).double()
    model = CTRModel(emb, make_backbone("fm", 2, 4).double())
    lam = 0.05
    reg = penalty({"embedding_regularizer": lam})
    reg(model).backward()
    with torch.no_grad():
        for table in emb.tables:
            for idx in [(0, 0), (table.shape[0] - 1, table.shape[1] - 1)]:
                h, keep = 1e-6, float(table[idx])
                table[idx] = keep + h
                up = float(reg(model))
                table[idx] = keep - h
                down = float(reg(model))
                table[idx] = keep
                assert table.grad[idx] == pytest.approx((up - down) / (2 * h), rel=1e-6)
                assert table.grad[idx] == pytest.approx(lam * keep)
    assert float(reg(model).detach()) == pytest.approx(0.5 * lam * _blocks_sq(emb), rel=1e-9)
    assert all(p.grad is None for p in emb.projections)  # projections are not penalised
    assert all(p.grad is None for p in model.backbone.parameters())


def test_training_penalties_reach_the_final_training(tmp_path):
    """weight_decay shrinks the backbone's weights, embedding_regularizer the table's, in the
    plan's training (the same seed otherwise; each alone, on the network without batch norm)."""

    def norms(*params: str) -> tuple[float, float]:
        run = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        params = ("embedding_regularizer=0", "batch_norm=false", *params)  # later values win
        flags = [a for p in params for a in ("--backbone-param", p)]
        assert main(["search", "--budget", "25%", *flags, "--out", str(run), *FAST]) == 0
        state = torch.load(run / "model.pt", weights_only=True)
        table = sum(float(v.pow(2).sum()) for k, v in state.items() if "tables" in k)
        net = sum(  # the backbone's weights, not batch norm's running statistics
            float(v.pow(2).sum())
            for k, v in state.items()
            if k.startswith("backbone.") and "running_" not in k and "num_batches" not in k
        )
        return table, net

    table, net = norms()
    reg_table, reg_net = norms("embedding_regularizer=1.0")
    wd_table, wd_net = norms("weight_decay=1.0")
    assert reg_table < 0.5 * table and wd_net < 0.5 * net
    assert wd_table > 0.5 * table and reg_net > 0.5 * net


@pytest.mark.parametrize("factor", [1.0, 0.1])
def test_lr_decays_on_plateau(monkeypatch, factor):
    """lr_plateau_factor reaches TrainConfig; the learning rate is multiplied by it at each
    validation without a better AUC (a constant model: every one after the first)."""
    from embsearch.run_config import RunConfig
    from embsearch.search import build_space, make_context
    from embsearch.testing import small_dataset
    from embsearch.train import trainer

    opts = []
    make_adam = trainer.make_adam
    monkeypatch.setattr(
        trainer, "make_adam", lambda *a, **k: opts.append(make_adam(*a, **k)) or opts[-1]
    )

    class Constant(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.b = nn.Parameter(torch.zeros(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b.expand(len(x))

    cfg = RunConfig(epochs=5, lr=1e-2, backbone_params={"lr_plateau_factor": factor})
    ds = small_dataset(rows=2000)
    ctx = make_context(cfg, ds, build_space(cfg, ds, "field_dims"), [10**6], progress=False)
    assert ctx.train.lr_plateau_factor == factor
    ctx.train.patience = 3
    result = trainer.train_model(Constant(), ctx.data, ctx.train, desc="t")
    assert result.epochs_run == 4 and result.best_epoch == 1
    assert opts[-1].param_groups[0]["lr"] == pytest.approx(1e-2 * factor**3)
    ctx.train.lr, ctx.train.lr_plateau_factor = 1e-5, 0.1
    trainer.train_model(Constant(), ctx.data, ctx.train, desc="t")
    assert opts[-1].param_groups[0]["lr"] == pytest.approx(1e-6)  # FuxiCTR's floor


def _blocks_sq(emb) -> float:
    return sum(float((t * t).sum()) for k, t in emb.block_tensors().items() if k.startswith("emb."))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--backbone-param", "hiden_units=[8]"],
            "unknown backbone parameter 'hiden_units' for deepfm; known: hidden_units, "
            "activation, batch_norm, dropout, weight_decay, embedding_regularizer, "
            "base_rate_bias, lr_plateau_factor",
        ),
        (
            ["--backbone-param", "dropout=1.5"],
            "backbone parameter dropout of deepfm must be a number >= 0 and < 1, got 1.5",
        ),
        (
            ["--backbone-param", "hidden_units=0"],
            "backbone parameter hidden_units of deepfm must be a non-empty list of integers >= 1, "
            "e.g. [400, 400, 400], got 0",
        ),
        (
            ["--backbone-param", "hidden_units=[64, 0]"],
            "backbone parameter hidden_units of deepfm must be a non-empty list of integers >= 1, "
            "e.g. [400, 400, 400], got [64, 0]",
        ),
        (
            ["--backbone-param", "batch_norm=yes"],
            'backbone parameter batch_norm of deepfm must be true or false, got "yes"',
        ),
        (
            ["--backbone", "lr", "--backbone-param", "dropout=0.1"],
            "unknown backbone parameter 'dropout' for lr; known: weight_decay, "
            "embedding_regularizer, base_rate_bias, lr_plateau_factor",
        ),
        (
            ["--backbone-param", "lr_plateau_factor=0"],
            "backbone parameter lr_plateau_factor of deepfm must be a number > 0 and <= 1, got 0",
        ),
        (["--backbone-param", "dropout"], "--backbone-param 'dropout': write key=value"),
        (["--backbone", "nope"], "unknown backbone 'nope'; choose one of lr, fm, dnn"),
    ],
)
def test_bad_backbone_parameters_one_line_exit_2(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert main(["search", "--budget", "25%", *args, "--out", str(out), *FAST]) == 2
    err = capsys.readouterr().err
    assert err.startswith("embsearch: error: " + message) and err.count("\n") == 1, err
    assert not out.exists()


CUSTOM = """
import torch
from torch import nn


class WrongShape(nn.Module):
    def __init__(self, num_fields, width):
        super().__init__()
        self.lin = nn.Linear(num_fields * width, 1)

    def forward(self, e):
        return self.lin(e.flatten(1))  # [batch, 1], not [batch]


class IgnoresAField(nn.Module):
    def __init__(self, num_fields, width):
        super().__init__()
        self.lin = nn.Linear(width, 1)

    def forward(self, e):
        return self.lin(e[:, 0]).squeeze(-1)  # only field 0


class NoGradient(nn.Module):
    def __init__(self, num_fields, width):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, e):
        return e.detach().sum((1, 2)) + self.bias


class NotAModule:
    pass
"""


@pytest.fixture
def custom_module(tmp_path, monkeypatch):
    (tmp_path / "my_backbones.py").write_text(textwrap.dedent(CUSTOM))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_backbones"


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (
            "WrongShape",
            "backbone my_backbones:WrongShape (WrongShape): forward on [16, 12, 16] "
            "embeddings must return logits of shape [16], got [16, 1]",
        ),
        (
            "IgnoresAField",
            "backbone my_backbones:IgnoresAField (IgnoresAField): no gradient "
            "reaches the embeddings of field(s) [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]",
        ),
        ("NoGradient", "backbone my_backbones:NoGradient (NoGradient): no gradient reaches"),
        ("NotAModule", "backbone 'my_backbones:NotAModule' is not a torch.nn.Module subclass"),
        ("Missing", "backbone 'my_backbones:Missing' is not a torch.nn.Module subclass"),
    ],
)
def test_a_broken_custom_backbone_is_refused_before_training(
    tmp_path, capsys, custom_module, cls, message
):
    out = tmp_path / "run"
    args = ["search", "--budget", "25%", "--backbone", f"{custom_module}:{cls}"]
    assert main([*args, "--out", str(out), *FAST]) == 2
    err = capsys.readouterr().err
    assert err.startswith("embsearch: error: " + message) and err.count("\n") == 1, err
    assert not out.exists()


def test_unknown_parameter_of_a_custom_backbone(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--backbone", "examples.custom_backbone:GatedMLP", "--backbone-param", "width2=3"]
    assert main(["search", "--budget", "25%", *args, "--out", str(out), *FAST]) == 2
    assert capsys.readouterr().err == (
        "embsearch: error: unknown backbone parameter 'width2' for "
        "examples.custom_backbone:GatedMLP (GatedMLP takes: depth, hidden)\n"
    )
    args = ["--backbone", "examples.custom_backbone:GatedMLP", "--backbone-param", "depth=0"]
    assert main(["search", "--budget", "25%", *args, "--out", str(out), *FAST]) == 2
    err = capsys.readouterr().err
    assert err == (
        "embsearch: error: backbone GatedMLP cannot be built with {'hidden': 128, 'depth': 0}: "
        "hidden and depth must be >= 1, got hidden=128, depth=0\n"
    )
    assert not out.exists()


def test_custom_backbone_trains_exports_and_reloads_with_identical_logits(tmp_path, capsys):
    from embsearch.export import load_model
    from embsearch.search import load_run
    from examples.custom_backbone import GatedMLP

    check_backbone(GatedMLP, params={"hidden": 16, "depth": 2})
    run, exp = tmp_path / "run", tmp_path / "exp"
    args = ["--backbone", "examples.custom_backbone:GatedMLP", "--backbone-param", "hidden=16"]
    args += ["--backbone-param", "embedding_regularizer=0.001"]
    assert main(["search", "--budget", "25%", *args, "--out", str(run), *FAST]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["backbone"] == "examples.custom_backbone:GatedMLP"
    assert cfg["backbone_params"] == {  # complete: the class's defaults recorded too
        "hidden": 16,
        "depth": 2,
        "weight_decay": 0.0,
        "embedding_regularizer": 0.001,
        "base_rate_bias": 0.1,
        "lr_plateau_factor": 0.1,
    }
    plan = json.loads((run / "plan.json").read_text())
    backbone = GatedMLP(12, 16, hidden=16)
    assert (
        plan["extra"]["backbone_bytes"]
        == dense_bytes(backbone)
        == 4 * sum(p.numel() for p in backbone.parameters())
    )
    assert "+ backbone (dense)" in capsys.readouterr().out
    assert main(["export", str(run), "--out", str(exp)]) == 0
    meta = json.loads((exp / "model.json").read_text())
    assert meta["backbone_params"] == cfg["backbone_params"]
    loaded = load_model(exp)
    assert isinstance(loaded.backbone, GatedMLP) and loaded.backbone.net[0].out_features == 16
    _same_logits(loaded, run, load_run)
    assert main(["retrain", str(run), "--quiet"]) == 0


def _same_logits(loaded: CTRModel, run, load_run) -> None:
    from embsearch.embeddings.mixed_dim import MixedDimEmbedding

    cfg, plan, state = load_run(run)
    trained = CTRModel(
        MixedDimEmbedding(plan),
        make_backbone(cfg.backbone, len(plan.fields), plan.width, params=cfg.backbone_params),
    )
    trained.load_state_dict(state)
    x = torch.stack([torch.randint(0, f.rows + 1, (256,)) for f in plan.fields], 1)
    x = x.clamp(max=torch.tensor([f.rows - 1 for f in plan.fields]))
    trained.eval(), loaded.eval()
    with torch.no_grad():
        assert torch.equal(trained(x), loaded(x))


def test_batch_norm_statistics_survive_export_and_load(tmp_path):
    """A [backbone] table in --config: recorded in config.json, the network built with batch
    norm and dropout, its running statistics saved in model.pt and backbone.safetensors and
    restored by load_model, which gives the trained model's logits exactly."""
    from safetensors.torch import load_file

    from embsearch.export import load_model
    from embsearch.search import load_run

    config = tmp_path / "search.toml"
    config.write_text(
        textwrap.dedent(
            """
            budgets = ["25%"]
            [backbone]
            name = "dcnv2"
            hidden_units = [32, 16]
            batch_norm = true
            dropout = 0.1
            cross_layers = 1
            weight_decay = 1e-5
            """
        )
    )
    run, exp = tmp_path / "run", tmp_path / "exp"
    assert main(["search", "--config", str(config), "--out", str(run), *FAST]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["backbone"] == "dcnv2"
    assert cfg["backbone_params"] == {
        "cross_layers": 1,
        "hidden_units": [32, 16],
        "activation": "relu",
        "batch_norm": True,
        "dropout": 0.1,
        "weight_decay": 1e-5,
        "embedding_regularizer": 0.05,
        "base_rate_bias": 0.1,
        "lr_plateau_factor": 0.1,
    }
    state = torch.load(run / "model.pt", weights_only=True)
    mean = state["backbone.deep.1.running_mean"]
    assert mean.shape == (32,) and bool((mean != 0).any())  # statistics were learned
    assert main(["export", str(run), "--out", str(exp)]) == 0
    assert torch.equal(load_file(str(exp / "backbone.safetensors"))["deep.1.running_mean"], mean)
    loaded = load_model(exp)
    assert torch.equal(loaded.backbone.deep[1].running_var, state["backbone.deep.1.running_var"])
    assert len(loaded.backbone.cross) == 1
    _same_logits(loaded, run, load_run)


def test_backbone_param_flag_overrides_the_config_table(tmp_path):
    config = tmp_path / "search.json"
    config.write_text(json.dumps({"backbone_params": {"hidden_units": [8], "dropout": 0.2}}))
    run = tmp_path / "run"
    flags = ["--backbone-param", "hidden_units=[4, 4]", "--backbone", "dnn"]
    assert main(["search", "--config", str(config), *flags, "--out", str(run), *FAST]) == 0
    params = json.loads((run / "config.json").read_text())["backbone_params"]
    assert params["hidden_units"] == [4, 4] and params["dropout"] == 0.2
    state = torch.load(run / "model.pt", weights_only=True)
    assert state["backbone.net.0.weight"].shape[0] == 4


def test_both_backbone_tables_in_one_config_are_refused(tmp_path, capsys):
    config = tmp_path / "search.toml"
    config.write_text("backbone_params = { dropout = 0.1 }\n[backbone]\ndropout = 0.2\n")
    assert main(["search", "--config", str(config), "--out", str(tmp_path / "r"), *FAST]) == 2
    err = capsys.readouterr().err
    assert "either in the [backbone] table or as backbone_params" in err


def test_an_export_without_backbone_params_loads_with_the_defaults(tmp_path):
    """model.json written before issue 19 names only the backbone: the defaults rebuild it."""
    from embsearch.export import load_model

    run, exp = tmp_path / "run", tmp_path / "exp"
    assert main(["search", "--budget", "25%", "--out", str(run), *FAST]) == 0
    assert main(["export", str(run), "--out", str(exp)]) == 0
    meta = json.loads((exp / "model.json").read_text())
    assert meta["backbone_params"] == backbone_params("deepfm")
    (exp / "model.json").chmod(0o644)
    del meta["backbone_params"], meta["backbone_bytes"]
    (exp / "model.json").write_text(json.dumps(meta))
    assert load_model(exp).backbone.dnn.net[0].out_features == 256


def test_compact_forward_stays_exact_with_batch_norm_and_other_activations():
    """The evaluator's kept-columns path handles batch norm (running statistics), dropout and
    other activations in evaluation mode, and is refused (plain path) in training mode."""
    from embsearch.compact_forward import CompactForward

    torch.manual_seed(0)
    fields, width = 5, 4
    b = make_backbone(
        "deepfm",
        fields,
        width,
        params={"batch_norm": True, "dropout": 0.3, "activation": "gelu", "hidden_units": [8]},
    )
    with torch.no_grad():
        for m in b.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    cached = torch.randn(100, fields, width)

    def field_mask(cand):
        mask = torch.zeros(1, fields, width)
        for f, (d,) in enumerate(cand):
            mask[0, f, :d] = 1
        return mask

    def generic(cand, rows):
        return b(cached[rows] * field_mask(cand))

    b.eval()
    compact = CompactForward.build(b, cached, generic, field_mask)
    assert compact is not None
    cand = ((4,), (0,), (2,), (1,), (3,))
    with torch.no_grad():
        torch.testing.assert_close(
            compact(field_mask(cand)), generic(cand, slice(None)), rtol=1e-5, atol=1e-5
        )
    b.train()
    assert CompactForward.build(b, cached, generic, field_mask) is None


def test_compact_forward_follows_what_a_plugin_backbone_declares():
    """The kept-columns path reads a backbone's declared ``additive_terms()``, not its
    class: a plug-in that declares its terms gets it (and stays exact), one whose declared
    terms do not match its forward falls back to the plain path, one that declares none too."""
    from embsearch.compact_forward import CompactForward

    fields, width = 4, 3

    class LinearPlusFM(nn.Module):
        def __init__(self, honest: bool = True) -> None:
            super().__init__()
            self.head = nn.Linear(fields * width, 1)
            self.honest = honest

        def forward(self, e):
            fm = 0.5 * (e.sum(1).pow(2) - e.pow(2).sum(1)).sum(1)
            return self.head(e.flatten(1)).squeeze(-1) + (fm if self.honest else 0.0)

        def additive_terms(self):
            return [("linear", self.head), ("fm", None)]

    torch.manual_seed(0)
    cached = torch.randn(50, fields, width)

    def field_mask(cand):
        mask = torch.zeros(1, fields, width)
        for f, (d,) in enumerate(cand):
            mask[0, f, :d] = 1
        return mask

    for honest in (True, False):
        b = LinearPlusFM(honest).eval()

        def generic(cand, rows, b=b):
            return b(cached[rows] * field_mask(cand))

        compact = CompactForward.build(b, cached, generic, field_mask)
        assert (compact is not None) == honest
        if honest:
            cand = ((3,), (0,), (1,), (2,))
            with torch.no_grad():
                torch.testing.assert_close(
                    compact(field_mask(cand)), generic(cand, slice(None)), rtol=1e-5, atol=1e-5
                )
    bare = nn.Sequential(nn.Flatten(), nn.Linear(fields * width, 1))
    assert CompactForward.build(bare, cached, lambda c, r: bare(cached[r]), field_mask) is None


def test_check_backbone_passes_every_builtin_with_every_option():
    for name in ["lr", "fm", *MLP_BACKBONES]:
        check_backbone(name)
    for name in MLP_BACKBONES:
        check_backbone(
            name,
            params={"hidden_units": [6], "batch_norm": True, "dropout": 0.2, "activation": "elu"},
        )


def test_backbones_command_lists_the_declared_parameters(capsys):
    assert main(["backbones"]) == 0
    out = capsys.readouterr().out
    assert "dcnv2: DCN-V2" in out and "cross_layers=3" in out and "dropout=0.2" in out
    assert main(["backbones", "wide&deep", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["name"] == "widedeep" and row["params"]["hidden_units"]["default"] == [256, 128]
    assert main(["backbones", "nope"]) == 2
    assert capsys.readouterr().err.startswith("embsearch: error: unknown backbone 'nope'")


def test_an_entry_point_names_a_backbone(monkeypatch):
    from embsearch.backbones import registry

    monkeypatch.setattr(
        registry, "_entry_points", lambda: {"gated-mlp": "examples.custom_backbone:GatedMLP"}
    )
    b = make_backbone("gated-mlp", 3, 4, params={"hidden": 5, "weight_decay": 0.1})
    assert type(b).__name__ == "GatedMLP" and b.net[0].out_features == 5
    check_backbone("gated-mlp", params={"depth": 1})
    with pytest.raises(ConfigError, match="choose one of lr, fm, dnn, deepfm, dcnv2, widedeep, "):
        make_backbone("gated", 3, 4)


def test_threads_option_sets_torch_threads_and_is_recorded(tmp_path, capsys):
    """--threads N is what training uses and config.json records; absent, half the cores
    (1 to 8); 0 is refused in one line before anything runs."""
    from embsearch.train.device import default_threads

    run = tmp_path / "run"
    torch.set_num_threads(2)
    assert main(["search", "--budget", "25%", "--threads", "1", "--out", str(run), *FAST]) == 0
    assert torch.get_num_threads() == 1
    assert json.loads((run / "config.json").read_text())["threads"] == 1
    assert 1 <= default_threads() <= 8
    capsys.readouterr()
    bad = tmp_path / "bad"
    assert main(["search", "--threads", "0", "--out", str(bad), *FAST]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("embsearch: error: --threads must be an integer >= 1") and not bad.exists()
    )
