"""Controllers: one file per method, plus the base class, registry and shared helpers."""

from embsearch.controllers.base import AskTellController, Controller
from embsearch.controllers.param_spec import Param
from embsearch.controllers.registry import available, describe_all, get_controller

__all__ = [
    "AskTellController",
    "Controller",
    "Param",
    "available",
    "describe_all",
    "get_controller",
]
