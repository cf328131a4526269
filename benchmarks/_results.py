"""What every benchmark script records about its run, and the one writer of its result
files: ``NAME.json`` and ``NAME.md``, each written atomically (:func:`write_report`)."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tripletrec._files import write_json_atomic, write_text_atomic

#: ``benchmarks/``: the shared modules, the two shelves (``perf/``, ``studies/``) and
#: ``results/``.
BENCHMARKS = Path(__file__).resolve().parent
#: The repository's root: commands are recorded relative to it.
ROOT = BENCHMARKS.parent
#: Where every script writes by default, one ``NAME.md`` + ``NAME.json`` per script.
RESULTS = BENCHMARKS / "results"


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


def script_path(script: str | Path) -> str:
    """``script`` (a script's ``__file__``) from the repository's root:
    ``benchmarks/perf/compare.py``."""
    path = Path(script).resolve()
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def command(script: str | Path, argv: Sequence[str] = ()) -> str:
    """The command that ran ``script`` (a script's ``__file__``) with ``argv``, from the
    repository's root: ``python benchmarks/perf/compare.py --quick``."""
    return " ".join(["python", script_path(script), *argv])


def run_environment(script: str | Path, argv: Sequence[str], n_seeds: int, start: float) -> dict:
    """The command, date, machine, package versions and wall time of a run of ``script``
    (its ``__file__``) begun at ``start`` (a ``time.perf_counter()`` reading)."""
    return {
        "command": command(script, argv),
        "date": datetime.date.today().isoformat(),
        "n_seeds": n_seeds,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "versions": package_versions(),
        "wall_seconds": time.perf_counter() - start,
    }


def write_report(out: Path, payload: dict, markdown: str) -> None:
    """``out``.json (``payload``) and ``out``.md (``markdown``), each written atomically
    (the folder is created): how every script writes its results."""
    write_json_atomic(out.with_suffix(".json"), payload)
    write_text_atomic(out.with_suffix(".md"), markdown)
    print(f"wrote {out.with_suffix('.md')} and .json")


def write_results(
    out: Path,
    rows: list[dict],
    environment: dict,
    markdown: Callable[[list[dict], dict], str],
) -> None:
    """:func:`write_report` of ``{"environment": environment, "rows": rows}`` and of
    ``markdown(rows, environment)``: the JSON and tables of most scripts."""
    payload = {"environment": environment, "rows": rows}
    write_report(out, payload, markdown(rows, environment))


def worker_result(argv: Sequence[str]) -> dict:
    """The JSON object a benchmark's worker process (``argv``) prints last, or, when it
    fails, ``{"crashed": "exit status N: <its last error line>"}``: a crash is recorded,
    not raised, and each worker's peak memory is its own."""
    done = subprocess.run(list(argv), capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or [""])[-1]
        return {"crashed": f"exit status {done.returncode}: {tail}"}
    return json.loads(done.stdout.strip().splitlines()[-1])
