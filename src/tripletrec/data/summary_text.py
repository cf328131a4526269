"""The printed table of a :class:`~tripletrec.data.summary.DataSummary`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tripletrec.data.summary import CountStats, DataSummary, RatingHistogram

#: Width of the longest bar of the text histogram, in characters.
BAR_WIDTH = 30

#: A section heading (a string), or a ``(label, value)`` row under one.
_Line = str | tuple[str, str]


def summary_text(summary: DataSummary) -> str:
    """Sizes, ratings, positives, popularity and histories as label / value rows, one
    label column for every section."""
    sizes: list[_Line] = [
        ("users", f"{summary.n_users:,}"),
        ("items", f"{summary.n_items:,}"),
        ("interactions", f"{summary.n_interactions:,}"),
        ("sparsity", f"{summary.sparsity:.2%}"),
    ]
    lines: list[_Line] = []
    positives = summary.positives
    if positives is not None:
        lines += [
            f"positives ({positives.rule})",
            ("interactions", f"{positives.n_positives:,} ({positives.share:.1%})"),
            ("users with one", f"{positives.n_users:,}"),
            ("items with one", f"{positives.n_items:,}"),
        ]
    popularity = summary.popularity
    half = popularity.n_items_half
    lines += [
        "item popularity (interactions per item)",
        _stats_row(popularity.per_item),
        *(
            (f"top {fraction:.0%} of items ({n:,})", f"{share:.1%} of interactions")
            for fraction, n, share in popularity.top_shares
        ),
        ("half of interactions on", f"{half:,} items ({half / summary.n_items:.1%})"),
        ("gini", f"{popularity.gini:.3f}"),
        "history length (interactions per user)",
        _stats_row(summary.history),
    ]
    width = max(len(line[0]) for line in sizes + lines if isinstance(line, tuple))
    parts = [_table(sizes, width)]
    if summary.ratings is not None:
        parts.append("\n".join(_histogram(summary.ratings, summary.n_interactions)))
    parts.append(_table(lines, width).lstrip("\n"))
    return "\n\n".join(parts)


def _table(lines: list[_Line], width: int) -> str:
    """Headings after a blank line; rows indented, labels padded to ``width``."""
    out: list[str] = []
    for line in lines:
        if isinstance(line, str):
            out += ["", line]
        else:
            out.append(f"  {line[0]:<{width}}  {line[1]}")
    return "\n".join(out)


def _histogram(ratings: RatingHistogram, n_interactions: int) -> list[str]:
    peak = max(ratings.counts)
    labels = ratings.labels
    width = max(len("rating"), *(len(label) for label in labels))
    count_width = max(len("count"), len(f"{peak:,}"))
    lines = [
        f"ratings ({ratings.min:g} to {ratings.max:g}, mean {ratings.mean:.2f})",
        f"  {'rating':>{width}}  {'count':>{count_width}}   share",
    ]
    for label, count in zip(labels, ratings.counts):
        bar = "#" * round(BAR_WIDTH * count / peak)
        share = f"{count / n_interactions:.1%}"
        lines.append(f"  {label:>{width}}  {count:>{count_width},}  {share:>6}  {bar}".rstrip())
    return lines


def _stats_row(stats: CountStats) -> tuple[str, str]:
    values = (stats.min, stats.median, stats.mean, stats.p90, stats.max)
    return ("min / median / mean / p90 / max", " / ".join(_number(v) for v in values))


def _number(value: float) -> str:
    """A count statistic: whole numbers without decimals, others with one."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
