"""The machine a process runs on: the torch devices it may use, and the facts about it
that reports and benchmarks record."""

from __future__ import annotations

import resource
import sys

import torch

from tripletrec.exceptions import ParameterError


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far, in bytes (``getrusage``)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # Linux reports KiB


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
