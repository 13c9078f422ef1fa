"""Device choice and seeding."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from embsearch.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available; asking for CUDA without it is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            "--device cuda was asked for but no CUDA device is available; use --device cpu or auto"
        )
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise ConfigError(f"unknown device {name!r}; use auto, cpu or cuda")
    return torch.device(name)


#: environment variable: the most bytes a split may take when held whole on the device
#: (0: every split in chunks); unset: :func:`resident_budget`
RESIDENT_ENV = "EMBSEARCH_RESIDENT_BYTES"
#: share of the free memory (host: MemAvailable; CUDA: free device memory) one split may take
RESIDENT_SHARE = 0.25


def resident_budget(device: torch.device) -> int | None:
    """The most bytes a split may take held whole on ``device``: ``$EMBSEARCH_RESIDENT_BYTES``
    when set, else :data:`RESIDENT_SHARE` of the free memory (``None``: unknown, no limit).
    A quarter: the train, validation and test splits, the model, its optimiser state and a
    supernet's copies share what is free."""
    env = os.environ.get(RESIDENT_ENV, "").strip()
    if env:
        try:
            return max(0, int(float(env)))
        except ValueError:
            raise ConfigError(
                f"{RESIDENT_ENV}={env!r}: give a number of bytes (0: feed every split in chunks)"
            ) from None
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * RESIDENT_SHARE)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(int(line.split()[1]) * 1024 * RESIDENT_SHARE)
    except (OSError, ValueError, IndexError):
        pass
    return None


def fits_resident(nbytes: int, device: torch.device, budget: int | None = None) -> bool:
    """Whether a split of ``nbytes`` is held whole on ``device`` (``budget``: the limit;
    ``None``: :func:`resident_budget`)."""
    limit = resident_budget(device) if budget is None else budget
    return limit is None or nbytes <= limit


def default_threads() -> int:
    """CPU threads when ``--threads`` is not given: half the cores this process may use
    (at least 1, at most 8). torch's own default, every core, collapses when any other
    process wants one: its threads wait for each other at every operation, so one busy
    core stalls them all (issue 19: epochs went from 0.23 s to 10 s on 2 cores beside one
    busy process, against 0.4 s with one thread). Small CTR networks gain little beyond a
    few threads anyway."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(8, cores // 2))


def set_threads(threads: int | None) -> int:
    """Use ``threads`` CPU threads for torch's operators (``None``: :func:`default_threads`);
    returns the number set."""
    n = default_threads() if threads is None else int(threads)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a CPU generator for batch permutations.

    Also asks torch for deterministic kernels: with several CPU threads some backward
    scatters otherwise add in varying order, and tiny float differences change which
    candidate a search picks. (``warn_only`` keeps CUDA ops without such kernels usable.)
    """
    _deterministic_kernels()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def _deterministic_kernels() -> None:
    """``torch.use_deterministic_algorithms(True, warn_only=True)`` without its side import
    of torch._inductor (3 s per process, for a compiler flag embsearch never uses)."""
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None:  # a torch without the private setter: pay the import
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        setter(True, warn_only=True)
