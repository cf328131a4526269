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
    fields = rollup_bytes(path)
    clean, dirty = fields.get("Shared_Clean"), fields.get("Shared_Dirty")
    return {
        "pid": os.getpid(),
        "rss_bytes": fields.get("Rss"),
        "pss_bytes": fields.get("Pss"),
        "shared_bytes": None if clean is None or dirty is None else clean + dirty,
    }


def rollup_bytes(path: str | Path = SMAPS_ROLLUP) -> dict[str, int]:
    """Every size in a ``smaps_rollup`` file (``Rss``, ``Pss``, ``Anonymous``, ...), in
    bytes, by the kernel's name; empty where the file is missing or unreadable."""
    try:
        text = Path(path).read_text(encoding="ascii", errors="replace")
    except OSError:
        return {}
    fields = {}
    for line in text.splitlines():
        # "Pss:                 414 kB": the kernel reports kibibytes whatever the suffix says.
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[name] = int(parts[0]) * 1024
    return fields


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


def available_memory_bytes() -> int | None:
    """Memory a fit can use now: Linux's ``MemAvailable`` (free memory plus what the
    kernel can reclaim), else ``os.sysconf``'s free physical pages; lowered to the room
    left under a cgroup (v2 or v1) limit. None when none of these can be read."""
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        available = None
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            available = None
    room = _cgroup_room()
    if room is not None:
        available = room if available is None else min(available, room)
    return available


def _cgroup_room() -> int | None:
    """Bytes left under this process's cgroup memory limit (v2, else v1), or None."""
    root = Path("/sys/fs/cgroup")
    v2, v1 = "", ""
    try:
        # Lines "0::/path" (v2) and "N:memory:/path" (v1): where this process's group is.
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers == "":
                v2 = path.lstrip("/")
            elif "memory" in controllers.split(","):
                v1 = path.lstrip("/")
    except (OSError, ValueError):
        pass
    v1_group = root / "memory" / v1
    for limit_file, usage_file in (
        (root / v2 / "memory.max", root / v2 / "memory.current"),
        (v1_group / "memory.limit_in_bytes", v1_group / "memory.usage_in_bytes"),
    ):
        try:
            limit = limit_file.read_text().strip()
            # v2 says "max"; v1 says a number near 2**63 when there is no limit.
            if limit == "max" or int(limit) >= 1 << 60:
                continue
            return int(limit) - int(usage_file.read_text().strip())
        except (OSError, ValueError):
            continue
    return None


#: glibc's ``mallopt`` parameters: the size above which ``malloc`` maps fresh pages, and
#: the free space at the top of the heap above which ``free`` hands it back to the system.
_M_MMAP_THRESHOLD = -3
_M_TRIM_THRESHOLD = -1
#: Allocations up to this size come from the heap once the command has run
#: :func:`reuse_freed_memory`.
HEAP_ALLOCATION_LIMIT = 1 << 30


def reuse_freed_memory() -> bool:
    """Have glibc serve allocations up to :data:`HEAP_ALLOCATION_LIMIT` from memory this
    process freed, rather than map (and page-fault in) fresh zeroed pages each time; True
    if it could (glibc only; elsewhere nothing changes).

    A training step builds and frees tens of megabytes of temporaries (the rows a batch
    reads, their gradients and optimiser moments, the in-batch softmax's batch x batch
    matrices); above glibc's mapping threshold each one costs page faults on every step,
    which made the row-wise Adam's step on a large table several times slower. Freed
    memory stays in the heap too (up to the same size), where glibc would otherwise
    return the top of the heap after each step and fault it in again at the next.
    Process-wide, so the command line calls it for its training command; a library call
    never changes the caller's allocator.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mapped = libc.mallopt(_M_MMAP_THRESHOLD, HEAP_ALLOCATION_LIMIT)
        return bool(mapped and libc.mallopt(_M_TRIM_THRESHOLD, HEAP_ALLOCATION_LIMIT))
    except (OSError, AttributeError):  # not glibc
        return False


def release_freed_memory() -> bool:
    """Give the pages the C heap holds free back to the system (glibc's ``malloc_trim``);
    True if it could (glibc only; elsewhere nothing happens).

    glibc keeps what a process frees for its next allocations rather than return it: a
    server that loads a model on every reload and frees the last one grows by what the
    freed model leaves scattered in its heap: serving the default model for Gowalla with
    2 workers, each of 6 reloads in 3 minutes added about 170 MiB of anonymous memory
    before this call, and the soak test's RSS ratio went from 1.51 to 1.19 with it
    (``benchmarks/results/soak_gowalla.md``). It walks the heap: call it after rare events
    (a reload), never per request.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
        return True
    except (OSError, AttributeError):  # not glibc
        return False
