"""Non-learned baselines behind the same estimator interface as the triplet models.

Every comparison needs a floor: :class:`RandomRecommender` (what chance gives),
:class:`PopularityRecommender` (the same ranking for everybody, by how many users liked an
item) and :class:`ItemKNNRecommender` (items similar, by cosine on the interaction matrix,
to those the user liked). They fit, score, recommend, evaluate, save and load exactly like
:class:`~tripletrec.TripletRecommender`, and their scores are deterministic.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from tripletrec._checks import finite_number, non_negative_int, positive_int
from tripletrec._hashing import mix64, splitmix64
from tripletrec.data.interactions import Interactions
from tripletrec.evaluation.topk import one_per_row, top_k
from tripletrec.models.base import RecommenderBase
from tripletrec.models.capabilities import Capabilities


class _BaselineMixin:
    """What the baselines share: the fit facts kept with a saved model."""

    fit_seconds_: float

    def _fit_summary(self) -> dict:
        return {"fit_seconds": self.fit_seconds_}


class RandomRecommender(_BaselineMixin, RecommenderBase):
    """Scores every (user, item) pair with a fixed pseudo-random number.

    The score of a pair is a hash of (seed, user index, item index), so it is the same in
    every call, in any batch, after save and load, and costs no memory per user.

    Parameters
    ----------
    random_state : int or None
        Seed of the scores; None draws one at fit time (kept in ``seed_``).

    Attributes
    ----------
    seed_ : int
        The seed the scores derive from.
    fit_seconds_ : float
        Wall time of the last ``fit``.
    """

    #: Dimension of the random item vectors behind ``similar_items``.
    N_ITEM_FACTORS = 16

    def __init__(self, random_state: int | None = None) -> None:
        self.random_state = random_state

    def fit(self, data: Interactions | sp.spmatrix) -> RandomRecommender:
        """Record the training data (to filter seen items); there is nothing to learn.

        Returns
        -------
        self
        """
        start = time.perf_counter()
        self._set_training_data(data)
        seed = self.random_state
        if seed is None:
            seed = int(np.random.default_rng().integers(2**63))
        self.seed_ = int(seed) % 2**63
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _score_block(self, user_idx: np.ndarray, item_idx: np.ndarray | None) -> np.ndarray:
        items = np.arange(self.n_items_) if item_idx is None else np.asarray(item_idx)
        users = np.asarray(user_idx, dtype=np.uint64)
        with np.errstate(over="ignore"):
            keys = (
                splitmix64(np.uint64(self.seed_))
                + users[:, None] * np.uint64(self.n_items_)
                + items.astype(np.uint64)[None, :]
            )
        # The top 24 bits of the hash give a uniform float32 in [0, 1) exactly.
        return (mix64(keys) >> np.uint64(40)).astype(np.float32) / np.float32(2**24)

    def _item_vectors(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed_)
        return rng.standard_normal((self.n_items_, self.N_ITEM_FACTORS)).astype(np.float32)

    def _model_state(self) -> dict[str, np.ndarray]:
        return {"seed": np.array([self.seed_], dtype=np.int64)}

    def _load_model_state(self, state: dict[str, np.ndarray], fit_summary: dict) -> None:
        self.seed_ = int(state["seed"][0])
        self.fit_seconds_ = float(fit_summary.get("fit_seconds", float("nan")))


class PopularityRecommender(_BaselineMixin, RecommenderBase):
    """Ranks items by their number of training positives, the same for every user.

    Equal counts are ordered by item index, as everywhere in tripletrec.
    ``similar_items`` returns the most popular other items (popularity has no notion of
    similarity).

    Attributes
    ----------
    popularity_ : numpy.ndarray of float32, shape (n_items,)
        Training positives per item.
    fit_seconds_ : float
        Wall time of the last ``fit``.
    """

    def __init__(self) -> None:
        pass

    def fit(self, data: Interactions | sp.spmatrix) -> PopularityRecommender:
        """Count each item's training positives.

        Returns
        -------
        self
        """
        start = time.perf_counter()
        seen = self._set_training_data(data)
        self.popularity_ = np.asarray(seen.sum(axis=0), dtype=np.float32).ravel()
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _score_block(self, user_idx: np.ndarray, item_idx: np.ndarray | None) -> np.ndarray:
        row = self.popularity_ if item_idx is None else self.popularity_[item_idx]
        return np.broadcast_to(row, (len(user_idx), len(row))).copy()

    def _item_vectors(self) -> np.ndarray:
        return self.popularity_[:, None].copy()

    def similar_items(self, items: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most popular items other than each query item.

        Returns
        -------
        item_ids : numpy.ndarray, shape (n_queries, k)
        scores : numpy.ndarray of float32, shape (n_queries, k)
            Popularity relative to the most popular item.
        """
        self._check_fitted()
        k = min(positive_int("k", k), self.n_items_)  # at most every item, as recommend
        item_idx = self.item_map_.to_index(items)
        relative = self.popularity_ / max(float(self.popularity_.max()), 1.0)
        scores = np.broadcast_to(relative, (len(item_idx), self.n_items_))
        idx, values = top_k(scores, k, exclude=one_per_row(item_idx, self.n_items_))
        return self._raw_items(idx), values

    def _model_state(self) -> dict[str, np.ndarray]:
        return {"popularity": self.popularity_}

    def _load_model_state(self, state: dict[str, np.ndarray], fit_summary: dict) -> None:
        popularity = np.asarray(state["popularity"], dtype=np.float32)
        if popularity.shape != (self.n_items_,):
            raise ValueError(f"popularity has shape {popularity.shape}, expected {self.n_items_}")
        self.popularity_ = popularity
        self.fit_seconds_ = float(fit_summary.get("fit_seconds", float("nan")))


