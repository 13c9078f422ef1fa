"""Conformance checks every controller must pass, shipped so third parties can run them on
their own controllers (like scikit-learn's ``check_estimator``)::

    from embsearch.testing import check_controller
    check_controller(MyController)
    check_backbone("mypkg.mymod:MyBackbone", params={"depth": 2})

Checks: the plan is valid for the space, never exceeds the budget, uses a tight budget
(at least half of it), one plan per budget comes back from ``search_budgets``, and the
search is deterministic under a fixed seed. For a controller that learns a signal
(:class:`~embsearch.controllers._signal.LearnsSignal`: ``null_signal`` and
``null_candidate``), the plan from the null signal is computed through the controller's
own discretisation, and the share of (field, group) cells it shares with each plan must be
what ``plan.extra["signal"]`` records; ``check_controller`` returns those shares (and any
``plan.extra["provenance"]``) as its report.
"""

from __future__ import annotations

from typing import Any

import torch

from embsearch.budget import parse_budget
from embsearch.constraints import parse_constraints
from embsearch.context import SearchContext
from embsearch.controllers._signal import (
    PROVENANCE_KEY,
    SIGNAL_KEY,
    LearnsSignal,
    null_agreement,
)
from embsearch.controllers.base import Controller
from embsearch.data.dataset import Dataset
from embsearch.data.synthetic import make_synthetic
from embsearch.plan import Plan
from embsearch.search_spaces import SPACES
from embsearch.train.trainer import TrainConfig

SMALL_CARDINALITIES = (20, 300, 900, 60, 500, 30, 400, 1200)
SMALL_INFORMATIVE = (1, 2, 4, 6)


def small_dataset(rows: int = 6000, seed: int = 0) -> Dataset:
    return make_synthetic(
        rows=rows, cardinalities=SMALL_CARDINALITIES, informative=SMALL_INFORMATIVE, seed=seed
    )


def make_test_context(
    controller_cls: type[Controller],
    budgets: tuple[str, ...] = ("30%",),
    *,
    dataset: Dataset | None = None,
    seed: int = 0,
    epochs: int = 1,
    width: int = 16,
    space: str | None = None,
    constraints: dict[str, Any] | None = None,
) -> SearchContext:
    """A small, fast context in ``space`` (default: the controller's default space), under
    per-field ``constraints`` (``{field: {key: value}}``, as a config file gives them)."""
    dataset = dataset or small_dataset()
    space_cls = SPACES[space or controller_cls.default_space]
    space = space_cls(dataset.schema, width=width)
    if constraints:
        space = space.with_constraints(parse_constraints(constraints))
    resolved = sorted(space.resolve_budget(parse_budget(b)) for b in budgets)
    return SearchContext(
        dataset=dataset,
        space=space,
        budgets=resolved,
        backbone="deepfm",
        train=TrainConfig(epochs=epochs, batch_size=1024, progress=False),
        seed=seed,
        log=lambda m: None,
    )


def check_plan(plan: Plan, ctx: SearchContext, budget: int) -> None:
    """A plan is valid: right fields, rows, contiguous groups, bytes within the budget."""
    schema = ctx.dataset.schema
    assert [f.name for f in plan.fields] == schema.names, "plan fields differ from the schema"
    for f, spec in zip(plan.fields, schema.fields):
        assert f.rows == spec.cardinality, f"field {f.name}: rows {f.rows} != {spec.cardinality}"
        assert f.groups[0].start == 0 and f.groups[-1].stop == f.rows, (
            f"field {f.name}: groups do not cover ids"
        )
        for a, b in zip(f.groups[:-1], f.groups[1:]):
            assert a.stop == b.start, f"field {f.name}: groups not contiguous"
        assert all(0 <= g.dim <= plan.width for g in f.groups), (
            f"field {f.name}: dim outside [0, width]"
        )
    assert plan.table_bytes <= budget, f"plan {plan.table_bytes} B exceeds budget {budget} B"
    for name, c in parse_constraints(ctx.space.constraints and plan.extra["constraints"]).items():
        f = next(f for f in plan.fields if f.name == name)
        for g in range(len(f.groups)):
            spec = plan.block_spec(f, g)
            assert c.allows(spec.dim, spec.kind, spec.precision), (
                f"field {name} group {g}: dim {spec.dim} {spec.kind} {spec.precision} breaks "
                f"{c.text(name)}"
            )
    assert plan.budget_bytes == budget
    assert Plan.from_json(plan.to_json()).to_json() == plan.to_json(), (
        "plan does not round-trip through JSON"
    )


