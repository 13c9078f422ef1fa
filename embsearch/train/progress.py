"""Rich progress bars with live metrics; silent when disabled (tests, ``--quiet``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

_console = Console(stderr=True)


class _Silent:
    def add_task(self, *a: object, **k: object) -> int:
        return 0

    def update(self, *a: object, **k: object) -> None:
        return None

    def advance(self, *a: object, **k: object) -> None:
        return None

    def remove_task(self, *a: object, **k: object) -> None:
        return None


@contextlib.contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Progress | _Silent]:
    """A progress display with a ``{task.fields[info]}`` column for live loss/AUC; silent
    when stderr is not a terminal (a pipe or a file would get only the blank lines a
    transient display leaves behind)."""
    if not enabled or not _console.is_terminal:
        yield _Silent()
        return
    prog = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=_console,
        transient=True,
    )
    with prog:
        yield prog
