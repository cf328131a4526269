"""Facts about the running process that reports and benchmarks record."""

from __future__ import annotations

import resource
import sys


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far, in bytes (``getrusage``)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # Linux reports KiB
