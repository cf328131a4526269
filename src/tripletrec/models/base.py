"""The contract every tripletrec recommender follows.

A recommender is fitted on :class:`~tripletrec.data.interactions.Interactions` (or a scipy
sparse user x item matrix) and then speaks the raw ids of that data: ``score``, ``recommend`` and
``similar_items`` take raw user / item ids and return raw item ids, batch-first. Indices are
internal. Subclasses implement two things: ``_score_block`` (scores of some users against
some items, by index) and ``_item_vectors`` (for item-item similarity).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tripletrec import _registry
from tripletrec._checks import positive_int
from tripletrec.data.interactions import IdMap, Interactions
from tripletrec.evaluation.topk import columns_mask, one_per_row, top_k
from tripletrec.exceptions import (
    DataError,
    ModelFileError,
    NotFittedError,
)
from tripletrec.models import explain as _explain
from tripletrec.models._params import ParamsMixin
from tripletrec.models.histories import history_blocks
from tripletrec.models.index_level import IndexLevelMixin

if TYPE_CHECKING:
    from tripletrec.data.features import Features

#: Users scored per block in batch calls; bounds memory at about this x n_items floats.
SCORE_CHUNK_USERS = 2048


#: Bound on the float64 copy of item vectors :func:`_cosines` makes at a time.
_COSINE_BLOCK_BYTES = 32 << 20


class RecommenderBase(IndexLevelMixin, ParamsMixin, ABC):
    """Fit / score / recommend / similar_items, scikit-learn style.

    Fitted attributes (set by ``fit``): ``user_map_``, ``item_map_`` (raw id <-> index),
    ``seen_`` (CSR matrix of each user's training positives, filtered from
    recommendations) and ``item_metadata_`` (a DataFrame indexed by raw item id, or None).

    Every concrete subclass registers itself by class name (:mod:`tripletrec._registry`),
    which is how :func:`~tripletrec.persistence.load_model` finds the class of a saved
    model; two estimator classes may therefore not share a name.
    """

    #: Constructor parameters that hold a part's hyper-parameters (a mapping), by the
    #: part's class: the command line gives each part's parameters flags of their own
    #: (``--factor.epochs``) and run configs check their names.
    part_settings: ClassVar[Mapping[str, type[RecommenderBase]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _registry.register(cls)

    # ------------------------------------------------------------------ fitting helpers
    def _set_training_data(self, data: Interactions | sp.spmatrix) -> sp.csr_matrix:
        """Record id maps, metadata and seen items of ``data``; return its binary CSR."""
        if isinstance(data, Interactions):
            if len(data) == 0:
                raise DataError("cannot fit on empty interactions")
            self.user_map_, self.item_map_ = data.user_map, data.item_map
            self.item_metadata_ = data.item_metadata
            seen = data.to_csr()
        elif sp.issparse(data):
            seen = sp.csr_matrix(data, dtype=np.float32)
            if seen.nnz == 0:
                raise DataError("cannot fit on an empty interaction matrix")
            self.user_map_ = IdMap(np.arange(seen.shape[0]), "user")
            self.item_map_ = IdMap(np.arange(seen.shape[1]), "item")
            self.item_metadata_ = None
        else:
            raise DataError(
                f"fit expects Interactions or a scipy sparse matrix, got {type(data).__name__}"
            )
        seen.data[:] = 1.0
        self.seen_ = seen
        return seen

    def fit_partial(self, data: Interactions | sp.spmatrix, **options: Any) -> RecommenderBase:
        """Train a fitted model further on more positives; only estimators with the
        ``fit_partial`` capability can (the others are fitted again on all the data)."""
        self.require("fit_partial", f"{type(self).__name__}.fit_partial")
        raise NotImplementedError(f"{type(self).__name__} declares fit_partial: override it")

    def _check_fitted(self) -> None:
        if not hasattr(self, "seen_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")

    # ------------------------------------------------------------------ persistence
    def save(
        self,
        path: str | Path,
        *,
        metrics: dict | None = None,
        extra_json: dict[str, Any] | None = None,
    ) -> Path:
        """Save to directory ``path`` (safetensors + JSON, no pickle); see
        :mod:`tripletrec.persistence`."""
        from tripletrec.persistence import save_model  # io imports this module

        return save_model(self, path, metrics=metrics, extra_json=extra_json)

    @classmethod
    def load(cls, path: str | Path, *, mmap: bool = True) -> RecommenderBase:
        """Load a model saved with :meth:`save`; it must be of this class.

        ``mmap``: memory-map the weights (read-only arrays shared with other processes
        through the page cache) or, when False, copy them (see
        :func:`tripletrec.persistence.load_model`).
        """
        from tripletrec.persistence import load_model

        model = load_model(path, mmap=mmap)
        if not isinstance(model, cls):
            raise ModelFileError(f"{path} holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    # ------------------------------------------------------------------ model-specific
    @abstractmethod
    def _score_block(self, user_idx: np.ndarray, item_idx: np.ndarray | None) -> np.ndarray:
        """Scores of users ``user_idx`` against items ``item_idx`` (all when None)."""

    # ------------------------------------------------------------------ public API
    @property
    def n_users_(self) -> int:
        return len(self.user_map_)

    @property
    def n_items_(self) -> int:
        return len(self.item_map_)

    def score_indices(self, user_idx: np.ndarray, item_idx: np.ndarray | None = None) -> np.ndarray:
        """Scores by index, in blocks of users: ``(len(user_idx), n_items)`` float32."""
        self._check_fitted()
        user_idx = np.asarray(user_idx, dtype=np.int64)
        blocks = [
            self._score_block(user_idx[start : start + SCORE_CHUNK_USERS], item_idx)
            for start in range(0, len(user_idx), SCORE_CHUNK_USERS)
        ]
        n_cols = self.n_items_ if item_idx is None else len(item_idx)
        return np.concatenate(blocks) if blocks else np.empty((0, n_cols), np.float32)

    def score(self, users: Any, items: Any = None) -> np.ndarray:
        """Scores of raw ``users`` against raw ``items`` (every item when None).

        Parameters
        ----------
        users : raw id or array-like of raw ids
        items : array-like of raw ids, optional

        Returns
        -------
        numpy.ndarray, shape (n_users, n_items)
            Higher is better. Columns follow ``items``, or the model's item order
            (``item_map_.ids``) when ``items`` is None.
        """
        self._check_fitted()
        user_idx = self.user_map_.to_index(users)
        item_idx = None if items is None else self.item_map_.to_index(items)
        return self.score_indices(user_idx, item_idx)

    def recommend(
        self,
        users: Any,
        k: int = 10,
        filter_seen: bool = True,
        exclude: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items for each of ``users``.

        Parameters
        ----------
        users : raw id or array-like of raw ids
        k : int
            Items per user.
        filter_seen : bool, default True
            Leave out each user's training positives.
        exclude : array-like of raw item ids, optional
            Items left out for every user (out of stock, already shown, ...).

        Returns
        -------
        item_ids : numpy.ndarray, shape (n_users, min(k, n_items))
            Raw item ids, best first. Where a user has fewer candidate items than columns
            the row is padded with -1 (integer ids) or None (other ids).
        scores : numpy.ndarray of float32, shape (n_users, min(k, n_items))
            Their scores; padding has score -inf.
        """
        self._check_fitted()
        k = positive_int("k", k)
        user_idx = self.user_map_.to_index(users)
        excluded_items = None if exclude is None else self.item_map_.to_index(exclude)
        out_idx = np.empty((len(user_idx), min(k, self.n_items_)), np.int64)
        out_scores = np.empty(out_idx.shape, np.float32)
        for start in range(0, len(user_idx), SCORE_CHUNK_USERS):
            rows = user_idx[start : start + SCORE_CHUNK_USERS]
            mask = self.seen_[rows] if filter_seen else sp.csr_matrix((len(rows), self.n_items_))
            if excluded_items is not None:
                mask = mask + columns_mask(len(rows), excluded_items, self.n_items_)
            idx, scores = top_k(self._score_block(rows, None), out_idx.shape[1], exclude=mask)
            out_idx[start : start + len(rows)] = idx
            out_scores[start : start + len(rows)] = scores
        return self._raw_items(out_idx), out_scores

    def similar_items(self, items: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most similar to each of ``items`` (cosine of item vectors).

        The query item itself is left out.

        Returns
        -------
        item_ids : numpy.ndarray, shape (n_queries, min(k, n_items))
        similarities : numpy.ndarray of float32, shape (n_queries, min(k, n_items))
        """
        self._check_fitted()
        # At most every item, as recommend: a larger k would only add padding columns (and
        # a huge one would not fit in memory).
        k = min(positive_int("k", k), self.n_items_)
        item_idx = self.item_map_.to_index(items)
        vectors = np.asarray(self._item_vectors(), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit = vectors / np.maximum(norms, np.finfo(np.float32).tiny)
        similarity = _cosines(unit, item_idx)
        idx, scores = top_k(similarity, k, exclude=one_per_row(item_idx, self.n_items_))
        return self._raw_items(idx), scores

    def recommend_from_history(
        self,
        histories: Sequence[Sequence[Any]],
        k: int = 10,
        filter_history: bool = True,
        exclude: Any = None,
        random_state: int = 0,
        user_features: Features | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items for users the model has never seen, from their item histories.

        Each history is folded in: a user vector is fitted to it with the item side of the
        model frozen (see :mod:`tripletrec.models.foldin`), then scored like a trained user.

        Parameters
        ----------
        histories : sequence of sequences, or mapping of new user id to sequence
            One history (raw ids of items the user liked) per new user. Item ids the
            model does not know are ignored as long as the history has at least one known
            item. A mapping keys each history by the new user's id (needed with
            ``user_features``).
        k : int
            Items per user.
        filter_history : bool, default True
            Leave out each user's history items.
        exclude : array-like of raw item ids, optional
            Items left out for every user.
        random_state : int, default 0
            Seed of the fold-in: the same history and seed give the same result, whatever
            else is in the batch.
        user_features : Features, optional
            Side features of the new users, keyed by the ids of ``histories`` (a mapping),
            for a model fitted with user features: each user vector starts from the
            user's features and the history refines it. Histories may then be empty
            (recommendations from the features alone).

        Returns
        -------
        item_ids, scores : numpy.ndarray, shape (n_histories, min(k, n_items))
            As :meth:`recommend`, rows in the order of ``histories``.

        Raises
        ------
        DataError
            If ``histories`` is not a list of lists, or a history is empty or has no item
            the model knows.
        """
        self._check_fitted()
        k = positive_int("k", k)
        blocks = self._history_blocks(histories, random_state, user_features)
        excluded_items = None if exclude is None else self.item_map_.to_index(exclude)
        out_idx = np.empty((len(histories), min(k, self.n_items_)), np.int64)
        out_scores = np.empty(out_idx.shape, np.float32)
        for start, block_rows, block_items, scores in blocks:
            n_block = len(scores)
            mask = sp.csr_matrix((n_block, self.n_items_), dtype=np.float32)
            if filter_history:
                mask = sp.csr_matrix(
                    (np.ones(len(block_rows), np.float32), (block_rows, block_items)),
                    shape=mask.shape,
                )
            if excluded_items is not None:
                mask = mask + columns_mask(n_block, excluded_items, self.n_items_)
            idx, top = top_k(scores, out_idx.shape[1], exclude=mask)
            out_idx[start : start + n_block] = idx
            out_scores[start : start + n_block] = top
        return self._raw_items(out_idx), out_scores

    def score_from_history(
        self,
        histories: Sequence[Sequence[Any]] | Mapping[Any, Sequence[Any]],
        random_state: int = 0,
        user_features: Features | None = None,
    ) -> np.ndarray:
        """Scores of every item for users the model has never seen, from their histories.

        The scores behind :meth:`recommend_from_history` (same fold-in, same seed), for
        evaluation or re-ranking. Returns ``(len(histories), n_items)`` float32, columns
        in the model's item order (``item_map_.ids``); history items are not masked.
        """
        self._check_fitted()
        blocks = self._history_blocks(histories, random_state, user_features)
        out = np.empty((len(histories), self.n_items_), np.float32)
        for start, _, _, scores in blocks:
            out[start : start + len(scores)] = scores
        return out

    def _history_blocks(
        self,
        histories: Sequence[Sequence[Any]] | Mapping[Any, Sequence[Any]],
        random_state: int,
        user_features: Features | None = None,
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """Fold in ``histories`` in blocks of users (``histories.history_blocks``)."""
        return history_blocks(self, histories, random_state, user_features, SCORE_CHUNK_USERS)

    def explain(
        self, user_or_history: Any, item: Any, *, n: int = _explain.DEFAULT_REASONS
    ) -> _explain.Explanation:
        """Why ``item`` scores as it does: the history items that contributed most.

        Exact for item-item models (the score is a sum over the history); for factor
        models the ridge decomposition of implicit feedback ALS, an approximation (see
        :mod:`tripletrec.models.explain`).

        Parameters
        ----------
        user_or_history : raw user id, or sequence of raw item ids
            A known user (explained by their training items), or a new user's history
            (unknown item ids ignored, as by :meth:`recommend_from_history`).
        item : raw item id
            The item to explain.
        n : int, default 5
            History items to list, most contributing first.

        Returns
        -------
        Explanation

        Raises
        ------
        UnknownIdError
            If the user or ``item`` is unknown.
        DataError
            If the history is empty or has no item the model knows.
        ParameterError
            If ``n`` is not a positive integer, or the model's scores cannot be split
            over a history (random, popularity, the deep model).
        """
        return _explain.explain(self, user_or_history, item, n)

    def item_names(self, item_ids: Any) -> np.ndarray | None:
        """Names of raw item ids from the item metadata, or None without metadata."""
        metadata = getattr(self, "item_metadata_", None)
        if metadata is None or "name" not in metadata.columns:
            return None
        return metadata["name"].reindex(pd.Index(np.ravel(item_ids))).to_numpy()

    def _raw_items(self, idx: np.ndarray) -> np.ndarray:
        ids = self.item_map_.ids
        pad = -1 if np.issubdtype(ids.dtype, np.integer) else None
        out = ids[np.maximum(idx, 0)]
        if (idx < 0).any():
            out = out.astype(object) if pad is None else out
            out[idx < 0] = pad
        return out


def _cosines(unit: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``unit[rows] @ unit.T`` as float32, summed in float64 by blocks of items.

    A float32 product sums a batch of rows in another order than a single row, and its
    rounding (1e-7) would break ties between equally similar items differently in each:
    in float64 an item's similarities do not depend on which items are asked with it.
    """
    query = unit[rows].astype(np.float64)
    out = np.empty((len(rows), len(unit)), np.float32)
    step = max(1, _COSINE_BLOCK_BYTES // (8 * max(unit.shape[1], 1)))
    for start in range(0, len(unit), step):
        out[:, start : start + step] = query @ unit[start : start + step].astype(np.float64).T
    return out
