"""What a data set looks like before any model sees it: :func:`describe`.

The reference notebook opens with this exploration: how many users, items and
interactions, how sparse the matrix is, how the ratings are spread, how many of them are
positives at the threshold, how concentrated item popularity is (the long tail) and how
long users' histories are. :func:`describe` computes all of it with a few vectorised passes
over the index arrays; :class:`DataSummary` prints it (:meth:`DataSummary.to_text`), writes
it (:meth:`DataSummary.save`) and draws it (:meth:`DataSummary.figures`, through
:mod:`tripletrec.data.summary_figures`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tripletrec._checks import finite_number
from tripletrec._files import write_json_atomic
from tripletrec._keys import pair_keys
from tripletrec.data.interactions import Interactions
from tripletrec.exceptions import DataError

__all__ = ["CountStats", "DataSummary", "Popularity", "Positives", "RatingHistogram", "describe"]

#: Shares of the catalogue (most popular first) whose share of the interactions is reported.
TOP_FRACTIONS = (0.01, 0.1, 0.2)
#: Ratings with at most this many distinct values get one bar per value, others equal bins.
MAX_DISCRETE_RATINGS = 30
#: Bins of a histogram of continuous ratings.
RATING_BINS = 20
#: Name of the JSON file :meth:`DataSummary.save` writes.
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class CountStats:
    """Minimum, median, mean, 90th percentile and maximum of per-user or per-item counts."""

    min: int
    median: float
    mean: float
    p90: float
    max: int

    @classmethod
    def of(cls, counts: np.ndarray) -> CountStats:
        median, p90 = np.percentile(counts, [50, 90])
        return cls(int(counts.min()), float(median), float(counts.mean()), float(p90),
                   int(counts.max()))  # fmt: skip

    def to_dict(self) -> dict[str, float]:
        return {"min": self.min, "median": self.median, "mean": self.mean, "p90": self.p90,
                "max": self.max}  # fmt: skip


@dataclass(frozen=True)
class RatingHistogram:
    """How the ratings are spread.

    Attributes
    ----------
    values : tuple of float or None
        The distinct ratings, ascending, when there are at most
        :data:`MAX_DISCRETE_RATINGS` of them (one bar each); None for binned ratings.
    edges : tuple of float or None
        The ``len(counts) + 1`` bin edges of continuous ratings; None for discrete ones.
    counts : tuple of int
        Interactions per value or bin.
    min, max, mean : float
        Of the ratings.
    """

    values: tuple[float, ...] | None
    edges: tuple[float, ...] | None
    counts: tuple[int, ...]
    min: float
    max: float
    mean: float

    @classmethod
    def of(cls, ratings: np.ndarray) -> RatingHistogram:
        ratings = np.asarray(ratings, dtype=np.float64)
        stats = (float(ratings.min()), float(ratings.max()), float(ratings.mean()))
        values, counts = np.unique(ratings, return_counts=True)
        if len(values) <= MAX_DISCRETE_RATINGS:
            return cls(tuple(values.tolist()), None, tuple(counts.tolist()), *stats)
        counts, edges = np.histogram(ratings, bins=RATING_BINS)
        return cls(None, tuple(edges.tolist()), tuple(counts.tolist()), *stats)

    @property
    def labels(self) -> tuple[str, ...]:
        """One label per bar: the rating (``"7"``), or the bin (``"[0.5, 1)"``; the last
        bin is closed)."""
        if self.values is not None:
            return tuple(f"{v:g}" for v in self.values)
        edges = self.edges or ()
        last = len(edges) - 2
        return tuple(
            f"[{lo:.3g}, {hi:.3g}{']' if i == last else ')'}"
            for i, (lo, hi) in enumerate(itertools.pairwise(edges))
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "discrete": self.values is not None,
            "histogram": dict(zip(self.labels, self.counts)),
        }


@dataclass(frozen=True)
class Positives:
    """The interactions that count as positives: ``rating > threshold`` (``>=`` when
    ``inclusive``), or every row of implicit data (``threshold`` None)."""

    threshold: float | None
    inclusive: bool
    n_positives: int
    share: float
    n_users: int
    n_items: int

    @property
    def rule(self) -> str:
        if self.threshold is None:
            return "every row"
        return f"rating {'>=' if self.inclusive else '>'} {self.threshold:g}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "threshold": self.threshold,
            "inclusive": self.inclusive,
            "n_positives": self.n_positives,
            "share": self.share,
            "n_users": self.n_users,
            "n_items": self.n_items,
        }


@dataclass(frozen=True)
class Popularity:
    """How concentrated interactions are on few items (the long tail).

    Attributes
    ----------
    per_item : CountStats
        Interactions per item.
    top_shares : tuple of (float, int, float)
        ``(fraction of the items, number of items, their share of the interactions)`` for
        the most popular items, for each of :data:`TOP_FRACTIONS`.
    n_items_half : int
        The fewest items that hold half of the interactions.
    gini : float
        Gini coefficient of the interactions per item: 0 when every item has as many,
        towards 1 when a few items have them all.
    """

    per_item: CountStats
    top_shares: tuple[tuple[float, int, float], ...]
    n_items_half: int
    gini: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "per_item": self.per_item.to_dict(),
            "top_share": {f"{f:.0%}": share for f, _, share in self.top_shares},
            "top_items": {f"{f:.0%}": n for f, n, _ in self.top_shares},
            "n_items_half": self.n_items_half,
            "gini": self.gini,
        }


@dataclass(frozen=True)
class DataSummary:
    """The exploration of one interaction data set (see :func:`describe`).

    Attributes
    ----------
    n_users, n_items : int
        Users and items with at least one interaction.
    n_interactions : int
        Rows.
    sparsity : float
        Share of the ``n_users x n_items`` matrix without an interaction.
    ratings : RatingHistogram or None
        None for implicit data.
    positives : Positives or None
        The positives at the threshold; None for rated data described without one.
    popularity : Popularity
        The long tail of item popularity.
    history : CountStats
        Interactions per user.
    item_counts : numpy.ndarray of int64
        Interactions per item, most popular first (for the figures; not in
        :meth:`to_dict`).
    history_lengths : numpy.ndarray of int64
        Interactions per user, in user-index order (for the figures; not in
        :meth:`to_dict`).
    """

    n_users: int
    n_items: int
    n_interactions: int
    sparsity: float
    ratings: RatingHistogram | None
    positives: Positives | None
    popularity: Popularity
    history: CountStats
    item_counts: np.ndarray = field(repr=False, compare=False)
    history_lengths: np.ndarray = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the per-item and per-user arrays, as JSON-safe values."""
        return {
            "n_users": self.n_users,
            "n_items": self.n_items,
            "n_interactions": self.n_interactions,
            "sparsity": self.sparsity,
            "ratings": None if self.ratings is None else self.ratings.to_dict(),
            "positives": None if self.positives is None else self.positives.to_dict(),
            "popularity": self.popularity.to_dict(),
            "history": self.history.to_dict(),
        }

    def to_text(self) -> str:
        """The summary as the table ``tripletrec data describe`` prints."""
        from tripletrec.data.summary_text import summary_text

        return summary_text(self)

    def figures(self) -> dict[str, Any] | None:
        """Title -> matplotlib figure (rating histogram when there are ratings, item
        popularity, history lengths); None when matplotlib is not installed. Close them
        with :func:`tripletrec.plots.close_figure`."""
        from tripletrec.data.summary_figures import summary_figures

        return summary_figures(self)

    def save(self, out_dir: str | Path) -> list[Path]:
        """Write ``summary.json`` and one PNG per figure into ``out_dir``, each atomically.

        Returns
        -------
        list of Path
            The files written; only ``summary.json`` when matplotlib is not installed.
        """
        from tripletrec.data.summary_figures import save_summary_figures

        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise DataError(f"{out}: exists and is not a directory")
        write_json_atomic(out / SUMMARY_FILE, self.to_dict())
        return [out / SUMMARY_FILE, *save_summary_figures(self, out)]


