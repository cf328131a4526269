"""The figures of a :class:`~tripletrec.data.summary.DataSummary`, drawn with
:mod:`tripletrec.plots`' conventions (Agg backend, atomic PNGs, None without matplotlib)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tripletrec import plots

if TYPE_CHECKING:
    from tripletrec.data.summary import DataSummary


def _ratings_figure(plt: Any, summary: DataSummary) -> Any | None:
    ratings = summary.ratings
    if ratings is None:
        return None
    figure, axis = plt.subplots(figsize=(6, 3.5))
    positions = np.arange(len(ratings.counts))
    colours = np.full(len(positions), "tab:blue", dtype=object)
    positives = summary.positives
    if positives is not None and positives.threshold is not None:
        # A bin counts as positive by its midpoint: its bar is the rule's side of the cut.
        if ratings.values is not None:
            centres = np.asarray(ratings.values)
        else:
            edges = np.asarray(ratings.edges)
            centres = (edges[:-1] + edges[1:]) / 2
        above = (
            centres >= positives.threshold
            if positives.inclusive
            else (centres > positives.threshold)
        )
        colours[above] = "tab:orange"
    axis.bar(positions, ratings.counts, color=list(colours))
    axis.set_xticks(positions, ratings.labels, rotation=0 if ratings.values is not None else 60)
    axis.set(xlabel="rating", ylabel="interactions", title="rating histogram")
    if positives is not None and positives.threshold is not None:
        axis.set_title(f"rating histogram (orange: positives, {positives.rule})")
    axis.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    return figure


def _popularity_figure(plt: Any, summary: DataSummary) -> Any:
    counts = summary.item_counts
    figure, (by_rank, lorenz) = plt.subplots(1, 2, figsize=(9, 3.5))
    by_rank.plot(np.arange(1, len(counts) + 1), counts, color="tab:blue")
    by_rank.set_yscale("log")
    by_rank.set(xlabel="item rank (most popular first)", ylabel="interactions (log)",
                title="item popularity")  # fmt: skip
    share_items = np.arange(0, len(counts) + 1) / len(counts)
    share_interactions = np.concatenate([[0.0], np.cumsum(counts) / counts.sum()])
    lorenz.plot(share_items, share_interactions, color="tab:blue", label="items by popularity")
    lorenz.plot([0, 1], [0, 1], color="grey", linestyle="--", label="equal popularity")
    for fraction, _, share in summary.popularity.top_shares:
        lorenz.plot([fraction], [share], marker="o", color="tab:orange")
        lorenz.annotate(f"top {fraction:.0%}: {share:.0%}", (fraction, share),
                        textcoords="offset points", xytext=(6, -10), fontsize="small")  # fmt: skip
    lorenz.set(xlabel="share of items", ylabel="share of interactions",
               title=f"long tail (gini {summary.popularity.gini:.2f})")  # fmt: skip
    lorenz.legend(fontsize="small", loc="lower right")
    for axis in (by_rank, lorenz):
        axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def _history_figure(plt: Any, summary: DataSummary) -> Any:
    lengths = summary.history_lengths
    figure, axis = plt.subplots(figsize=(6, 3.5))
    low, high = int(lengths.min()), int(lengths.max())
    # Log-spaced bins when histories span orders of magnitude, as they usually do.
    logarithmic = high >= 20 * max(low, 1)
    if logarithmic:
        bins = np.unique(np.geomspace(max(low, 1), high + 1, 40).round())
    else:
        bins = np.arange(low, high + 2) - 0.5 if high - low < 40 else 40
    axis.hist(lengths, bins=bins, color="tab:blue")
    if logarithmic:
        axis.set_xscale("log")
    for value, label, style in ((summary.history.median, "median", "-"),
                                (summary.history.mean, "mean", "--")):  # fmt: skip
        axis.axvline(value, color="tab:orange", linestyle=style, label=f"{label} {value:.3g}")
    axis.set(xlabel="interactions per user" + (" (log)" if logarithmic else ""), ylabel="users",
             title="history lengths")  # fmt: skip
    axis.legend(fontsize="small")
    axis.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    return figure


#: (file name, title, drawing function) of each figure, in order.
FIGURES: tuple[tuple[str, str, Callable[[Any, DataSummary], Any]], ...] = (
    ("ratings.png", "rating histogram", _ratings_figure),
    ("item_popularity.png", "item popularity", _popularity_figure),
    ("history_lengths.png", "history lengths", _history_figure),
)


def _drawn(summary: DataSummary) -> list[tuple[str, str, Any]] | None:
    plt = plots.pyplot()
    if plt is None:
        return None
    drawn = []
    for filename, title, draw in FIGURES:
        figure = draw(plt, summary)
        if figure is not None:
            drawn.append((filename, title, figure))
    return drawn


def summary_figures(summary: DataSummary) -> dict[str, Any] | None:
    """Title -> figure, or None without matplotlib."""
    drawn = _drawn(summary)
    return None if drawn is None else {title: figure for _, title, figure in drawn}


def save_summary_figures(summary: DataSummary, out: Path) -> list[Path]:
    """Each figure as ``out/<name>.png``; none without matplotlib."""
    drawn = _drawn(summary) or []
    try:
        return [plots.save_png(figure, out / filename) for filename, _, figure in drawn]
    finally:
        for _, _, figure in drawn:
            plots.close_figure(figure)
