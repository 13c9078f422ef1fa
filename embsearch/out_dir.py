"""Check and claim an output directory before any compute (issue 18, section 1).

* :func:`check_out_dir` refuses, in one line, an ``--out`` that is a symbolic link, a file,
  a directory that already holds files, or a path that cannot be created or written, so a
  long search never ends in a traceback over its output location.
* :func:`claim_dir` creates the directory (or takes an empty one) and holds its lock file
  ``.embsearch.lock`` (the holder's pid inside, ``flock``-ed) while the caller writes it: two
  processes never write one directory, and the second is told which pid holds it. The
  kernel drops the lock when its process dies, so a ``kill -9`` leaves no lock that blocks.
* :func:`lock_dir` holds the same lock over an existing run directory (``retrain`` adds
  weights to it); :func:`held_by` tells a reader (``export``) that a writer is still at work.

Nothing here deletes a file it did not create: a directory that :func:`claim_dir` made is
removed again only when it is left empty.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from embsearch._atomic import remove_stale
from embsearch.errors import EmbsearchError, RunDirError

try:
    import fcntl
except ImportError:  # not POSIX: the emptiness checks alone guard a directory
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".embsearch.lock"


def check_out_dir(
    path: str | Path,
    *,
    flag: str = "--out",
    error: type[EmbsearchError] = RunDirError,
    must_not_exist: bool = False,
) -> Path:
    """Refuse an output location that cannot work, before anything is computed: a symbolic
    link, an existing file, a directory holding files (or any existing path, with
    ``must_not_exist``), a directory being written by another embsearch process, or a path
    whose nearest existing parent is not a writable directory. Returns ``Path(path)``."""
    out = Path(path)
    if out.is_symlink():
        raise error(f"{flag} {out} is a symbolic link; give the real directory path instead")
    if out.exists():
        if not out.is_dir():
            raise error(f"{flag} {out} is an existing file, not a directory; choose another {flag}")
        if must_not_exist:
            raise error(f"{out} already exists; choose another {flag} or remove it")
        pid = held_by(out)
        if pid is not None:
            raise error(
                f"{out} is being written by another embsearch process ({_who(pid)}); "
                f"wait for it to finish or choose another {flag}"
            )
        if any(name != LOCK_NAME for name in os.listdir(out)):
            raise error(f"{out} already holds files; choose another {flag} or remove it")
        if not os.access(out, os.W_OK | os.X_OK):
            raise error(f"{flag} {out} is not writable; choose another {flag}")
        return out
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise error(f"cannot create {flag} {out}: {parent} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise error(f"cannot create {flag} {out}: {parent} is not writable; choose another {flag}")
    return out


def held_by(directory: str | Path) -> int | None:
    """The pid of a live process holding ``directory``'s lock (0 if it could not be read),
    or ``None`` when no process holds it."""
    lock = Path(directory) / LOCK_NAME
    if fcntl is None:
        return None
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextlib.contextmanager
def lock_dir(
    directory: str | Path,
    *,
    flag: str = "--out",
    error: type[EmbsearchError] = RunDirError,
    warn: Callable[[str], None] | None = None,
) -> Iterator[Path]:
    """Hold ``directory``'s lock while the caller writes into it (refused, in one line, if
    another process holds it); temporary files a killed process left there are removed
    first (one ``warn`` line)."""
    directory = Path(directory)
    fd = _acquire(directory, flag, error)
    try:
        remove_stale(directory, warn)
        yield directory
    finally:
        _release(directory, fd)


@contextlib.contextmanager
def claim_dir(
    path: str | Path,
    *,
    flag: str = "--out",
    error: type[EmbsearchError] = RunDirError,
) -> Iterator[Path]:
    """Create ``path`` (or take it if it is an empty directory) and hold its lock while the
    caller writes into it. Refused in one line when :func:`check_out_dir` refuses ``path``,
    when another process holds it, or when it holds files once locked. If the caller fails
    before writing anything, a directory created here is removed again."""
    out = check_out_dir(path, flag=flag, error=error)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(f"cannot create {flag} {out}: {exc.strerror}") from None
    fd = _acquire(out, flag, error)
    try:
        if any(name != LOCK_NAME for name in os.listdir(out)):
            raise error(f"{out} already holds files; choose another {flag} or remove it")
        yield out
    except BaseException:
        _release(out, fd)
        fd = -1
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()  # only if nothing was written: rmdir never removes files
        raise
    finally:
        if fd >= 0:
            _release(out, fd)


def _acquire(directory: Path, flag: str, error: type[EmbsearchError]) -> int:
    """Open and lock ``directory/.embsearch.lock``; write our pid into it."""
    lock = directory / LOCK_NAME
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise error(f"cannot write in {flag} {directory}: {exc.strerror}") from None
        if fcntl is None:
            break
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise error(
                f"{directory} is being written by another embsearch process ({_who(pid)}); "
                f"wait for it to finish or choose another {flag}"
            ) from None
        # The holder unlinks the file before it lets go: lock the file that is there now.
        try:
            here = os.stat(lock)
            mine = os.fstat(fd)
            if (here.st_ino, here.st_dev) == (mine.st_ino, mine.st_dev):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _release(directory: Path, fd: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(directory / LOCK_NAME)  # while still locked (see _acquire)
    os.close(fd)


def _who(pid: int | None) -> str:
    return f"pid {pid}" if pid else "pid unknown"


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None
