"""What every benchmark script records about its run, and how it writes its tables."""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tripletrec._files import write_json_atomic


def package_versions() -> dict[str, str]:
    """Installed versions of tripletrec, torch and the peers ("absent" when missing)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("tripletrec", "torch", "numpy", "scipy", "lightfm", "implicit"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "absent"
    return found


def mean_std(row: dict, key: str, digits: int = 3) -> str:
    """``row[key]`` as "mean +- std" (the std from ``row[key + "_std"]``; "" if absent)."""
    if key not in row:
        return ""
    std = row[f"{key}_std"]
    return f"{row[key]:.{digits}f} +- {std:.{digits}f}" if std else f"{row[key]:.{digits}f}"


def mean_std_of(values: Sequence[float], digits: int = 4) -> str:
    """``values`` as "mean +- std" (the sample std, as ``compare.py``'s; 0 for one value)."""
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} +- {spread:.{digits}f}"


def run_environment(script: str, argv: Sequence[str], n_seeds: int, start: float) -> dict:
    """The command, date, machine, package versions and wall time of a run begun at
    ``start`` (a ``time.perf_counter()`` reading)."""
    return {
        "command": f"python benchmarks/{script} " + " ".join(argv),
        "date": datetime.date.today().isoformat(),
        "n_seeds": n_seeds,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "versions": package_versions(),
        "wall_seconds": time.perf_counter() - start,
    }


def write_results(
    out: Path,
    rows: list[dict],
    environment: dict,
    write_markdown: Callable[[Path, list[dict], dict], None],
) -> None:
    """``out``.json (environment and rows) and ``out``.md, each written atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out.with_suffix(".json"), {"environment": environment, "rows": rows})
    write_markdown(out.with_suffix(".md"), rows, environment)
    print(f"wrote {out.with_suffix('.md')}")
