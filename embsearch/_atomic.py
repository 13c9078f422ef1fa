"""Write files and directories under a temporary name, then rename, so a failure never
leaves half-written output behind."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import secrets
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from embsearch.errors import EmbsearchError, RunDirError


def strict_json(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, +-inf, which strict JSON parsers reject)
    replaced by ``null``; a dict holding one also gets ``null_reasons``: key -> why."""
    if isinstance(obj, dict):
        out = {k: strict_json(v) for k, v in obj.items()}
        reasons = {
            str(k): _NULL_REASONS["nan" if math.isnan(v) else "inf"]
            for k, v in obj.items()
            if isinstance(v, float) and not math.isfinite(v)
        }
        if reasons:
            out["null_reasons"] = {**out.get("null_reasons", {}), **reasons}
        return out
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


_NULL_REASONS = {
    "nan": "not computable (NaN): e.g. an AUC on a split with one class, or a diverged model",
    "inf": "not computable (infinite): e.g. no validation produced a finite value",
}


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented strict JSON to ``path`` atomically (``allow_nan=False``;
    non-finite floats become ``null`` with a reason, see :func:`strict_json`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "x") as fh:  # mode as the umask says (mkstemp would make it 0600)
            json.dump(strict_json(obj), fh, indent=2, sort_keys=False, allow_nan=False)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_json(path: str | Path, error: type[EmbsearchError] = RunDirError) -> Any:
    """Read a JSON file embsearch wrote; a damaged one raises ``error`` (one line to the user)."""
    try:
        with open(path) as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(
            f"{path} is damaged (not valid JSON: {exc}); restore it or write it again"
        ) from None


def temp_path(final: Path) -> Path:
    """A hidden sibling name to stage ``final`` under: ``.NAME.tmp-PID-XXXXXXXX``. The pid
    lets a later run tell what a killed process left (:func:`remove_stale`) from what a live
    one is writing."""
    return final.parent / f".{final.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"


def write_file(path: str | Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` atomically: ``write(tmp)`` fills a temporary sibling (e.g.
    ``torch.save``), which is then renamed over ``path``."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def follow_umask(path: str | Path) -> None:
    """Give a file or directory that a writer made private (safetensors writes 0600) or
    copied with its source's mode the mode the process umask gives any new one (0644 and
    0755 under umask 022)."""
    os.chmod(path, (0o777 if Path(path).is_dir() else 0o666) & ~_umask())


def _umask() -> int:
    try:  # Linux: read without changing it (os.umask sets it, racing other threads)
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_STALE = re.compile(r"^\..+\.tmp-(\d+)-[0-9a-f]{8}$")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (signal 0 checks without sending anything)."""
    if os.name == "nt":  # os.kill would terminate it there: never call a process gone
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, under another user
        return True
    return True


def remove_stale(directory: str | Path, warn: Callable[[str], None] | None = None) -> int:
    """Remove the temporary files and staging directories (:func:`temp_path` names) that
    killed embsearch processes left in ``directory``, and say so in one ``warn`` line.
    An entry whose process still runs, or whose name is not ours, is never touched.
    Returns how many entries were removed."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    removed, pids, size = 0, set(), 0
    for entry in entries:
        match = _STALE.match(entry.name)
        if not match or entry.is_symlink() or pid_alive(int(match.group(1))):
            continue
        n = _tree_bytes(Path(entry.path))
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            continue
        removed, size = removed + 1, size + n
        pids.add(int(match.group(1)))
    if removed:
        message = (
            f"removed {removed} temporary file(s) or staging dir(s) ({size / 2**20:.1f} MiB) "
            f"left in {directory} by killed embsearch process(es) "
            f"{', '.join(map(str, sorted(pids)))}"
        )
        (warn or (lambda m: warnings.warn(m, UserWarning, stacklevel=3)))(message)
    return removed


def _tree_bytes(path: Path) -> int:
    if not path.is_dir():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir())


@contextlib.contextmanager
def staged_dir(final: str | Path, *, warn: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Yield a temporary sibling directory (:func:`temp_path`); on success rename it to
    ``final``, which may be absent or an empty directory. Anything else at ``final`` raises
    :class:`FileExistsError` and is left untouched: nothing is ever overwritten.

    On any exception the temporary directory is removed. Staging that killed processes
    left beside ``final`` is removed first (:func:`remove_stale`, one ``warn`` line).
    Directories follow the process umask (``mkdtemp`` would make them 0700).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(final.parent, warn)
    tmp = temp_path(final)
    tmp.mkdir()
    try:
        yield tmp
        if final.is_symlink() or (final.exists() and not final.is_dir()):
            raise FileExistsError(final)
        try:
            os.rename(tmp, final)  # replaces an empty directory only, atomically
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EBUSY):
                raise FileExistsError(final) from None
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
