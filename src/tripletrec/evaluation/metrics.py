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
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from tripletrec.exceptions import DataError

#: Per-user metrics that need a cut-off ``k`` (``"ndcg@20"``); a bare name uses the default.
METRICS_AT_K: tuple[str, ...] = ("precision", "recall", "ndcg", "map", "hit_rate")
#: Per-user metrics over the full ranking; they take no ``@k``.
METRICS_FULL_RANKING: tuple[str, ...] = ("auc", "mrr")
#: What :func:`ranking_metrics` computes when ``metrics`` is not given.
DEFAULT_METRICS: tuple[str, ...] = (
    "auc",
    "precision",
    "recall",
    "ndcg",
    "map",
    "mrr",
    "hit_rate",
)


def _check_float_scores(scores: np.ndarray) -> np.ndarray:
    """Validated scores: float32 and float64 as given (no copy), anything else as float64.

    Converting float32 to float64 is exact and keeps the order, so no result depends on it.
    """
    scores = np.asarray(scores)
    if scores.dtype not in (np.float32, np.float64):
        scores = scores.astype(np.float64)
    if scores.ndim != 2:
        raise DataError(f"scores must be a 2-d array (users x items), got shape {scores.shape}")
    if not np.isfinite(scores).all():
        raise DataError("scores contain NaN or infinite values; the model diverged")
    return scores


def _as_bool_csr(matrix: sp.spmatrix | None, shape: tuple[int, int], name: str) -> sp.csr_matrix:
    if matrix is None:
        return sp.csr_matrix(shape, dtype=bool)
    matrix = sp.csr_matrix(matrix, dtype=bool, copy=True)  # never modify the caller's matrix
    if matrix.shape != shape:
        raise DataError(f"{name} has shape {matrix.shape}, scores have shape {shape}")
    matrix.eliminate_zeros()
    matrix.sum_duplicates()  # one entry per (row, item), sorted: row counts are nnz per row
    return matrix


def _check_k(k: int, name: str = "k", *, allow_zero: bool = False) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {k!r}")
    low = 0 if allow_zero else 1
    if k < low:
        raise ValueError(f"{name} must be >= {low}, got {k}")
    return int(k)


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


def _auc(
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
    scores = _check_float_scores(scores)
    relevant = _as_bool_csr(relevant, scores.shape, "relevant")
    exclude = _as_bool_csr(exclude, scores.shape, "exclude")
    relevant = (relevant > exclude).tocsr()  # relevant and not excluded
    masked = _masked_scores(scores, exclude)
    return _auc(masked, relevant, exclude, in_place=masked is not scores)


# --------------------------------------------------------------------------------------
# Top-k selection
# --------------------------------------------------------------------------------------


def _masked_scores(scores: np.ndarray, exclude: sp.csr_matrix) -> np.ndarray:
    """``scores`` with excluded entries set to -inf (a copy only when something is excluded)."""
    if exclude.nnz == 0:
        return scores
    masked = scores.copy()
    rows, cols = exclude.nonzero()
    masked[rows, cols] = -np.inf
    return masked


def _top_k_masked(masked: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` of finite-or-(-inf) scores; -inf entries are padding (index -1)."""
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
    scores = _check_float_scores(scores)
    k = _check_k(k, allow_zero=True)
    exclude = _as_bool_csr(exclude, scores.shape, "exclude")
    return _top_k_masked(_masked_scores(scores, exclude), k)


# --------------------------------------------------------------------------------------
# Metric names
# --------------------------------------------------------------------------------------


def parse_metric(name: str, default_k: int = 10) -> tuple[str, int | None]:
    """Split a metric name such as ``"ndcg@20"`` into its base name and cut-off.

    Parameters
    ----------
    name : str
        ``"<base>@<k>"`` or ``"<base>"``, case-insensitive. Bases with a cut-off are
        ``precision``, ``recall``, ``ndcg``, ``map`` and ``hit_rate``; ``auc`` and ``mrr``
        use the full ranking and take no ``@k``.
    default_k : int, default 10
        The cut-off of a base name given without ``@k``.

    Returns
    -------
    base : str
    k : int or None
        None for ``auc`` and ``mrr``.

    Examples
    --------
    >>> parse_metric("NDCG@20")
    ('ndcg', 20)
    >>> parse_metric("recall", default_k=5)
    ('recall', 5)
    >>> parse_metric("mrr")
    ('mrr', None)
    """
    if not isinstance(name, str):
        raise ValueError(f"metric names are strings, got {name!r}")
    base, sep, k_text = name.strip().lower().partition("@")
    base = base.strip()
    known = METRICS_AT_K + METRICS_FULL_RANKING
    if base not in known:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(known)}")
    if base in METRICS_FULL_RANKING:
        if sep:
            raise ValueError(f"{base} uses the full ranking and takes no @k (got {name!r})")
        return base, None
    if not sep:
        return base, _check_k(default_k, "default_k")
    k_text = k_text.strip()
    if not k_text.isdigit():
        raise ValueError(f"the cut-off in {name!r} must be a positive integer")
    return base, _check_k(int(k_text), f"the cut-off in {name!r}")


def metric_key(base: str, k: int | None) -> str:
    """The canonical name of a parsed metric: ``metric_key("ndcg", 20) == "ndcg@20"``."""
    return base if k is None else f"{base}@{k}"


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
    keys = rows * n_items + relevant.indices
    queries = np.arange(n_users, dtype=np.int64)[:, None] * n_items + indices
    found = np.minimum(np.searchsorted(keys, queries), keys.size - 1)
    return (keys[found] == queries) & valid


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
    scores = _check_float_scores(scores)
    relevant = _as_bool_csr(relevant, scores.shape, "relevant")
    exclude = _as_bool_csr(exclude, scores.shape, "exclude")
    relevant = (relevant > exclude).tocsr()  # relevant and not excluded
    n_relevant = np.diff(relevant.indptr)
    max_k = max((k for _, k in parsed if k is not None), default=0)

    masked = _masked_scores(scores, exclude)
    hits = np.zeros((scores.shape[0], 0), dtype=bool)
    if max_k:
        if top_items is None:
            indices = _top_k_masked(masked, max_k)[0]
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
            result[key] = _auc(masked, relevant, exclude, in_place=False)
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
    k = _check_k(k)
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    if not names:
        raise ValueError("no metric asked for")
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
    return _compute(scores, relevant, exclude, [("precision", _check_k(k))])[
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
    return _compute(scores, relevant, exclude, [("recall", _check_k(k))])[metric_key("recall", k)]


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
    return _compute(scores, relevant, exclude, [("ndcg", _check_k(k))])[metric_key("ndcg", k)]


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
    return _compute(scores, relevant, exclude, [("map", _check_k(k))])[metric_key("map", k)]


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
    return _compute(scores, relevant, exclude, [("hit_rate", _check_k(k))])[
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


# --------------------------------------------------------------------------------------
# Catalogue-level metrics of the recommended lists
# --------------------------------------------------------------------------------------


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
    n_items = _check_k(n_items, "n_items")
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
