"""The machine a process runs on: the torch devices it may use, and the facts about it
that reports and benchmarks record."""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

import torch

from tripletrec.exceptions import ParameterError


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far, in bytes (``getrusage``)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # Linux reports KiB


#: The kernel's summary of this process's memory mappings (Linux 4.14 and later).
SMAPS_ROLLUP = Path("/proc/self/smaps_rollup")


def memory_usage(path: str | Path = SMAPS_ROLLUP) -> dict[str, int | None]:
    """This process's id and resident memory, from ``/proc/self/smaps_rollup``.

    ``rss_bytes`` counts every page this process has in memory, including pages it shares
    with other processes (a memory-mapped model that N serving workers map is in each
    one's RSS); ``pss_bytes`` divides each shared page among the processes that map it, so
    the PSS of all workers adds up to the memory they really use; ``shared_bytes`` is the
    part of RSS that other processes map too (``Shared_Clean + Shared_Dirty``).

    Parameters
    ----------
    path : str or Path
        The rollup file to read (a parameter for the tests).

    Returns
    -------
    dict
        ``pid``, ``rss_bytes``, ``pss_bytes``, ``shared_bytes``; each size is None where the
        file is missing or unreadable (not Linux) or lacks its line.
    """
    fields = {"Rss": None, "Pss": None, "Shared_Clean": None, "Shared_Dirty": None}
    try:
        text = Path(path).read_text(encoding="ascii", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        # "Pss:                 414 kB": the kernel reports kibibytes whatever the suffix says.
        name, _, rest = line.partition(":")
        parts = rest.split()
        if name in fields and parts and parts[0].isdigit():
            fields[name] = int(parts[0]) * 1024
    clean, dirty = fields["Shared_Clean"], fields["Shared_Dirty"]
    return {
        "pid": os.getpid(),
        "rss_bytes": fields["Rss"],
        "pss_bytes": fields["Pss"],
        "shared_bytes": None if clean is None or dirty is None else clean + dirty,
    }


def resolve_device(name: str) -> torch.device:
    """The torch device called ``name`` (``"cpu"``, ``"cuda"``, ``"cuda:N"``), checked."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ParameterError(f"invalid device {name!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device 'cuda' requested but no CUDA device is available")
    if device.type not in ("cpu", "cuda"):
        raise ParameterError(f"device must be 'cpu' or 'cuda', not {name!r}")
    return device
