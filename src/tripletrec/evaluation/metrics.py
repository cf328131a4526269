"""Ranking metrics computed for many users at once.

Every function takes a dense block of scores (one row per user, one column per item), the
user's relevant (held-out) items and the items to exclude from the ranking (usually the
user's training positives) as sparse boolean matrices with the same rows, and returns one
value per user. Users without a relevant item get NaN; averaging is the caller's choice.

An item that is both relevant and excluded counts as excluded: it never appears in a
ranking and does not count as relevant. Nothing here loops over users or interactions in
Python, so a caller evaluates a large catalogue by passing blocks of users (chunks); the
memory of one call is a few copies of its block.

Rankings order items by descending score; equal scores are ordered by item index, lower
first (see :func:`top_k`). ``auc`` is the exception: it counts ties as one half, as
scikit-learn does. The formulas are in each function's docstring and in ``docs/metrics.md``.

Top-k selection is in :mod:`~tripletrec.evaluation.topk`, AUC in
:mod:`~tripletrec.evaluation.auc`, metric names in :mod:`~tripletrec.evaluation.names` and
coverage and popularity in :mod:`~tripletrec.evaluation.catalogue`; their public names are
importable from here as well.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from tripletrec._checks import positive_int
from tripletrec._keys import contains, pair_keys
from tripletrec.evaluation.auc import auc_from_masked, auc_per_user
from tripletrec.evaluation.catalogue import coverage_at_k, mean_popularity_at_k
from tripletrec.evaluation.names import (
    DEFAULT_METRICS,
    METRICS_AT_K,
    METRICS_FULL_RANKING,
    metric_key,
    parse_metric,
)
from tripletrec.evaluation.topk import as_bool_csr, check_scores, masked_scores, top_k, top_k_masked
from tripletrec.exceptions import DataError, ParameterError

# --------------------------------------------------------------------------------------
# Per-user metrics
# --------------------------------------------------------------------------------------


def _hits(indices: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """Boolean (n_users, width): is ``indices[u, j]`` a relevant item of row ``u``."""
    n_users, width = indices.shape
    n_items = relevant.shape[1]
    valid = indices >= 0
    if relevant.nnz == 0 or width == 0:
        return np.zeros((n_users, width), dtype=bool)
    if width * np.log2(relevant.nnz + 2) > n_items:
        # Many lookups per row: a dense boolean block of the chunk is cheaper.
        dense = relevant.toarray()
        return np.take_along_axis(dense, np.where(valid, indices, 0), axis=1) & valid
    # Few lookups: binary search in the sorted keys row * n_items + item of relevant entries.
    relevant.sum_duplicates()  # sorted indices, so the keys are increasing
    rows = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(relevant.indptr))
    keys = pair_keys(rows, relevant.indices, n_items)
    return contains(keys, pair_keys(np.arange(n_users)[:, None], indices, n_items)) & valid


def _metric_from_hits(base: str, k: int, hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    hits = hits[:, :k].astype(np.float64)
    n_hits = hits.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if base == "precision":
            values = n_hits / k
        elif base == "recall":
            values = n_hits / n_relevant
        elif base == "hit_rate":
            values = (n_hits > 0).astype(np.float64)
        elif base == "ndcg":
            discounts = 1.0 / np.log2(np.arange(2, k + 2))
            ideal = np.concatenate([[0.0], np.cumsum(discounts)])
            values = (hits @ discounts) / ideal[np.minimum(k, n_relevant)]
        elif base == "map":
            precision_at_rank = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
            values = (precision_at_rank * hits).sum(axis=1) / np.minimum(k, n_relevant)
        else:  # pragma: no cover - parse_metric rejects anything else
            raise ValueError(f"unknown metric {base!r}")
    values[n_relevant == 0] = np.nan
    return values


def _reciprocal_rank(masked: np.ndarray, relevant: sp.csr_matrix, hits: np.ndarray) -> np.ndarray:
    n_users, n_items = masked.shape
    n_relevant = np.diff(relevant.indptr)
    result = np.full(n_users, np.nan)
    found = np.zeros(n_users, dtype=bool)
    if hits.shape[1]:
        # The first relevant item is already in the top-k for these rows.
        found = hits.any(axis=1)
        result[found] = 1.0 / (hits[found].argmax(axis=1) + 1)
    rest = np.flatnonzero(~found & (n_relevant > 0))
    if rest.size:
        # The best relevant item: highest score, lowest index among equal scores. Its rank is
        # 1 + #(items scored higher) + #(items scored the same with a lower index); excluded
        # items are -inf and never count.
        sub = relevant[rest]
        counts = np.diff(sub.indptr)
        rows = np.repeat(np.arange(rest.size), counts)
        cols = sub.indices
        values = masked[rest[rows], cols]
        order = np.lexsort((cols, -values, rows))
        first = order[np.concatenate([[0], np.cumsum(counts)[:-1]])]
        best_value = values[first][:, None]
        best_item = cols[first][:, None]
        block = masked[rest]
        above = np.count_nonzero(block > best_value, axis=1)
        tied_before = np.count_nonzero(
            (block == best_value) & (np.arange(n_items) < best_item), axis=1
        )
        result[rest] = 1.0 / (1 + above + tied_before)
    return result


def _compute(
    scores: np.ndarray,
    relevant: sp.spmatrix,
    exclude: sp.spmatrix | None,
    parsed: Sequence[tuple[str, int | None]],
    top_items: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    scores = check_scores(scores)
    relevant = as_bool_csr(relevant, scores.shape, "relevant")
    exclude = as_bool_csr(exclude, scores.shape, "exclude")
    relevant = (relevant > exclude).tocsr()  # relevant and not excluded
    n_relevant = np.diff(relevant.indptr)
    max_k = max((k for _, k in parsed if k is not None), default=0)

    masked = masked_scores(scores, exclude)
    hits = np.zeros((scores.shape[0], 0), dtype=bool)
    if max_k:
        if top_items is None:
            indices = top_k_masked(masked, max_k)[0]
        else:
            indices = np.asarray(top_items)
            if indices.ndim != 2 or indices.shape[0] != scores.shape[0]:
                raise DataError(
                    f"top_items has shape {indices.shape}, expected ({scores.shape[0]}, >= {max_k})"
                )
            if indices.shape[1] < max_k:
                raise DataError(f"top_items has {indices.shape[1]} columns, need {max_k}")
            if not np.issubdtype(indices.dtype, np.integer):
                raise DataError("top_items must hold integer item indices")
            indices = indices[:, :max_k]
            if (indices >= scores.shape[1]).any() or (indices < -1).any():
                raise DataError("top_items holds item indices outside [-1, n_items)")
        hits = _hits(indices, relevant)

    result: dict[str, np.ndarray] = {}
    for base, k in parsed:
        key = metric_key(base, k)
        if key in result:
            continue
        if base == "auc":
            result[key] = auc_from_masked(masked, relevant, exclude, in_place=False)
        elif base == "mrr":
            result[key] = _reciprocal_rank(masked, relevant, hits)
        else:
            result[key] = _metric_from_hits(base, k, hits, n_relevant)
    return result


def ranking_metrics(
    scores: np.ndarray,
    relevant: sp.spmatrix,
    exclude: sp.spmatrix | None = None,
    k: int = 10,
    metrics: Iterable[str] = DEFAULT_METRICS,
    *,
    top_items: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Several per-user ranking metrics from one top-k selection.

    The top ``K`` items of every row are selected once, ``K`` the largest cut-off asked
    for, and every ``@k`` metric is read off the first ``k`` of them. See the single-metric
    functions for the formulas.

    Parameters
    ----------
    scores : numpy.ndarray, shape (n_users, n_items)
    relevant : sparse matrix, shape (n_users, n_items)
        Non-zero where the item is a held-out positive of the user.
    exclude : sparse matrix, shape (n_users, n_items), optional
        Items left out of each ranking (usually the training positives). An item both
        relevant and excluded is excluded.
    k : int, default 10
        Cut-off of the metric names given without ``@k``.
    metrics : iterable of str
        Names such as ``"auc"``, ``"precision@10"``, ``"recall"``, ``"ndcg@20"``,
        ``"map@10"``, ``"mrr"``, ``"hit_rate@10"`` (see :func:`parse_metric`). Cut-offs may
        differ between metrics.
    top_items : numpy.ndarray of int, shape (n_users, >= K), optional
        The result of ``top_k(scores, K, exclude)[0]`` when the caller already has it (for
        instance to compute :func:`coverage_at_k` too); it is used instead of selecting
        again. It must have been computed from the same scores and exclusions.

    Returns
    -------
    dict of str to numpy.ndarray of float64, shape (n_users,)
        Keyed by canonical name (``"ndcg"`` with ``k=10`` becomes ``"ndcg@10"``), in the
        order asked for. NaN for users without a relevant (non-excluded) item.
    """
    k = positive_int("k", k)
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    if not names:
        raise ParameterError("no metric asked for")
    parsed = [parse_metric(name, default_k=k) for name in names]
    return _compute(scores, relevant, exclude, parsed, top_items)


