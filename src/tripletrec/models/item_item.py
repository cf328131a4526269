"""What the item-item estimators (EASE, RP3beta) share: scoring, histories, persistence.

An item-item model is one matrix ``W`` (items x items) with a zero diagonal: a user's
scores are ``x_u @ W``, ``x_u`` the binary row of the items the user liked. ``W[i, j]`` is
how much liking ``i`` adds to the score of ``j``. A new user's history is such a row too,
so these models score histories exactly as they score trained users, with no fold-in.

Items with no training positive have zero rows and columns in ``W`` (nothing links them
to anything), and so, in EASE with ``min_item_positives``, do items with fewer positives
than that; only the *active* items are stored: ``weights_`` is ``W`` restricted to
``active_items_``; the other items score 0.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from tripletrec.evaluation.topk import top_k
from tripletrec.exceptions import TripletrecError
from tripletrec.models.capabilities import Capabilities

if TYPE_CHECKING:
    from tripletrec.data.interactions import Interactions


class ItemItemMixin:
    """Scoring, history scoring, item vectors and state of an item-item model.

    Expects ``active_items_`` (int64 indices of the items with a training positive) and
    ``weights_`` (``W`` on those items: a float32 ndarray, or a float32 CSR matrix when
    pruned), next to :class:`~tripletrec.models.base.RecommenderBase`'s fitted attributes.
    """

    active_items_: np.ndarray
    weights_: np.ndarray | sp.csr_matrix
    fit_seconds_: float
    n_items_: int
    seen_: sp.csr_matrix

    _set_training_data: Callable[[Any], sp.csr_matrix]

    def capabilities(self) -> Capabilities:
        """A history is scored as a trained user's row, and each score is a sum over it."""
        return Capabilities(history_scoring=True, explain=True)

    # ------------------------------------------------------------------ fitting helpers
    @staticmethod
    def _active_columns(seen: sp.csr_matrix, min_positives: int = 1) -> np.ndarray:
        """Indices of the columns of ``seen`` with at least ``min_positives`` entries."""
        counts = np.bincount(seen.indices, minlength=seen.shape[1])
        return np.flatnonzero(counts >= max(min_positives, 1)).astype(np.int64)

    def _forget_fit(self) -> None:
        """Drop fitted state, so that a fit refused half-way leaves an unfitted model."""
        for name in ("seen_", "weights_", "active_items_", "_positions"):
            self.__dict__.pop(name, None)

    def _fit_weights(
        self,
        data: Interactions | sp.spmatrix,
        weights_of: Callable[[sp.csr_matrix], np.ndarray | sp.csr_matrix],
        min_positives: int = 1,
    ) -> Any:
        """The fit every item-item model shares: record the training data, restrict it to
        the active items (those with at least ``min_positives`` positives), compute ``W``
        with ``weights_of(x)`` (``x`` the float64 binary matrix of the active items), and
        time it. A refused fit leaves the model unfitted."""
        start = time.perf_counter()
        seen = self._set_training_data(data)
        active = self._active_columns(seen, min_positives)
        x = seen if len(active) == seen.shape[1] else seen[:, active]
        try:
            weights = weights_of(sp.csr_matrix(x, dtype=np.float64))
        except BaseException:
            self._forget_fit()
            raise
        self.weights_, self.active_items_ = weights, active
        self.__dict__.pop("_positions", None)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    # ------------------------------------------------------------------ scoring
    def _scores(self, rows: sp.csr_matrix, item_idx: np.ndarray | None) -> np.ndarray:
        """``rows @ W`` as float32, columns ``item_idx`` (every item when None)."""
        active = self.active_items_
        weights = self.weights_
        all_active = len(active) == self.n_items_
        x = rows if all_active else rows[:, active]
        x = sp.csr_matrix(x, dtype=np.float32)
        if item_idx is None:
            block = _dense(x @ weights)
            if all_active:
                return block
            out = np.zeros((rows.shape[0], self.n_items_), np.float32)
            out[:, active] = block
            return out
        positions = self._active_positions()[np.asarray(item_idx, dtype=np.int64)]
        known = positions >= 0
        out = np.zeros((rows.shape[0], len(positions)), np.float32)
        if known.any():
            out[:, known] = _dense(x @ weights[:, positions[known]])
        return out

    def _active_positions(self) -> np.ndarray:
        """For each item, its position among the active items, or -1."""
        positions = self.__dict__.get("_positions")
        if positions is None or len(positions) != self.n_items_:
            positions = np.full(self.n_items_, -1, np.int64)
            positions[self.active_items_] = np.arange(len(self.active_items_))
            self._positions = positions
        return positions

    def _score_block(self, user_idx: np.ndarray, item_idx: np.ndarray | None) -> np.ndarray:
        return self._scores(self.seen_[user_idx], item_idx)

    def _score_histories(
        self,
        rows: np.ndarray,
        items: np.ndarray,
        n_rows: int,
        random_state: int,
        offsets: Any = None,
    ) -> np.ndarray:
        """A history is the binary row of a user: scored as ``x @ W``, with no fitting
        (``random_state`` plays no part)."""
        if offsets is not None:
            raise TripletrecError(f"{type(self).__name__} takes no user features")
        x = sp.csr_matrix(
            (np.ones(len(rows), np.float32), (rows, items)), shape=(n_rows, self.n_items_)
        )
        x.sum_duplicates()
        x.data[:] = 1.0  # an item listed twice in a history counts once, as in training
        return self._scores(x, None)

    def _explain_contributions(self, history: np.ndarray, item_idx: int) -> tuple[np.ndarray, bool]:
        """``W[i, item]`` for each history item ``i``: exactly what it adds to the score
        (items without training positives add and receive nothing)."""
        positions = self._active_positions()
        rows, column = positions[history], positions[item_idx]
        out = np.zeros(len(history), np.float64)
        known = rows >= 0
        if column >= 0 and known.any():
            out[known] = _dense(self.weights_[rows[known]][:, [column]]).ravel()
        return out, True

    def _item_vectors(self) -> np.ndarray:
        """Row ``i`` of ``W`` (over the active items): the scores that liking ``i`` alone
        gives every item. Two items are similar when liking either leads to the same
        recommendations; items without training positives have zero vectors."""
        out = np.zeros((self.n_items_, len(self.active_items_)), np.float32)
        out[self.active_items_] = _dense(self.weights_)
        return out

    # ------------------------------------------------------------------ persistence
    def _fit_summary(self) -> dict:
        return {"fit_seconds": self.fit_seconds_, "n_active_items": len(self.active_items_)}

    def _model_state(self) -> dict[str, np.ndarray]:
        state = {"active_items": self.active_items_.astype(np.int64)}
        if sp.issparse(self.weights_):
            state["weights.indptr"] = self.weights_.indptr.astype(np.int64)
            state["weights.indices"] = self.weights_.indices.astype(np.int64)
            state["weights.data"] = self.weights_.data.astype(np.float32)
        else:
            state["weights"] = np.asarray(self.weights_, dtype=np.float32)
        return state

    def _load_model_state(self, state: dict[str, np.ndarray], fit_summary: dict) -> None:
        active = np.asarray(state["active_items"], dtype=np.int64)
        if active.ndim != 1 or (
            len(active)
            and (active.min() < 0 or active.max() >= self.n_items_ or (np.diff(active) <= 0).any())
        ):
            raise ValueError("active items do not fit the item map")
        n = len(active)
        if "weights" in state:
            weights = np.asarray(state["weights"], dtype=np.float32)
            if weights.shape != (n, n):
                raise ValueError(f"weights have shape {weights.shape}, expected {(n, n)}")
        else:
            indptr, indices = state["weights.indptr"], state["weights.indices"]
            data = np.asarray(state["weights.data"], dtype=np.float32)
            if len(indptr) != n + 1 or len(indices) != len(data) or indptr[-1] != len(data):
                raise ValueError("sparse weights do not fit the active items")
            if len(indices) and (indices.min() < 0 or indices.max() >= n):
                raise ValueError("sparse weights refer to items outside the active items")
            weights = sp.csr_matrix((data, indices, indptr), shape=(n, n))
        self.active_items_, self.weights_ = active, weights
        self.__dict__.pop("_positions", None)
        self.fit_seconds_ = float(fit_summary.get("fit_seconds", float("nan")))


def _dense(matrix: np.ndarray | sp.spmatrix) -> np.ndarray:
    """``matrix`` as a float32 ndarray."""
    if sp.issparse(matrix):
        matrix = matrix.toarray()
    return np.asarray(matrix, dtype=np.float32)


def top_k_per_row(matrix: np.ndarray, k: int) -> sp.csr_matrix:
    """The ``k`` largest entries of each row of dense ``matrix``, as CSR; ties go to the
    lower column, zeros are not stored."""
    n_rows, n_cols = matrix.shape
    order, values = top_k(matrix, min(k, n_cols))  # the library's rule: ties to lower index
    keep = values != 0
    counts = keep.sum(axis=1)
    indptr = np.zeros(n_rows + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    # Each row's kept columns, sorted, as CSR wants.
    columns = np.where(keep, order, n_cols)
    columns.sort(axis=1)
    sorted_keep = columns < n_cols
    data = np.take_along_axis(matrix, np.minimum(columns, n_cols - 1), axis=1)
    return sp.csr_matrix(
        (data[sorted_keep].astype(np.float32), columns[sorted_keep], indptr),
        shape=(n_rows, n_cols),
    )
