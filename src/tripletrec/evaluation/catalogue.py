"""Catalogue-level measures of recommended lists: coverage and mean popularity.

They take each user's recommended items (``top_k(...)[0]``, ``-1`` padding ignored), not
scores, so they apply to any recommender's output.
"""

from __future__ import annotations

import numpy as np

from tripletrec._checks import positive_int
from tripletrec.exceptions import DataError


def _check_top_items(top_items: np.ndarray) -> np.ndarray:
    top_items = np.asarray(top_items)
    if top_items.ndim != 2:
        raise DataError(f"top_items must be 2-d (users x k), got shape {top_items.shape}")
    if top_items.size and not np.issubdtype(top_items.dtype, np.integer):
        raise DataError("top_items must hold integer item indices (-1 for padding)")
    return top_items.astype(np.int64, copy=False)


def coverage_at_k(top_items: np.ndarray, n_items: int) -> float:
    r"""Fraction of the catalogue recommended to at least one user.

    .. math:: \mathrm{Coverage@k} = \frac{|\bigcup_u \mathrm{top}_k(u)|}{n_\mathrm{items}}

    Parameters
    ----------
    top_items : numpy.ndarray of int, shape (n_users, k)
        Each user's recommended items, e.g. ``top_k(scores, k, exclude)[0]``; ``-1``
        entries (padding) are ignored. Coverage is not an average over users: when users
        are evaluated in chunks, stack the chunks' ``top_items`` (or the union of their
        items) before calling this.
    n_items : int
        Size of the catalogue.

    Returns
    -------
    float
        In [0, 1].
    """
    n_items = positive_int("n_items", n_items)
    top_items = _check_top_items(top_items)
    items = top_items[top_items >= 0]
    if items.size and items.max() >= n_items:
        raise DataError(f"top_items holds item {items.max()}, but n_items is {n_items}")
    return float(np.count_nonzero(np.bincount(items, minlength=n_items)) / n_items)


def mean_popularity_at_k(top_items: np.ndarray, item_popularity: np.ndarray) -> np.ndarray:
    r"""Mean popularity of each user's recommended items.

    .. math:: \mathrm{Pop@k}(u) = \frac{1}{|\mathrm{top}_k(u)|}
        \sum_{i \in \mathrm{top}_k(u)} \mathrm{pop}(i)

    Lower values mean less popularity-biased recommendations. The mean over users is the
    usual "average recommendation popularity"; it is returned per user so that chunks of
    users can be averaged like the other metrics.

    Parameters
    ----------
    top_items : numpy.ndarray of int, shape (n_users, k)
        Each user's recommended items; ``-1`` entries (padding) are ignored.
    item_popularity : numpy.ndarray, shape (n_items,)
        Popularity of each item, e.g. its number of training interactions
        (``train.sum(axis=0)``) or that count divided by the number of users.

    Returns
    -------
    numpy.ndarray of float64, shape (n_users,)
        NaN for a user without any recommended item.
    """
    top_items = _check_top_items(top_items)
    popularity = np.asarray(item_popularity, dtype=np.float64)
    if popularity.ndim != 1:
        raise DataError(f"item_popularity must be 1-d, got shape {popularity.shape}")
    valid = top_items >= 0
    if (top_items >= popularity.size).any():
        raise DataError(f"top_items holds item indices >= len(item_popularity) = {popularity.size}")
    if popularity.size == 0:
        return np.full(top_items.shape[0], np.nan)
    values = np.where(valid, popularity[np.where(valid, top_items, 0)], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return values.sum(axis=1) / np.count_nonzero(valid, axis=1)
