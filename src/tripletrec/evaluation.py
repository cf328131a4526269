"""Evaluate a fitted recommender on held-out interactions with full ranking.

The protocol is the reference notebook's: for every user with at least one test positive,
rank *all* items except that user's training positives, compute each metric against the
test positives, and average over those users.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from tripletrec.base import RecommenderBase
from tripletrec.data import Interactions
from tripletrec.exceptions import DataError
from tripletrec.metrics import metric_key, parse_metric, ranking_metrics

#: Users evaluated per block: bounds memory at about this x n_items scores.
EVAL_CHUNK_USERS = 4096


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

    Returns
    -------
    dict
        The mean of each metric over users with at least one test positive, keyed by
        canonical name (``"ndcg"`` becomes ``"ndcg@10"``), plus ``n_users`` (how many
        users were evaluated).
    """
    relevant = interactions_matrix(model, test)
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    if len(users) == 0:
        raise DataError("no user has a test positive to evaluate")
    exclude = None
    if exclude_train and train is not None:
        exclude = interactions_matrix(model, train)

    names = [metric_key(*parse_metric(name)) for name in metrics]  # "NDCG" -> "ndcg@10"
    values: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for start in range(0, len(users), EVAL_CHUNK_USERS):
        rows = users[start : start + EVAL_CHUNK_USERS]
        scores = model.score_indices(rows)
        block = ranking_metrics(
            scores, relevant[rows], None if exclude is None else exclude[rows], metrics=names
        )
        for name in names:
            values[name].append(block[name])
    per_user_values = {name: np.concatenate(parts) for name, parts in values.items()}
    result: dict = {name: float(np.nanmean(v)) for name, v in per_user_values.items()}
    result["n_users"] = len(users)
    if per_user:
        result["per_user"] = per_user_values
        result["users"] = model.user_map_.to_raw(users)
    return result
