"""ROC AUC per user over the full ranking, for many users at once.

Unlike the top-k metrics, AUC counts a tie between a relevant item and a negative as one
half, as scikit-learn does; it is computed from average ranks (Mann-Whitney U).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from tripletrec.evaluation.topk import as_bool_csr, check_scores, masked_scores


def _searchsorted_rows(
    ordered: np.ndarray, rows: np.ndarray, values: np.ndarray, side: str
) -> np.ndarray:
    """``np.searchsorted(ordered[r], v, side)`` for many ``(r, v)`` pairs at once.

    A bisection over all pairs together: the Python loop runs ``log2(n_items)`` times.
    """
    n_items = ordered.shape[1]
    low = np.zeros(len(rows), dtype=np.int64)
    high = np.full(len(rows), n_items, dtype=np.int64)
    while True:
        active = low < high
        if not active.any():
            return low
        middle = (low + high) // 2
        probe = ordered[rows, np.minimum(middle, n_items - 1)]
        right = (probe < values) if side == "left" else (probe <= values)
        right &= active
        low = np.where(right, middle + 1, low)
        high = np.where(active & ~right, middle, high)


def auc_from_masked(
    masked: np.ndarray, relevant: sp.csr_matrix, exclude: sp.csr_matrix, *, in_place: bool
) -> np.ndarray:
    """AUC from scores with excluded items at -inf and relevant items not excluded."""
    n_users, n_items = masked.shape
    pos_rows, pos_cols = relevant.nonzero()
    pos_values = masked[pos_rows, pos_cols]
    # Sorted rows: a relevant item's average rank among all items of its row (1-based, ties
    # averaged, as scipy.stats.rankdata(method="average")) is n_below + (n_equal + 1) / 2.
    # Excluded items sit at -inf below every candidate, so every candidate's rank is shifted
    # by the same count, which is subtracted below.
    if in_place:
        masked.sort(axis=1)
        ordered = masked
    else:
        ordered = np.sort(masked, axis=1)
    n_below = _searchsorted_rows(ordered, pos_rows, pos_values, "left")
    n_below_or_equal = _searchsorted_rows(ordered, pos_rows, pos_values, "right")
    ranks = (n_below + n_below_or_equal + 1) / 2.0

    n_excluded = np.diff(exclude.indptr).astype(np.float64)
    n_pos = np.diff(relevant.indptr).astype(np.float64)
    n_neg = n_items - n_excluded - n_pos
    rank_sum = np.bincount(pos_rows, weights=ranks, minlength=n_users)
    u_statistic = rank_sum - n_pos * n_excluded - n_pos * (n_pos + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = u_statistic / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0)] = np.nan
    return auc


def auc_per_user(
    scores: np.ndarray, relevant: sp.spmatrix, exclude: sp.spmatrix | None = None
) -> np.ndarray:
    """ROC AUC of each row's scores against its relevant items.

    For user ``u`` with relevant items ``P`` and candidate negatives ``N`` (every item
    neither relevant nor excluded)::

        AUC(u) = (#{(p, n) in P x N : s_p > s_n} + 0.5 #{(p, n) : s_p = s_n}) / (|P| |N|)

    which equals ``sklearn.metrics.roc_auc_score`` on the non-excluded items, ties
    included. It is computed from average ranks (Mann-Whitney U) for all rows at once: the
    rows are sorted and each relevant item's rank is found by binary search.

    Parameters
    ----------
    scores : numpy.ndarray, shape (n_users, n_items)
    relevant : sparse matrix, shape (n_users, n_items)
        Non-zero where the item is a held-out positive of the user.
    exclude : sparse matrix, optional
        Non-zero where the item is left out of the user's ranking. An item both relevant
        and excluded is excluded.

    Returns
    -------
    numpy.ndarray of float64, shape (n_users,)
        NaN where a user has no relevant item or no candidate negative.
    """
    scores = check_scores(scores)
    relevant = as_bool_csr(relevant, scores.shape, "relevant")
    exclude = as_bool_csr(exclude, scores.shape, "exclude")
    relevant = (relevant > exclude).tocsr()  # relevant and not excluded
    masked = masked_scores(scores, exclude)
    return auc_from_masked(masked, relevant, exclude, in_place=masked is not scores)
