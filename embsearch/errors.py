"""Typed, user-fixable errors.

Every problem a user can fix by changing their input raises a subclass of
:class:`EmbsearchError`. The CLI catches exactly this type and prints its message as one
line (no traceback); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class EmbsearchError(Exception):
    """Base of every error the user can fix. The message says what is wrong and how to fix it."""


class DataError(EmbsearchError):
    """Input data is missing, unreadable, malformed, or lacks a named column."""


class BudgetError(EmbsearchError):
    """A budget string is malformed, or no plan of the space fits the budget."""


class ConfigError(EmbsearchError):
    """An option or configuration value is out of range or inconsistent."""


class ControllerNotFoundError(EmbsearchError):
    """The named controller is neither registered nor importable as ``package.module:Class``."""


class RunDirError(EmbsearchError):
    """A run or export directory is missing, incomplete, or would be overwritten."""
