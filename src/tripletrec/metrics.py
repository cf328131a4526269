"""Ranking metrics computed for many users at once.

Every function takes a dense block of scores (one row per user, one column per item), the
user's relevant (held-out) items and the items to exclude from the ranking (usually the
user's training positives) as sparse boolean matrices with the same rows, and returns one
value per user. Users without a relevant item get NaN; averaging is the caller's choice.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata

from tripletrec.exceptions import DataError


def _check_scores(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise DataError(f"scores must be a 2-d array (users x items), got shape {scores.shape}")
    if not np.isfinite(scores).all():
        raise DataError("scores contain NaN or infinite values; the model diverged")
    return scores


def _as_bool_csr(matrix: sp.spmatrix | None, shape: tuple[int, int], name: str) -> sp.csr_matrix:
    if matrix is None:
        return sp.csr_matrix(shape, dtype=bool)
    matrix = sp.csr_matrix(matrix, dtype=bool)
    if matrix.shape != shape:
        raise DataError(f"{name} has shape {matrix.shape}, scores have shape {shape}")
    matrix.eliminate_zeros()
    return matrix


def auc_per_user(
    scores: np.ndarray, relevant: sp.spmatrix, exclude: sp.spmatrix | None = None
) -> np.ndarray:
    """ROC AUC of each row's scores against its relevant items.

    For user ``u`` with relevant items ``P`` and candidate negatives ``N`` (every item
    neither relevant nor excluded)::

        AUC(u) = (#{(p, n) in P x N : s_p > s_n} + 0.5 #{(p, n) : s_p = s_n}) / (|P| |N|)

    which equals ``sklearn.metrics.roc_auc_score`` on the non-excluded items, ties
    included. It is computed from average ranks (Mann-Whitney U) for all rows at once.

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
    scores = _check_scores(scores)
    relevant = _as_bool_csr(relevant, scores.shape, "relevant")
    exclude = _as_bool_csr(exclude, scores.shape, "exclude")
    relevant = (relevant > exclude).tocsr()  # relevant and not excluded

    ranked = scores.copy()
    excluded_rows, excluded_cols = exclude.nonzero()
    # Excluded items sink below every candidate, so the candidates' ranks are all shifted by
    # the same count, which is subtracted below.
    ranked[excluded_rows, excluded_cols] = -np.inf
    ranks = rankdata(ranked, method="average", axis=1)

    n_items = scores.shape[1]
    n_excluded = np.diff(exclude.indptr).astype(np.float64)
    n_pos = np.diff(relevant.indptr).astype(np.float64)
    n_neg = n_items - n_excluded - n_pos
    pos_rows, pos_cols = relevant.nonzero()
    rank_sum = np.bincount(pos_rows, weights=ranks[pos_rows, pos_cols], minlength=len(scores))
    u_statistic = rank_sum - n_pos * n_excluded - n_pos * (n_pos + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = u_statistic / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0)] = np.nan
    return auc
