"""Evaluate a fitted recommender on held-out interactions.

:func:`evaluate` is the full-ranking protocol (the reference notebook's): for every user
with at least one test positive, rank *all* items except that user's training positives,
compute each metric against the test positives, and average over those users.

:func:`evaluate_sampled` is the sampled protocol of the NCF paper (He et al., 2017): each
held-out positive is ranked among a few (99) sampled negatives only. It is cheaper and
widely reported, but it can order models differently from full ranking (Krichene & Rendle,
2020); see ``docs/protocols.md``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from tripletrec._checks import positive_int
from tripletrec._keys import contains, pair_keys
from tripletrec.data.interactions import Interactions
from tripletrec.evaluation.metrics import metric_key, parse_metric, ranking_metrics
from tripletrec.exceptions import DataError, ParameterError

if TYPE_CHECKING:
    from tripletrec.models.base import RecommenderBase

#: Users evaluated per block at most; fewer on large catalogues (:data:`EVAL_BLOCK_SCORES`).
EVAL_CHUNK_USERS = 4096
#: Scores (users x items) per block at most: a block's scores and the metrics' temporary
#: arrays stay near a gigabyte at any catalogue size (4,096 users up to 4,096 items,
#: 409 on Gowalla's 41k, 83 on 200k).
EVAL_BLOCK_SCORES = 1 << 24


#: Scores (users x items) a command-line evaluation computes at most
#: (:func:`evaluation_users`): every data set up to Gowalla (29,858 x 40,981) is evaluated
#: whole; beyond, a sample keeps the evaluation's time from growing with users x items.
EVAL_SCORE_BUDGET = 2_000_000_000


def evaluation_users(n_items: int, budget: int = EVAL_SCORE_BUDGET) -> int:
    """The users a command-line evaluation ranks the catalogue of ``n_items`` items for, at
    most: ``budget // n_items``, so that its time stops growing with users x items (10,000
    users at 200,000 items)."""
    return max(1, budget // max(n_items, 1))


def users_per_block(n_columns: int) -> int:
    """Users scored together when each has ``n_columns`` scores."""
    return max(1, min(EVAL_CHUNK_USERS, EVAL_BLOCK_SCORES // max(n_columns, 1)))


def interactions_matrix(model: RecommenderBase, data: Interactions | sp.spmatrix) -> sp.csr_matrix:
    """``data`` as a binary CSR matrix in ``model``'s index space.

    Interactions built with other id maps (for example data reloaded from disk) are
    translated through their raw ids; rows whose user or item the model does not know are
    dropped, since the model cannot rank them.
    """
    shape = (model.n_users_, model.n_items_)
    if sp.issparse(data):
        if data.shape != shape:
            raise DataError(f"matrix has shape {data.shape}, the model is {shape}")
        matrix = sp.csr_matrix(data, dtype=np.float32)
    elif isinstance(data, Interactions):
        if data.user_map == model.user_map_ and data.item_map == model.item_map_:
            users, items = data.users, data.items
        else:
            users = model.user_map_.to_index(data.user_map.to_raw(data.users), strict=False)
            items = model.item_map_.to_index(data.item_map.to_raw(data.items), strict=False)
            known = (users >= 0) & (items >= 0)
            users, items = users[known], items[known]
        matrix = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=shape)
    else:
        raise DataError(f"expected Interactions or a sparse matrix, got {type(data).__name__}")
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def evaluate(
    model: RecommenderBase,
    train: Interactions | sp.spmatrix | None,
    test: Interactions | sp.spmatrix,
    metrics: Sequence[str] = ("auc",),
    *,
    exclude_train: bool = True,
    per_user: bool = False,
    items: Sequence | np.ndarray | None = None,
    progress: bool = False,
    max_users: int | None = None,
    random_state: int | None = 0,
) -> dict:
    """Full-ranking metrics of ``model`` on ``test``.

    Parameters
    ----------
    model : RecommenderBase
        A fitted recommender.
    train : Interactions or sparse matrix or None
        The training positives, excluded from each user's ranking when ``exclude_train``.
    test : Interactions or sparse matrix
        The held-out positives.
    metrics : sequence of str
        Metric names: ``"auc"``, ``"precision@10"``, ``"recall@10"``, ``"ndcg@10"``,
        ``"map@10"``, ``"mrr"``, ``"hit_rate@10"`` (any cut-off after ``@``).
    exclude_train : bool, default True
        Leave the user's training positives out of their ranking.
    per_user : bool, default False
        Also return the per-user values under ``"per_user"`` (with ``"users"``, the raw
        ids of the evaluated users).
    items : array-like of raw item ids, optional
        Rank these items only, instead of the whole catalogue (the cold-item protocol:
        the held-out items, see :func:`tripletrec.data.splits.cold_item_split`). Test
        positives outside them are ignored.
    progress : bool, default False
        Show a progress bar over the users (tqdm) when they take more than one block of
        :func:`users_per_block`.
    max_users : int, optional
        Evaluate a uniform random sample of this many of the users with a test positive
        (all of them if fewer), drawn with ``random_state``: unbiased estimates of the
        means, at a cost bounded whatever the number of users (:func:`evaluation_users`).
        None evaluates every user.
    random_state : int or None, default 0
        Seed of that sample.

    Returns
    -------
    dict
        The mean of each metric over users with at least one test positive, keyed by
        canonical name (``"ndcg"`` becomes ``"ndcg@10"``), plus ``n_users`` (how many
        users were evaluated) and ``n_test_users`` (how many have a test positive).
    """
    relevant = interactions_matrix(model, test)
    candidates = None
    if items is not None:
        candidates = model.item_map_.to_index(np.asarray(items))
        relevant = relevant[:, candidates]
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    if len(users) == 0:
        raise DataError("no user has a test positive to evaluate")
    n_test_users = len(users)
    if max_users is not None and positive_int("max_users", max_users) < len(users):
        sample = np.random.default_rng(random_state).choice(len(users), max_users, replace=False)
        users = users[np.sort(sample)]
    exclude = None
    if exclude_train and train is not None:
        exclude = interactions_matrix(model, train)
        if candidates is not None:
            exclude = exclude[:, candidates]

    names = [metric_key(*parse_metric(name)) for name in metrics]  # "NDCG" -> "ndcg@10"
    values: dict[str, list[np.ndarray]] = {name: [] for name in names}
    step = users_per_block(model.n_items_ if candidates is None else len(candidates))
    shown = progress and len(users) > step
    with tqdm(total=len(users), desc="evaluating", unit="user", disable=not shown) as bar:
        for start in range(0, len(users), step):
            rows = users[start : start + step]
            scores = model.score_indices(rows, candidates)
            block = ranking_metrics(
                scores, relevant[rows], None if exclude is None else exclude[rows], metrics=names
            )
            for name in names:
                values[name].append(block[name])
            bar.update(len(rows))
    per_user_values = {name: np.concatenate(parts) for name, parts in values.items()}
    result: dict = {name: float(np.nanmean(v)) for name, v in per_user_values.items()}
    result["n_users"] = len(users)
    result["n_test_users"] = n_test_users
    if per_user:
        result["per_user"] = per_user_values
        result["users"] = model.user_map_.to_raw(users)
    return result


SAMPLED_METRICS_WARNING = (
    "sampled metrics (each positive ranked among a few sampled negatives) can rank models "
    "differently from full-ranking metrics (Krichene & Rendle, 2020, 'On Sampled Metrics "
    "for Item Recommendation'); report full-ranking metrics to compare models"
)


def evaluate_sampled(
    model: RecommenderBase,
    train: Interactions | sp.spmatrix | None,
    test: Interactions | sp.spmatrix,
    n_negatives: int = 99,
    k: int | Sequence[int] = 10,
    random_state: int | None = 0,
) -> dict:
    """The NCF paper's sampled protocol: each test positive ranked among sampled negatives.

    Every test row (a user and a held-out positive, typically from
    :func:`~tripletrec.data.splits.leave_last_k_out` with ``k=1``) is one case: ``n_negatives``
    distinct items the user never interacted with, in ``train`` or in ``test``, are drawn
    uniformly, and the held-out item is ranked among them by the model's scores (equal
    scores ordered by item index, as in full ranking). Emits a ``UserWarning``: sampled
    metrics can rank models differently from full ranking (Krichene & Rendle, 2020).

    Parameters
    ----------
    model : RecommenderBase
        A fitted recommender.
    train : Interactions or sparse matrix or None
        The training positives, never drawn as negatives.
    test : Interactions or sparse matrix
        The held-out positives; one row per case.
    n_negatives : int, default 99
        Negatives per case.
    k : int or sequence of int, default 10
        Cut-off(s) of the hit rate and NDCG; several share one draw of negatives.
    random_state : int or None, default 0
        Seed of the negative sampling.

    Returns
    -------
    dict
        ``hit_rate@k`` and ``ndcg@k`` (for each cut-off) averaged over cases,
        ``n_cases``, ``n_users`` and ``n_negatives``.

    Raises
    ------
    DataError
        When there is no test row, or a user has fewer than ``n_negatives`` items left to
        sample from.
    """
    n_negatives = positive_int("n_negatives", n_negatives)
    cutoffs = _cutoffs(k)
    relevant = interactions_matrix(model, test).tocoo()
    users, positives = relevant.row.astype(np.int64), relevant.col.astype(np.int64)
    if len(users) == 0:
        raise DataError("no test positive to evaluate")
    forbidden = relevant.tocsr()
    if train is not None:
        forbidden = forbidden + interactions_matrix(model, train)
    forbidden.sum_duplicates()
    available = model.n_items_ - np.diff(forbidden.indptr)[users]
    if (available < n_negatives).any():
        user = model.user_map_.to_raw(users[np.argmax(available < n_negatives)])
        raise DataError(
            f"user {user!r} has only {int(available.min())} item(s) never interacted with, "
            f"fewer than n_negatives={n_negatives}"
        )
    rng = np.random.default_rng(random_state)
    negatives = _sample_negatives(users, forbidden, n_negatives, rng)
    warnings.warn(SAMPLED_METRICS_WARNING, UserWarning, stacklevel=2)
    result = _sampled_ranking(model, users, positives, negatives, cutoffs)
    result["n_users"] = len(np.unique(users))
    return result


def evaluate_candidates(
    model: RecommenderBase,
    users: np.ndarray,
    positives: np.ndarray,
    negatives: np.ndarray,
    k: int | Sequence[int] = 10,
) -> dict:
    """Rank each positive among given negatives (raw ids), as in NCF's published test files.

    Parameters
    ----------
    model : RecommenderBase
        A fitted recommender.
    users, positives : array-like of raw ids, shape (n_cases,)
        The user and the held-out item of each case.
    negatives : array-like of raw item ids, shape (n_cases, n_negatives)
        The items each positive competes with.
    k : int or sequence of int, default 10
        Cut-off(s) of the hit rate and NDCG.

    Returns
    -------
    dict
        ``hit_rate@k``, ``ndcg@k``, ``n_cases``, ``n_users`` and ``n_negatives``.
    """
    cutoffs = _cutoffs(k)
    negatives = np.asarray(negatives)
    if negatives.ndim != 2 or len(negatives) != len(positives) or len(users) != len(positives):
        raise DataError(
            "negatives must have one row per case: got users "
            f"{len(users)}, positives {len(positives)}, negatives {negatives.shape}"
        )
    user_idx = model.user_map_.to_index(np.asarray(users))
    positive_idx = model.item_map_.to_index(np.asarray(positives))
    negative_idx = model.item_map_.to_index(negatives.ravel()).reshape(negatives.shape)
    warnings.warn(SAMPLED_METRICS_WARNING, UserWarning, stacklevel=2)
    result = _sampled_ranking(model, user_idx, positive_idx, negative_idx, cutoffs)
    result["n_users"] = len(np.unique(user_idx))
    return result


def _cutoffs(k: int | Sequence[int]) -> list[int]:
    values = [k] if isinstance(k, (int, np.integer)) or not isinstance(k, Sequence) else k
    if len(values) == 0:
        raise ParameterError("k names no cut-off")
    return sorted({positive_int("k", value) for value in values})


def _sample_negatives(
    users: np.ndarray, forbidden: sp.csr_matrix, n_negatives: int, rng: np.random.Generator
) -> np.ndarray:
    """``n_negatives`` distinct items per case outside the user's ``forbidden`` row.

    In a large catalogue, cases with plenty of allowed items use rejection sampling for
    all of them at once (draw, then redraw only the slots that hit a forbidden item or
    repeat an earlier slot of the same case). Cases where rejection would need many rounds
    (few allowed items), and every case of a small catalogue, take the ``n_negatives``
    allowed items with the smallest random keys instead, in blocks of rows.
    """
    n_items = forbidden.shape[1]
    available = n_items - np.diff(forbidden.indptr)[users]
    scarce = (available < 2 * n_negatives) | (available < n_items // 2)
    if n_items <= 16 * n_negatives:
        # A small catalogue: keys for every item cost little more than the negatives.
        scarce[:] = True
    negatives = np.empty((len(users), n_negatives), dtype=np.int64)
    easy = np.flatnonzero(~scarce)
    if len(easy):
        negatives[easy] = _rejection_sample(users[easy], forbidden, n_negatives, rng)
    hard = np.flatnonzero(scarce)
    block = max(1, (1 << 22) // n_items)  # about 32 MB of float64 keys per block
    for start in range(0, len(hard), block):
        cases = hard[start : start + block]
        keys = rng.random((len(cases), n_items))
        rows = forbidden[users[cases]]
        keys[np.repeat(np.arange(len(cases)), np.diff(rows.indptr)), rows.indices] = 2.0
        negatives[cases] = np.argpartition(keys, n_negatives - 1, axis=1)[:, :n_negatives]
    return negatives


def _rejection_sample(
    users: np.ndarray, forbidden: sp.csr_matrix, n_negatives: int, rng: np.random.Generator
) -> np.ndarray:
    n_items = forbidden.shape[1]
    forbidden_keys = np.sort(pair_keys(*forbidden.nonzero(), n_items))
    negatives = rng.integers(0, n_items, size=(len(users), n_negatives), dtype=np.int64)
    pending = np.arange(len(users))  # only rows that changed in the last round are rechecked
    while len(pending):
        rows = negatives[pending]
        keys = pair_keys(np.broadcast_to(users[pending, None], rows.shape), rows, n_items)
        redraw = contains(forbidden_keys, keys) | _repeats_in_row(rows)
        rows[redraw] = rng.integers(0, n_items, size=int(redraw.sum()), dtype=np.int64)
        negatives[pending] = rows
        pending = pending[redraw.any(axis=1)]
    return negatives


def _repeats_in_row(values: np.ndarray) -> np.ndarray:
    """True where a value already appeared earlier in its row (the first copy is kept)."""
    order = np.argsort(values, axis=1, kind="stable")
    ordered = np.take_along_axis(values, order, axis=1)
    repeat_sorted = np.zeros(values.shape, dtype=bool)
    repeat_sorted[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    repeats = np.empty_like(repeat_sorted)
    np.put_along_axis(repeats, order, repeat_sorted, axis=1)
    return repeats


def _sampled_ranking(
    model: RecommenderBase,
    users: np.ndarray,
    positives: np.ndarray,
    negatives: np.ndarray,
    cutoffs: list[int],
) -> dict:
    """Hit rate and NDCG at each cut-off of each positive ranked among its negatives."""
    ranks = np.empty(len(users), dtype=np.int64)
    step = users_per_block(model.n_items_)
    for start in range(0, len(users), step):
        block = slice(start, start + step)
        scores = model.score_indices(users[block])
        rows = np.arange(scores.shape[0])[:, None]
        positive_scores = scores[rows[:, 0], positives[block]][:, None]
        negative_scores = scores[rows, negatives[block]]
        # Ties are ordered by item index, lower first, as in full ranking.
        ahead = (negative_scores > positive_scores) | (
            (negative_scores == positive_scores) & (negatives[block] < positives[block, None])
        )
        ranks[block] = ahead.sum(axis=1)
    result: dict = {}
    for k in cutoffs:
        hit = ranks < k
        result[f"hit_rate@{k}"] = float(hit.mean())
        result[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
    result["n_cases"] = len(users)
    result["n_negatives"] = int(negatives.shape[1])
    return result