def check_signal(controller: Controller, ctx: SearchContext, plans: list[Plan]) -> dict[str, Any]:
    """The null-signal check (issue 18): for a :class:`LearnsSignal` controller after its
    search, each plan's ``extra["signal"]`` must record the share of (field, group) cells
    that the controller's plan from the null signal shares with it. Returns
    ``{"null_signal": ..., "null_agreement": [share per budget]}`` (empty for a controller
    that learns no signal), with ``"provenance"`` per budget where plans record it."""
    report: dict[str, Any] = {}
    provenance = [p.extra.get(PROVENANCE_KEY) for p in plans]
    if any(provenance):
        assert all(isinstance(p, str) and p for p in provenance), (
            f"plan.extra[{PROVENANCE_KEY!r}] must be a non-empty string in every plan"
        )
        report["provenance"] = provenance
    if not (isinstance(controller, LearnsSignal) and controller.null_signal):
        return report
    shares = []
    for plan, budget in zip(plans, ctx.budgets):
        record = plan.extra.get(SIGNAL_KEY)
        assert isinstance(record, dict), f"plan.extra[{SIGNAL_KEY!r}] is missing"
        assert record.get("null_signal") == controller.null_signal, (
            f"plan.extra[{SIGNAL_KEY!r}]['null_signal'] is {record.get('null_signal')!r}, "
            f"not the controller's {controller.null_signal!r}"
        )
        null = controller.null_candidate(ctx, budget)
        # its dims in the dims-only spaces; a controller whose null plan is keyed its own way
        # says how to key the plan (``signal_candidate``: OptEmbed's composed uniform gate)
        own = getattr(controller, "signal_candidate", None)
        chosen = own(ctx, plan) if own is not None else ctx.space.candidate_of(plan)
        share = None if null is None else null_agreement(chosen, null)
        recorded = record.get("null_agreement")
        assert (share is None) == (recorded is None) and (
            share is None or abs(recorded - share) < 1e-3
        ), f"recorded null agreement {recorded} != {share} recomputed from the null signal"
        shares.append(share)
    report.update(null_signal=controller.null_signal, null_agreement=shares)
    return report


