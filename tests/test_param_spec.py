"""Controller parameters are declared once (``param_specs``: :class:`Param`); the defaults,
the help, the extensions, the checks in ``__init__`` and ``embsearch controllers NAME``
all come from that one declaration."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from embsearch.cli import main
from embsearch.controllers.base import Controller
from embsearch.controllers.differentiable import COMMON_PARAMS, DartsController
from embsearch.controllers.evolution import EVOLUTION_SPECS, EvolutionConfig
from embsearch.controllers.param_spec import Param
from embsearch.controllers.registry import BUILTIN, get_controller
from embsearch.errors import ConfigError

SPECS = [
    (name, key, spec)
    for name in sorted(BUILTIN)
    for key, spec in get_controller(name).param_specs.items()
]
IDS = [f"{name}-{key}" for name, key, _ in SPECS]


def refused(name: str, key: str, value: Any) -> str:
    """Build controller ``name`` with ``key=value``; the one-line message it is refused with."""
    with pytest.raises(ConfigError) as info:
        get_controller(name)(**{key: value})
    msg = str(info.value)
    assert "\n" not in msg, msg
    assert msg.startswith(f"{name}: {key} must be "), msg
    assert msg.endswith(f", got {value!r}"), msg
    return msg


def wrong_type(spec: Param) -> Any:
    return {"int": 1.5, "float": "0.5", "bool": "yes", "choice": 3, "object": [1]}[spec.kind]


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_every_builtin_is_declared_by_specs_and_builds_with_its_defaults(name):
    cls = get_controller(name)
    assert cls.params == {k: p.default for k, p in cls.param_specs.items()}
    assert set(cls.param_help) == set(cls.params)
    assert set(cls.extensions) <= set(cls.params)
    assert cls().config == dict(cls.params)


@pytest.mark.parametrize(("name", "key", "spec"), SPECS, ids=IDS)
def test_every_default_passes_its_own_check(name, key, spec):
    assert spec.kind != "any", "built-ins declare what they take"
    assert spec.accepts(spec.default), (name, key, spec.default)
    assert spec.help.strip() and spec.describe()


@pytest.mark.parametrize(("name", "key", "spec"), SPECS, ids=IDS)
def test_wrong_type_out_of_range_and_unknown_choice_are_refused_in_one_line(name, key, spec):
    refused(name, key, wrong_type(spec))
    if not spec.optional:
        refused(name, key, None)
    if spec.kind == "choice":
        msg = refused(name, key, "nope")
        assert all(repr(c) in msg for c in spec.choices), msg
    if spec.low is not None:
        below = spec.low if spec.open_low else spec.low - 1
        refused(name, key, int(below) if spec.kind == "int" else float(below))
    if spec.high is not None:
        above = spec.high + 1
        refused(name, key, int(above) if spec.kind == "int" else float(above))


def test_checks_between_parameters_stay_in_validate():
    from embsearch.controllers.autodim import AutoDim
    from embsearch.controllers.rule import Rule

    assert refused("autodim", "temperature_min", 2.0).startswith(
        "autodim: temperature_min must be a number in (0, 1]"
    )
    AutoDim(temperature=3.0, temperature_min=2.0)
    with pytest.raises(
        ConfigError, match=r"^optembed: top_k must be an integer in \[1, 4\], got 5$"
    ):
        get_controller("optembed")(population=4, top_k=5)
    with pytest.raises(ConfigError, match="search_backbone needs --param retrain=true"):
        Rule(search_backbone={"batch_norm": False})
    Rule(search_backbone={"batch_norm": False}, retrain=True)


def test_the_evolution_config_defaults_are_the_specs():
    """The evolution's dataclass and its parameter specs once disagreed (patience None
    there, 3 in the parameters the controllers used); both now read the specs."""
    cfg = EvolutionConfig()
    assert {k: getattr(cfg, k) for k in EVOLUTION_SPECS} == {
        k: p.default for k, p in EVOLUTION_SPECS.items()
    }
    assert cfg.patience == 3


def test_derived_dicts_are_read_only():
    cls = get_controller("mde")
    assert isinstance(cls.params, MappingProxyType)
    with pytest.raises(TypeError):
        cls.params["alpha"] = 0.5  # type: ignore[index]


def test_a_plugin_declaring_plain_dicts_still_works():
    """The older way (``params`` of defaults, ``param_help``, ``extensions``): a parameter
    the base class declares keeps its check, a new one is taken as given."""

    class Legacy(DartsController):
        name = "legacy"
        params = {**COMMON_PARAMS, "arch_lr": 0.5, "mine": "anything"}
        param_help = {"mine": "a plug-in's own parameter"}
        extensions = {"mine": "ours"}

        def build_supernet(self, ctx, space):  # pragma: no cover - never searched
            raise NotImplementedError

        def preference(self, supernet, space):  # pragma: no cover
            raise NotImplementedError

    assert Legacy.params["arch_lr"] == 0.5 and Legacy.params["mine"] == "anything"
    assert Legacy.param_help["mine"] == "a plug-in's own parameter"
    assert Legacy.param_help["epochs"] == ""  # param_help replaced, as it always did
    assert dict(Legacy.extensions) == {"mine": "ours"}
    assert Legacy.param_line("mine") == "a plug-in's own parameter [extension: ours]"
    assert Legacy(mine=[1, 2]).config["mine"] == [1, 2]
    with pytest.raises(ConfigError, match=r"^legacy: arch_lr must be a number in \(0, 10\]"):
        Legacy(arch_lr=0)
    with pytest.raises(ConfigError, match="has no parameter"):
        Legacy(other=1)

    class Plain(Controller):
        name = "plain"
        params = {"k": 1}

        def search(self, ctx):  # pragma: no cover
            raise NotImplementedError

    assert Plain(k="x").config == {"k": "x"} and Plain.param_specs["k"].kind == "any"


def test_param_specs_and_plain_dicts_are_not_declared_together():
    with pytest.raises(TypeError, match="declare param_specs alone"):

        class Both(Controller):
            param_specs = {"k": Param(1, "int", "k", 0)}
            params = {"k": 1}

            def search(self, ctx):  # pragma: no cover
                raise NotImplementedError


def test_bad_specs_are_refused_when_declared():
    with pytest.raises(ValueError, match="needs choices"):
        Param("a", "choice", "x")
    with pytest.raises(ValueError, match="takes no range"):
        Param(True, "bool", "x", 0, 1)
    with pytest.raises(ValueError, match="kind must be one of"):
        Param(1, "integer", "x")


def test_controllers_name_prints_default_allowed_help_and_extension(capsys):
    assert main(["controllers", "dnis"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.strip().startswith("warm_start="))
    assert "warm_start=1" in line and "(an integer in [0, 1000])" in line
    line = next(x for x in out.splitlines() if x.strip().startswith("optimizer="))
    assert "('sgd' or 'adam')" in line and "[extension: 'adam' is embsearch's" in line
    assert main(["controllers", "examples.custom_controller:MutualInfo"]) == 0
    assert "smoothing=10.0" in capsys.readouterr().out
