"""PNG plots of runs and comparisons; matplotlib is optional (``pip install tripletrec[plot]``).

Every ``plot_*`` function returns the path written, and every ``*_figure`` function the
figure (for pages that inline it, :func:`figure_png`), or None when matplotlib is not
installed, so a caller can skip the figure with a note instead of failing. Figures are
written through a temporary file and a rename: a crash never leaves a half-written PNG.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tripletrec._files import atomic_path

#: Resolution of every PNG tripletrec draws.
DPI = 120


def pyplot() -> Any:
    """matplotlib's pyplot (on the non-interactive Agg backend unless the user chose one), or
    None if not installed. Every figure of the package goes through this one function, so
    a test can stand in for a machine without matplotlib by replacing it."""
    try:
        import matplotlib
    except ImportError:
        return None
    # Agg needs no display: the CLI and the benchmarks run on headless machines. A backend
    # the user chose (a notebook's inline one, MPLBACKEND, pyplot already in use) is kept.
    if "matplotlib.pyplot" not in sys.modules and "MPLBACKEND" not in os.environ:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(figure: Any, path: str | Path) -> Path:
    """``figure`` written to ``path`` as PNG, atomically (a temporary file, then a rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=DPI, format="png")
    return path


def figure_png(figure: Any) -> bytes:
    """``figure`` as PNG bytes (for pages that inline their images)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=DPI, format="png")
    return buffer.getvalue()


def close_figure(figure: Any) -> None:
    """Release ``figure`` (pyplot keeps every open figure alive until it is closed)."""
    plt = pyplot()
    if plt is not None:
        plt.close(figure)


#: The validation metrics drawn in a learning curve, when the history has them.
CURVE_METRICS = ("validation_auc", "validation_ndcg@10")


def learning_curve_figure(runs: Mapping[str, Sequence[Mapping[str, Any]]]) -> Any | None:
    """Training loss and validation metrics per epoch of one run or several overlaid.

    Parameters
    ----------
    runs : mapping of str to sequence of dict
        Run label -> its history: one record per epoch with ``epoch`` and ``loss``, and
        optionally ``validation_auc`` and ``validation_ndcg@10`` (as ``tripletrec train``
        writes to ``history.json``). With one run the label is not shown.

    Returns
    -------
    matplotlib.figure.Figure or None
        The figure (close it with :func:`close_figure`), or None when matplotlib is missing.
    """
    plt = pyplot()
    if plt is None:
        return None
    histories = list(runs.values())
    validation = [
        key for key in CURVE_METRICS if any(key in r for history in histories for r in history)
    ]
    figure, axes = plt.subplots(1, 1 + bool(validation), figsize=(5 + 4 * bool(validation), 3.5))
    axes = np.atleast_1d(axes)
    several = len(runs) > 1
    for run, (label, history) in enumerate(runs.items()):
        # Overlaid runs: one colour per run, one line style per metric.
        colour = {"color": f"C{run % 10}"} if several else {}
        epochs = [record["epoch"] for record in history]
        losses = [record["loss"] for record in history]
        axes[0].plot(epochs, losses, marker="o", label=label, **colour)
        for style, key in zip(("-", "--", ":"), validation):
            metric = key.removeprefix("validation_")
            values = [record.get(key, np.nan) for record in history]
            shown = f"{label}: {metric}" if several else metric
            axes[1].plot(epochs, values, marker="o", linestyle=style, label=shown, **colour)
    axes[0].set(xlabel="epoch", ylabel="training loss", title="loss")
    if several:
        axes[0].legend(fontsize="small")
    if validation:
        axes[1].set(xlabel="epoch", ylabel="validation metric", title="validation")
        axes[1].legend(fontsize="small")
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.xaxis.get_major_locator().set_params(integer=True)  # epochs are whole
    figure.tight_layout()
    return figure


def plot_learning_curve(history: Sequence[Mapping[str, Any]], path: str | Path) -> Path | None:
    """Training loss and validation metrics per epoch, as a PNG.

    Parameters
    ----------
    history : sequence of dict
        One record per epoch with ``epoch`` and ``loss``, and optionally ``validation_auc`` and
        ``validation_ndcg@10`` (as ``tripletrec train`` writes to ``history.json``).
    path : str or Path
        The PNG to write.

    Returns
    -------
    Path or None
        ``path``, or None when matplotlib is missing (nothing is written).
    """
    figure = learning_curve_figure({"": history})
    if figure is None:
        return None
    try:
        return save_png(figure, path)
    finally:
        close_figure(figure)


def plot_tradeoff(
    rows: Sequence[Mapping[str, Any]],
    path: str | Path,
    metrics: Sequence[str] = ("auc", "ndcg@10"),
) -> Path | None:
    """Quality against fit time (log scale), one panel per dataset and metric.

    Parameters
    ----------
    rows : sequence of dict
        One per (dataset, model) with ``dataset``, ``model``, ``fit_seconds`` and each
        metric (means; ``<metric>_std`` is drawn as an error bar when present).
    path : str or Path
        The PNG to write.
    metrics : sequence of str
        The metrics on the y axes.

    Returns
    -------
    Path or None
        ``path``, or None when matplotlib is missing.
    """
    plt = pyplot()
    if plt is None:
        return None
    datasets = list(dict.fromkeys(row["dataset"] for row in rows))
    models = list(dict.fromkeys(row["model"] for row in rows))
    colours = plt.get_cmap("tab20")(np.linspace(0, 1, max(len(models), 2)))
    colour = dict(zip(models, colours))
    figure, axes = plt.subplots(
        len(metrics), len(datasets), figsize=(5.5 * len(datasets), 4 * len(metrics)), squeeze=False
    )
    # A baseline with no fitting to speak of still needs a finite place on a log axis.
    floor = 1e-3
    for column, dataset in enumerate(datasets):
        subset = [row for row in rows if row["dataset"] == dataset]
        for line, metric in enumerate(metrics):
            axis = axes[line, column]
            for row in subset:
                axis.errorbar(
                    max(row["fit_seconds"], floor),
                    row[metric],
                    yerr=row.get(f"{metric}_std") or None,
                    fmt="o",
                    color=colour[row["model"]],
                    label=row["model"],
                )
            axis.set_xscale("log")
            axis.set(xlabel="fit seconds (log)", ylabel=metric, title=f"{dataset}: {metric}")
            axis.grid(alpha=0.3, which="both")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    for axis in axes.ravel()[1:]:
        for handle, label in zip(*axis.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    figure.legend(handles, labels, loc="center right", fontsize="small")
    figure.tight_layout(rect=(0, 0, 0.8, 1))
    try:
        return save_png(figure, path)
    finally:
        plt.close(figure)