def precision_at_k(
    scores: np.ndarray, relevant: sp.spmatrix, exclude: sp.spmatrix | None = None, k: int = 10
) -> np.ndarray:
    r"""Fraction of each user's top ``k`` items that are relevant.

    .. math:: \mathrm{P@k}(u) = \frac{1}{k} \sum_{j=1}^{k} \mathrm{rel}_u(j)

    where ``rel_u(j)`` is 1 if the item at rank ``j`` of ``u``'s ranking (excluded items
    removed, ties by lower item index) is relevant, else 0. The denominator is always
    ``k``, even when fewer than ``k`` items remain after exclusion (padding counts as a
    miss), so a user with fewer than ``k`` relevant items cannot reach 1.

    Parameters
    ----------
    scores : numpy.ndarray, shape (n_users, n_items)
    relevant : sparse matrix, shape (n_users, n_items)
    exclude : sparse matrix, shape (n_users, n_items), optional
    k : int, default 10

    Returns
    -------
    numpy.ndarray of float64, shape (n_users,)
        NaN where a user has no relevant non-excluded item.
    """
    return _compute(scores, relevant, exclude, [("precision", positive_int("k", k))])[
        metric_key("precision", k)
    ]


def recall_at_k(
    scores: np.ndarray, relevant: sp.spmatrix, exclude: sp.spmatrix | None = None, k: int = 10
) -> np.ndarray:
    r"""Fraction of each user's relevant items found in the top ``k``.

    .. math:: \mathrm{R@k}(u) = \frac{1}{|R_u|} \sum_{j=1}^{k} \mathrm{rel}_u(j)

    with ``R_u`` the user's relevant, non-excluded items. The denominator is ``|R_u|``,
    not ``min(k, |R_u|)``: a user with more than ``k`` relevant items cannot reach 1. The
    alternative divides by ``min(k, |R_u|)`` so that a perfect ranking always scores 1;
    ``implicit``'s ``precision_at_k`` is that variant, pooled over users
    (``sum_u hits_u / sum_u min(k, |R_u|)``).

    Parameters
    ----------
    scores : numpy.ndarray, shape (n_users, n_items)
    relevant : sparse matrix, shape (n_users, n_items)
    exclude : sparse matrix, shape (n_users, n_items), optional
    k : int, default 10

    Returns
    -------
    numpy.ndarray of float64, shape (n_users,)
        NaN where a user has no relevant non-excluded item.
    """
    return _compute(scores, relevant, exclude, [("recall", positive_int("k", k))])[
        metric_key("recall", k)
    ]


