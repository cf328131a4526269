"""Top-k selection: the one tie rule every ranking in tripletrec follows.

Items are ordered by descending score; **equal scores are ordered by item index, lower
first**, also at the cut-off. Excluded items never appear; a row with fewer than ``k``
candidates ends with padding: index ``-1``, score ``-inf``. Metrics, ``recommend``,
``similar_items``, exact and approximate retrieval and the HTTP service all select through
this module, so they return the same items in the same order for the same scores.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from tripletrec._checks import non_negative_int
from tripletrec.exceptions import DataError


def check_scores(scores: np.ndarray) -> np.ndarray:
    """Validated scores: float32 and float64 as given (no copy), anything else as float64.

    Converting float32 to float64 is exact and keeps the order, so no result depends on it.

    Raises
    ------
    DataError
        If ``scores`` is not 2-d or holds NaN or infinite values.
    """
    scores = np.asarray(scores)
    if scores.dtype not in (np.float32, np.float64):
        scores = scores.astype(np.float64)
    if scores.ndim != 2:
        raise DataError(f"scores must be a 2-d array (users x items), got shape {scores.shape}")
    if not np.isfinite(scores).all():
        raise DataError("scores contain NaN or infinite values; the model diverged")
    return scores


def as_bool_csr(matrix: sp.spmatrix | None, shape: tuple[int, int], name: str) -> sp.csr_matrix:
    """``matrix`` as a boolean CSR copy of ``shape`` with one sorted entry per (row, item);
    None is the empty matrix."""
    if matrix is None:
        return sp.csr_matrix(shape, dtype=bool)
    matrix = sp.csr_matrix(matrix, dtype=bool, copy=True)  # never modify the caller's matrix
    if matrix.shape != shape:
        raise DataError(f"{name} has shape {matrix.shape}, scores have shape {shape}")
    matrix.eliminate_zeros()
    matrix.sum_duplicates()  # one entry per (row, item), sorted: row counts are nnz per row
    return matrix


def one_per_row(columns: np.ndarray, n_cols: int) -> sp.csr_matrix:
    """A CSR matrix with a single 1 per row, in ``columns``: excludes each query item from
    its own row of ``similar_items``."""
    n = len(columns)
    return sp.csr_matrix((np.ones(n, np.float32), (np.arange(n), columns)), shape=(n, n_cols))


def columns_mask(n_rows: int, columns: np.ndarray, n_cols: int) -> sp.csr_matrix:
    """A CSR matrix that is 1 in ``columns`` of every row: items excluded for every user."""
    rows = np.repeat(np.arange(n_rows), len(columns))
    cols = np.tile(columns, n_rows)
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_rows, n_cols))


def masked_scores(scores: np.ndarray, exclude: sp.csr_matrix) -> np.ndarray:
    """``scores`` with excluded entries set to -inf (a copy only when something is excluded)."""
    if exclude.nnz == 0:
        return scores
    masked = scores.copy()
    rows, cols = exclude.nonzero()
    masked[rows, cols] = -np.inf
    return masked


def top_k_masked(masked: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k` of finite-or-(-inf) scores, where -inf marks an excluded item (padding).

    No validation: ``masked`` is a 2-d float array and ``k >= 0``.
    """
    n_users, n_items = masked.shape
    width = min(k, n_items)
    if width == n_items:
        # Whole rows: a stable sort of the negated scores orders ties by item index.
        indices = np.argsort(-masked, axis=1, kind="stable")
    elif width == 0:
        indices = np.empty((n_users, 0), dtype=np.intp)
    else:
        # The `width` largest scores of each row, in no particular order.
        indices = np.argpartition(masked, n_items - width, axis=1)[:, n_items - width :]
        values = np.take_along_axis(masked, indices, axis=1)
        cutoff = values.min(axis=1)
        # argpartition picks arbitrary members of a tie at the cut-off. A row whose cut-off
        # value occurs more often in the whole row than in its selection has such a tie:
        # there, keep every score above the cut-off and the lowest-index items equal to it.
        n_at_cutoff_kept = np.count_nonzero(values == cutoff[:, None], axis=1)
        n_at_cutoff_all = np.count_nonzero(masked == cutoff[:, None], axis=1)
        # A -inf cut-off is a tie among excluded items, which all become padding anyway.
        tied = np.flatnonzero((n_at_cutoff_all > n_at_cutoff_kept) & np.isfinite(cutoff))
        if tied.size:
            block = masked[tied]
            row_cutoff = cutoff[tied, None]
            above = block > row_cutoff
            at = block == row_cutoff
            n_wanted_at = width - np.count_nonzero(above, axis=1)
            keep = above | (at & (np.cumsum(at, axis=1) <= n_wanted_at[:, None]))
            indices[tied] = np.nonzero(keep)[1].reshape(tied.size, width)
        # Sort the selection by descending score, ties by ascending item index: sort the
        # indices first, then a stable sort on the negated scores keeps that order in ties.
        indices.sort(axis=1)
        values = np.take_along_axis(masked, indices, axis=1)
        indices = np.take_along_axis(indices, np.argsort(-values, axis=1, kind="stable"), axis=1)

    indices = indices.astype(np.int64, copy=False)
    values = np.take_along_axis(masked, indices, axis=1)
    indices[np.isneginf(values)] = -1
    if k > width:
        indices = np.hstack([indices, np.full((n_users, k - width), -1, dtype=np.int64)])
        values = np.hstack([values, np.full((n_users, k - width), -np.inf, dtype=values.dtype)])
    return indices, values


