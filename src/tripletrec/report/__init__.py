"""Self-contained HTML reports of training runs (``tripletrec train --out``, ``tripletrec
report``).

A report opens offline: its style is inline and its figures are inline PNGs; every name in
it is escaped. :func:`write_run_report` writes one run's report (data summary, settings,
test metrics, learning curves, sample recommendations with "because you liked ...",
timings); :func:`write_comparison_report` puts runs side by side (the settings that differ,
the metrics, the learning curves overlaid).

Modules: :mod:`~tripletrec.report.run` collects a run's facts,
:mod:`~tripletrec.report.samples` the sample recommendations,
:mod:`~tripletrec.report.pages` renders them with the blocks of
:mod:`~tripletrec.report.html`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tripletrec._files import write_text_atomic
from tripletrec.exceptions import ParameterError

__all__ = ["REPORT_FILE", "write_comparison_report", "write_run_report"]

#: The report ``tripletrec train --out DIR`` writes into ``DIR``.
REPORT_FILE = "report.html"


def write_run_report(
    run_dir: str | Path,
    *,
    out: str | Path | None = None,
    model: Any = None,
    data: Any = None,
) -> Path:
    """Write the HTML report of the run in ``run_dir``.

    Parameters
    ----------
    run_dir : str or Path
        A run directory of ``tripletrec train --out``.
    out : str or Path, optional
        The file to write; default ``run_dir/report.html``.
    model : RecommenderBase, optional
        The run's fitted model, when the caller holds it (else loaded from ``run_dir``).
    data : Interactions, optional
        The run's interactions, when the caller holds them (else loaded as its
        ``config.json`` says), for the data summary.

    Returns
    -------
    Path
        The file written (atomically).
    """
    from tripletrec.report.pages import run_page
    from tripletrec.report.run import collect_run

    run_dir = Path(run_dir)
    path = run_dir / REPORT_FILE if out is None else Path(out)
    write_text_atomic(path, run_page(collect_run(run_dir, model=model, data=data)))
    return path


def write_comparison_report(run_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """Write one HTML page with the runs in ``run_dirs`` side by side.

    Parameters
    ----------
    run_dirs : sequence of str or Path
        Run directories of ``tripletrec train --out``, in the order of the columns.
    out : str or Path
        The file to write.

    Returns
    -------
    Path
        The file written (atomically).
    """
    from tripletrec.report.pages import comparison_page
    from tripletrec.report.run import collect_run

    if isinstance(run_dirs, (str, Path)) or len(run_dirs) == 0:
        raise ParameterError("write_comparison_report needs a sequence of run directories")
    runs = [collect_run(run_dir, detail=False) for run_dir in run_dirs]
    path = Path(out)
    write_text_atomic(path, comparison_page(runs))
    return path