def ndcg_at_k(
    scores: np.ndarray, relevant: sp.spmatrix, exclude: sp.spmatrix | None = None, k: int = 10
) -> np.ndarray:
    r"""Normalised discounted cumulative gain of each user's top ``k``, binary gains.

    .. math::

        \mathrm{DCG@k}(u) = \sum_{j=1}^{k} \frac{\mathrm{rel}_u(j)}{\log_2(j + 1)}, \qquad
        \mathrm{IDCG@k}(u) = \sum_{j=1}^{\min(k, |R_u|)} \frac{1}{\log_2(j + 1)}, \qquad
        \mathrm{NDCG@k}(u) = \frac{\mathrm{DCG@k}(u)}{\mathrm{IDCG@k}(u)}

    Equal to ``sklearn.metrics.ndcg_score(y_true, y_score, k=k, ignore_ties=True)`` on the
    non-excluded items when the scores have no ties (with ties, scikit-learn orders the
    tied items differently).

    Parameters
    ----------
    scores : numpy.ndarray, shape (n_users, n_items)
    relevant : sparse matrix, shape (n_users, n_items)
    exclude : sparse matrix, shape (n_users, n_items), optional
    k : int, default 10

    Returns
    -------
    numpy.ndarray of float64, shape (n_users,)
        NaN where a user has no relevant non-excluded item.
    """
    return _compute(scores, relevant, exclude, [("ndcg", positive_int("k", k))])[
        metric_key("ndcg", k)
    ]