def top_k(
    scores: np.ndarray, k: int, exclude: sp.spmatrix | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` best items, best first, excluded items left out.

    Items are ordered by descending score; **equal scores are ordered by item index, lower
    first**, also at the cut-off: if the k-th and (k+1)-th best scores are equal, the item
    with the lower index is kept. The result is therefore deterministic and does not depend
    on the sorting algorithm.

    Parameters
    ----------
    scores : numpy.ndarray, shape (n_users, n_items)
        Finite scores; float32 stays float32, other types are converted to float64.
    k : int
        Number of items per row, ``>= 0``. It may exceed the number of items.
    exclude : sparse matrix, shape (n_users, n_items), optional
        Non-zero where the item must not be returned for that row (e.g. the user's
        training positives).

    Returns
    -------
    indices : numpy.ndarray of int64, shape (n_users, k)
        Item indices, best first. When a row has fewer than ``k`` non-excluded items
        (``k`` larger than the catalogue, or many exclusions), the row ends with ``-1``
        padding.
    scores : numpy.ndarray, shape (n_users, k)
        The matching scores, ``-inf`` at padding positions.

    Notes
    -----
    ``np.argpartition`` selects the candidates in O(n_items) per row; only rows with a tie
    at the cut-off get a second pass; then the ``k`` selected items are sorted. With
    ``k >= n_items`` the rows are sorted whole.
    """
    scores = check_scores(scores)
    k = non_negative_int("k", k)
    exclude = as_bool_csr(exclude, scores.shape, "exclude")
    return top_k_masked(masked_scores(scores, exclude), k)


def top_k_row(
    row: np.ndarray, k: int, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k` of one score row; ``exclude`` lists item indices to leave out.

    Returns
    -------
    indices : numpy.ndarray of int64, shape (k,)
    scores : numpy.ndarray, shape (k,)
        As :func:`top_k`: ``-1`` / ``-inf`` padding at the end when fewer than ``k`` items
        are left (``indices >= 0`` selects the real ones).
    """
    scores = check_scores(np.asarray(row)[None, :])
    k = non_negative_int("k", k)
    if exclude is not None and len(exclude):
        scores = scores.copy()
        scores[0, np.asarray(exclude, dtype=np.int64)] = -np.inf
    indices, values = top_k_masked(scores, k)
    return indices[0], values[0]


def merge_top_k(indices: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of each row's candidates, by the top-k rule, padded to ``k``.

    Merges per-shard top-k lists (put side by side) and re-ranks the candidates of an
    approximate search. Index ``-1`` marks a missing candidate; it sorts last whatever its
    score, and comes back as padding (``-1``, ``-inf``). A row must not repeat an item.

    Parameters
    ----------
    indices : numpy.ndarray of int, shape (n_rows, n_candidates)
    scores : numpy.ndarray of float, shape (n_rows, n_candidates)
    k : int

    Returns
    -------
    indices : numpy.ndarray of int64, shape (n_rows, k)
    scores : numpy.ndarray, shape (n_rows, k), of the dtype of ``scores``
    """
    indices = np.asarray(indices, dtype=np.int64)
    missing = indices < 0
    scores = np.where(missing, -np.inf, scores).astype(np.asarray(scores).dtype, copy=False)
    # Sort by descending score, then by item index; a missing candidate sorts after every
    # real one with the same (-inf) score.
    tie_key = np.where(missing, np.iinfo(np.int64).max, indices)
    order = np.lexsort((tie_key, -scores), axis=-1)[:, :k]
    top_idx = np.take_along_axis(np.where(missing, -1, indices), order, 1)
    top_scores = np.take_along_axis(scores, order, 1)
    if top_idx.shape[1] < k:
        pad = k - top_idx.shape[1]
        top_idx = np.hstack([top_idx, np.full((len(top_idx), pad), -1, np.int64)])
        top_scores = np.hstack(
            [top_scores, np.full((len(top_scores), pad), -np.inf, top_scores.dtype)]
        )
    return top_idx, top_scores