class ItemKNNRecommender(_BaselineMixin, RecommenderBase):
    """Item-based k-nearest neighbours on the binary interaction matrix.

    The similarity of items ``i`` and ``j`` is the cosine of their user columns,
    ``|U_i & U_j| / (sqrt(|U_i| |U_j|) + shrinkage)``; each item keeps only its
    ``k_neighbours`` most similar items (ties by item index). A user's score for item ``i``
    is the sum of the similarities between ``i`` and the items the user liked:
    ``scores = X[users] @ S``, computed with sparse products.

    Parameters
    ----------
    k_neighbours : int, default 100
        Neighbours kept per item; 0 keeps all of them.
    shrinkage : float, default 0.0
        Added to the cosine's denominator, damping similarities built on few co-occurrences.

    Attributes
    ----------
    similarity_ : scipy.sparse.csr_matrix, shape (n_items, n_items)
        ``similarity_[j, i]``: how much liking ``j`` adds to the score of ``i``. Column
        ``i`` holds the kept neighbours of ``i``; the diagonal is zero.
    fit_seconds_ : float
        Wall time of the last ``fit``.
    """

    def capabilities(self) -> Capabilities:
        """Scores are sums over the user's training items, so they can be explained."""
        return Capabilities(explain=True)

    def __init__(self, k_neighbours: int = 100, shrinkage: float = 0.0) -> None:
        self.k_neighbours = k_neighbours
        self.shrinkage = shrinkage

    def fit(self, data: Interactions | sp.spmatrix) -> ItemKNNRecommender:
        """Compute the pruned item-item cosine similarity.

        Returns
        -------
        self
        """
        k = non_negative_int("k_neighbours", self.k_neighbours)
        shrinkage = finite_number("shrinkage", self.shrinkage, low=0.0)
        start = time.perf_counter()
        seen = self._set_training_data(data)
        matrix = seen.astype(np.float64)
        co_counts = (matrix.T @ matrix).tocoo()
        norms = np.sqrt(np.asarray(matrix.sum(axis=0)).ravel())
        off_diagonal = co_counts.row != co_counts.col
        rows, cols = co_counts.row[off_diagonal], co_counts.col[off_diagonal]
        values = co_counts.data[off_diagonal] / (norms[rows] * norms[cols] + shrinkage)
        if k:
            rows, cols, values = _top_k_per_row(rows, cols, values, k)
        # Row i of the pruned matrix lists the neighbours of i; transpose so that column i
        # does, which makes scoring a plain ``X[users] @ S``.
        self.similarity_ = sp.csr_matrix(
            (values.astype(np.float32), (cols, rows)), shape=(self.n_items_, self.n_items_)
        )
        self.similarity_.sort_indices()
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _score_block(self, user_idx: np.ndarray, item_idx: np.ndarray | None) -> np.ndarray:
        similarity = self.similarity_ if item_idx is None else self.similarity_[:, item_idx]
        return np.asarray((self.seen_[user_idx] @ similarity).toarray(), dtype=np.float32)

    def _item_vectors(self) -> np.ndarray:
        return self.similarity_.T.toarray()

    def _explain_contributions(self, history: np.ndarray, item_idx: int) -> tuple[np.ndarray, bool]:
        # The score is X[user] @ S: history item j adds S[j, item], exactly.
        column = self.similarity_[history][:, [item_idx]]
        return np.asarray(column.toarray(), dtype=np.float64).ravel(), True

    def similar_items(self, items: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Each query item's ``k`` nearest neighbours by the fitted (pruned) cosine.

        Returns
        -------
        item_ids : numpy.ndarray, shape (n_queries, k)
        similarities : numpy.ndarray of float32, shape (n_queries, k)
            Items outside the kept neighbours have similarity 0.
        """
        self._check_fitted()
        k = positive_int("k", k)
        item_idx = self.item_map_.to_index(items)
        similarity = self.similarity_.T.tocsr()[item_idx].toarray()
        idx, values = top_k(similarity, k, exclude=one_per_row(item_idx, self.n_items_))
        return self._raw_items(idx), values

    def _model_state(self) -> dict[str, np.ndarray]:
        return {
            "similarity.indptr": self.similarity_.indptr.astype(np.int64),
            "similarity.indices": self.similarity_.indices.astype(np.int64),
            "similarity.data": self.similarity_.data.astype(np.float32),
        }

    def _load_model_state(self, state: dict[str, np.ndarray], fit_summary: dict) -> None:
        indptr, indices = state["similarity.indptr"], state["similarity.indices"]
        data = state["similarity.data"]
        n = self.n_items_
        if len(indptr) != n + 1 or len(indices) != len(data) or indptr[-1] != len(data):
            raise ValueError("item similarity does not fit the item map")
        if len(indices) and (indices.min() < 0 or indices.max() >= n):
            raise ValueError("item similarity refers to items outside the item map")
        self.similarity_ = sp.csr_matrix((data, indices, indptr), shape=(n, n))
        self.fit_seconds_ = float(fit_summary.get("fit_seconds", float("nan")))


def _top_k_per_row(
    rows: np.ndarray, cols: np.ndarray, values: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` largest entries of each row of a COO matrix; ties go to the lower column."""
    order = np.lexsort((cols, -values, rows))
    rows, cols, values = rows[order], cols[order], values[order]
    positions = np.arange(len(rows))
    run_start = np.r_[True, rows[1:] != rows[:-1]] if len(rows) else np.zeros(0, bool)
    rank = positions - np.maximum.accumulate(np.where(run_start, positions, 0))
    keep = rank < k
    return rows[keep], cols[keep], values[keep]