def map_at_k(
    scores: np.ndarray, relevant: sp.spmatrix, exclude: sp.spmatrix | None = None, k: int = 10
) -> np.ndarray:
    r"""Average precision of each user's ranking, truncated at ``k``.

    .. math::

        \mathrm{AP@k}(u) = \frac{1}{\min(k, |R_u|)} \sum_{j=1}^{k}
            \mathrm{rel}_u(j) \, \mathrm{P@j}(u)

    The normaliser ``min(k, |R_u|)`` is the number of hits a perfect top-``k`` holds, so a
    perfect ranking scores 1 (dividing by ``|R_u|`` instead would cap users with many
    relevant items below 1). The mean over users is MAP@k. With ``k >= n_items`` (no
    truncation) and no tied scores this equals ``sklearn.metrics.average_precision_score``
    on the non-excluded items.

    Parameters
    ----------
    scores : numpy.ndarray, shape (n_users, n_items)
    relevant : sparse matrix, shape (n_users, n_items)
    exclude : sparse matrix, shape (n_users, n_items), optional
    k : int, default 10

    Returns
    -------
    numpy.ndarray of float64, shape (n_users,)
        NaN where a user has no relevant non-excluded item.
    """
    return _compute(scores, relevant, exclude, [("map", positive_int("k", k))])[
        metric_key("map", k)
    ]


def hit_rate_at_k(
    scores: np.ndarray, relevant: sp.spmatrix, exclude: sp.spmatrix | None = None, k: int = 10
) -> np.ndarray:
    r"""1 if at least one relevant item is in the user's top ``k``, else 0.

    .. math:: \mathrm{HR@k}(u) = \mathbb{1}\left[\sum_{j=1}^{k} \mathrm{rel}_u(j) > 0\right]

    Parameters
    ----------
    scores : numpy.ndarray, shape (n_users, n_items)
    relevant : sparse matrix, shape (n_users, n_items)
    exclude : sparse matrix, shape (n_users, n_items), optional
    k : int, default 10

    Returns
    -------
    numpy.ndarray of float64, shape (n_users,)
        NaN where a user has no relevant non-excluded item.
    """
    return _compute(scores, relevant, exclude, [("hit_rate", positive_int("k", k))])[
        metric_key("hit_rate", k)
    ]


def mrr(
    scores: np.ndarray, relevant: sp.spmatrix, exclude: sp.spmatrix | None = None
) -> np.ndarray:
    r"""Reciprocal rank of the first relevant item in each user's full ranking.

    .. math:: \mathrm{RR}(u) = \frac{1}{\min\{j : \mathrm{rel}_u(j) = 1\}}

    over the whole ranking of the non-excluded items (not truncated at any ``k``), ties
    ordered by lower item index as in :func:`top_k`. The mean over users is the MRR.

    Parameters
    ----------
    scores : numpy.ndarray, shape (n_users, n_items)
    relevant : sparse matrix, shape (n_users, n_items)
    exclude : sparse matrix, shape (n_users, n_items), optional

    Returns
    -------
    numpy.ndarray of float64, shape (n_users,)
        NaN where a user has no relevant non-excluded item.
    """
    return _compute(scores, relevant, exclude, [("mrr", None)])["mrr"]


__all__ = [
    "DEFAULT_METRICS",
    "METRICS_AT_K",
    "METRICS_FULL_RANKING",
    "auc_per_user",
    "coverage_at_k",
    "hit_rate_at_k",
    "map_at_k",
    "mean_popularity_at_k",
    "metric_key",
    "mrr",
    "ndcg_at_k",
    "parse_metric",
    "precision_at_k",
    "ranking_metrics",
    "recall_at_k",
    "top_k",
]