def describe(
    data: Interactions | pd.DataFrame,
    *,
    threshold: float | None = None,
    inclusive: bool = False,
) -> DataSummary:
    """Summarise interaction data the way the reference notebook explores it.

    Parameters
    ----------
    data : Interactions or pandas.DataFrame
        The interactions; a DataFrame needs ``user_id`` and ``item_id`` columns and may
        have ``rating`` (read by :meth:`Interactions.from_dataframe`, with its checks).
    threshold : float, optional
        Positives are ratings above it (at or above it with ``inclusive``); needs ratings.
        None: every row of implicit data is a positive, and rated data gets no positives
        section.
    inclusive : bool, default False
        Count ``rating >= threshold`` as positive.

    Returns
    -------
    DataSummary

    Raises
    ------
    DataError
        When the data is empty, not interactions, lacks the columns, or has no ratings to
        threshold.

    Examples
    --------
    >>> import pandas as pd
    >>> from tripletrec import describe
    >>> frame = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [10, 11, 10],
    ...                       "rating": [5.0, 2.0, 4.0]})
    >>> summary = describe(frame, threshold=3)
    >>> summary.n_users, summary.n_items, summary.positives.n_positives
    (2, 2, 2)
    """
    data = _as_interactions(data)
    if threshold is not None:
        threshold = finite_number("threshold", threshold)
        if data.ratings is None:
            raise DataError("threshold given, but these interactions have no ratings")
    users, items = data.users, data.items
    user_counts = np.bincount(users, minlength=data.n_users)
    item_counts = np.bincount(items, minlength=data.n_items)
    history = user_counts[user_counts > 0]
    popular = np.sort(item_counts[item_counts > 0])[::-1]
    n_users, n_items = len(history), len(popular)
    # Distinct pairs: an Interactions built by hand may repeat one.
    n_pairs = len(np.unique(pair_keys(users, items, data.n_items)))
    return DataSummary(
        n_users=n_users,
        n_items=n_items,
        n_interactions=len(data),
        sparsity=1.0 - n_pairs / (n_users * n_items),
        ratings=None if data.ratings is None else RatingHistogram.of(data.ratings),
        positives=_positives(data, threshold, bool(inclusive)),
        popularity=_popularity(popular),
        history=CountStats.of(history),
        item_counts=popular,
        history_lengths=history,
    )