def check_controller(
    controller_cls: type[Controller],
    params: dict[str, Any] | None = None,
    space: str | None = None,
    budgets: tuple[str, str] = ("15%", "40%"),
    min_use: float = 0.5,
    constraints: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run every conformance check on ``controller_cls`` in ``space`` (default: its default
    space; the suite runs every space in its ``supported_spaces``) at two ``budgets``
    (raises AssertionError on failure); the tighter budget's plan must use ``min_use`` of it.
    ``constraints`` (``{field: {key: value}}``): every plan must obey them too.

    Returns the report of :func:`check_signal` (null agreement per budget for a controller
    that learns a signal; empty otherwise)."""
    params = params or {}
    assert controller_cls.name, "controller needs a name"
    assert controller_cls.family, "controller needs a family"
    ctx = make_test_context(controller_cls, budgets=budgets, space=space, constraints=constraints)
    controller = controller_cls(**params)
    plans = controller.search_budgets(ctx)
    assert len(plans) == len(ctx.budgets), "search_budgets must return one plan per budget"
    for plan, budget in zip(plans, ctx.budgets):
        check_plan(plan, ctx, budget)
    # the tight budget binds: half of it at least (a larger one may be left partly idle by a
    # controller whose search finds no use for more bytes, e.g. a smaller budget's plan)
    if space is not None:
        assert all(p.space == space for p in plans), f"a plan names a space other than {space}"
    small, budget = plans[0], ctx.budgets[0]
    assert small.table_bytes >= min_use * budget, (
        f"plan uses only {small.table_bytes} of {budget} B"
    )
    again = controller_cls(**params).search_budgets(
        make_test_context(controller_cls, budgets=budgets, space=space, constraints=constraints)
    )
    assert [p.field_dims for p in again] == [p.field_dims for p in plans], (
        "search is not deterministic under a seed"
    )
    return check_signal(controller, ctx, plans)


def check_backbone(
    backbone: str | type[torch.nn.Module],
    num_fields: int = 3,
    width: int = 4,
    params: dict[str, Any] | None = None,
    batch: int = 16,
) -> None:
    """Conformance of a backbone (a name as ``--backbone`` takes it, or the class): built as
    ``Class(num_fields=..., width=..., **params)``, it maps embeddings ``[batch, fields,
    width]`` to finite logits ``[batch]``, the gradient of its logits reaches every field of
    its input, and a second instance built from the same recorded parameters, given the first
    one's ``state_dict``, gives the same logits in evaluation mode (what ``retrain``,
    ``export`` and ``load_model`` rely on). Raises :class:`ConfigError` in one line naming
    the class and what failed. Seeds torch's global generator (fork it to keep yours)."""
    from embsearch.backbones import make_backbone
    from embsearch.backbones.params import split_params
    from embsearch.errors import ConfigError

    params = dict(params or {})
    if isinstance(backbone, type):
        network = split_params(params)[0]

        def build() -> torch.nn.Module:
            return backbone(num_fields=num_fields, width=width, **network)

        name = backbone.__qualname__
    else:

        def build() -> torch.nn.Module:
            return make_backbone(backbone, num_fields, width, params=params)

        name = backbone
    torch.manual_seed(0)
    model = build()
    cls = type(model).__qualname__
    where = f"backbone {name}" + (f" ({cls})" if cls != name else "")
    e = torch.randn(batch, num_fields, width, requires_grad=True)
    model.train()
    try:
        out = model(e)
    except Exception as exc:  # noqa: BLE001 - any failure of user code is reported in one line
        raise ConfigError(
            f"{where}: forward on [{batch}, {num_fields}, {width}] failed: {exc}"
        ) from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (batch,):
        shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(
            f"{where}: forward on [{batch}, {num_fields}, {width}] embeddings must return "
            f"logits of shape [{batch}], got {shape}"
        )
    if not bool(torch.isfinite(out).all()):
        raise ConfigError(f"{where}: forward returned non-finite logits")
    if not out.requires_grad:
        raise ConfigError(f"{where}: its logits carry no gradient to the embeddings")
    out.float().sum().backward()
    grad = e.grad
    reached = (
        torch.zeros(num_fields, dtype=torch.bool)
        if grad is None
        else grad.abs().sum(dim=(0, 2)) > 0
    )
    if not bool(reached.all()):
        missing = [int(f) for f in (~reached).nonzero().flatten()]
        raise ConfigError(
            f"{where}: no gradient reaches the embeddings of field(s) {missing[:10]} "
            "(every field's embeddings must influence the logits)"
        )
    again = build()
    try:
        again.load_state_dict(model.state_dict())
    except RuntimeError:
        raise ConfigError(
            f"{where}: a second instance built from the same parameters cannot load the "
            "first one's state_dict (its layers must depend only on num_fields, width and params)"
        ) from None
    model.eval()
    again.eval()
    with torch.no_grad():
        x = torch.randn(batch, num_fields, width)
        if not torch.equal(model(x), again(x)):
            raise ConfigError(
                f"{where}: rebuilt from its recorded parameters and state_dict, it gives other "
                "logits in evaluation mode"
            )