def _as_interactions(data: Any) -> Interactions:
    if isinstance(data, Interactions):
        if len(data) == 0:
            raise DataError("no interactions to describe (the data is empty)")
        return data
    if isinstance(data, pd.DataFrame):
        rating = "rating" if "rating" in data.columns else None
        return Interactions.from_dataframe(data, rating_col=rating)
    raise DataError(f"describe needs Interactions or a pandas DataFrame, got {type(data).__name__}")


def _positives(data: Interactions, threshold: float | None, inclusive: bool) -> Positives | None:
    if threshold is None:
        if data.ratings is not None:
            return None
        keep = np.ones(len(data), dtype=bool)
    else:
        keep = data.ratings >= threshold if inclusive else data.ratings > threshold
    n = int(keep.sum())
    n_users = len(np.unique(data.users[keep]))
    n_items = len(np.unique(data.items[keep]))
    return Positives(threshold, inclusive, n, n / len(data), n_users, n_items)


def _popularity(popular: np.ndarray) -> Popularity:
    """The long tail of ``popular``: interactions per item, most popular first."""
    total = int(popular.sum())
    cumulative = np.cumsum(popular)
    shares = []
    for fraction in TOP_FRACTIONS:
        n_top = max(1, math.ceil(fraction * len(popular)))
        shares.append((fraction, n_top, float(cumulative[n_top - 1] / total)))
    n_half = int(np.searchsorted(cumulative, total / 2)) + 1
    # Gini over the ascending counts x_1..x_n: sum((2i - n - 1) x_i) / (n sum x).
    ascending = popular[::-1].astype(np.float64)
    n = len(ascending)
    ranks = np.arange(1, n + 1, dtype=np.float64)
    gini = float(((2 * ranks - n - 1) * ascending).sum() / (n * ascending.sum()))
    return Popularity(CountStats.of(popular), tuple(shares), n_half, gini)
