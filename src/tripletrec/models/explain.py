"""Why this item: which of a user's history items an item's score comes from.

:meth:`~tripletrec.models.base.RecommenderBase.explain` gives, for one (user, item) pair,
the history items that contributed most to the item's score and their shares. Each
estimator says how its score splits over the history (``_explain_contributions``):

- **Item-item models** (EASE, RP3beta, item-kNN) score item ``j`` as
  ``sum_{i in history} W[i, j]``: the contribution of history item ``i`` is ``W[i, j]``
  and the contributions add up to the score, exactly.
- **Factor models** (the bilinear and factorization-machine
  :class:`~tripletrec.models.triplet.TripletRecommender`, any scorer with a vector space)
  score ``<q_u, y_j> (+ item terms)``; the user vector is not a sum over the history, so
  the split is the approximation of implicit feedback ALS (Hu, Koren and Volinsky 2008,
  section 5; what implicit's ``explain`` computes): ``q_u`` is replaced by the ridge fit of
  the history, ``u = (Y_H' Y_H + lambda I)^-1 Y_H' 1`` (``Y_H`` the history items' vectors,
  rows), so that ``<u, y_j> = sum_i y_j' W y_i`` with ``W = (Y_H' Y_H + lambda I)^-1``,
  and the contribution of ``i`` is ``y_j' W y_i``. Item terms (biases) belong to no history
  item and are left out.
- Models whose scores do not come from the history (random, popularity) or have no vector
  space to decompose (the deep MLP) raise :class:`~tripletrec.exceptions.ParameterError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.linalg

from tripletrec._checks import positive_int
from tripletrec.evaluation.topk import top_k
from tripletrec.exceptions import DataError, ParameterError

if TYPE_CHECKING:
    from tripletrec.models.base import RecommenderBase

#: History items an explanation lists when the caller does not say.
DEFAULT_REASONS = 5
#: ``lambda`` of the factor models' ridge fit, in units of the mean squared norm of an
#: item vector: the prior weighs as much as one typical history item, whatever the scale
#: the model's vectors were trained to.
RIDGE = 1.0


@dataclass(frozen=True, eq=False)
class Explanation:
    """The history items behind one item's score.

    Attributes
    ----------
    item : raw item id
        The item explained.
    score : float
        The model's score of ``item`` for this user: what ``score`` gives a known user,
        what ``score_from_history`` gives a history (for item-item models, the sum of the
        contributions, which is how they score a history).
    items : numpy.ndarray
        Raw ids of the history items that contributed most, most contributing first (ties
        by item index); at most ``n``.
    contributions : numpy.ndarray of float64
        What each of ``items`` adds to the score.
    shares : numpy.ndarray of float64
        ``contributions`` divided by the sum of the absolute contributions of the whole
        history (so the shares of the whole history have absolute values summing to 1;
        all zero when nothing in the history contributes).
    exact : bool
        Whether the contributions of the whole history add up to ``score`` (item-item
        models); False for the ridge approximation of factor models.
    explained_score : float
        The sum of the contributions of the whole history: ``score`` when ``exact``; for a
        factor model, the ridge-approximated dot product ``<u, y_item>`` (item terms
        excluded).
    history_size : int
        Distinct known items in the history.
    item_name : str or None
        The name of ``item`` (from the model's item metadata), None without one.
    names : numpy.ndarray or None
        The names of ``items``; None when the model has no item names.
    """

    item: Any
    score: float
    items: np.ndarray
    contributions: np.ndarray
    shares: np.ndarray
    exact: bool
    explained_score: float
    history_size: int
    item_name: Any = None
    names: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: plain Python values; ``"name"`` keys only when the model has names.

        ``{"item", ["name"], "score", "exact", "explained_score", "history_size", "items":
        [{"item_id", ["name"], "contribution", "share"}, ...]}``.
        """
        head: dict[str, Any] = {"item": _plain(self.item)}
        if self.names is not None:
            head["name"] = _plain(self.item_name)
        rows = []
        names = [None] * len(self.items) if self.names is None else self.names
        for item, name, contribution, share in zip(
            self.items.tolist(), names, self.contributions.tolist(), self.shares.tolist()
        ):
            row: dict[str, Any] = {"item_id": _plain(item)}
            if self.names is not None:
                row["name"] = _plain(name)
            rows.append(row | {"contribution": contribution, "share": share})
        return head | {
            "score": float(self.score),
            "exact": bool(self.exact),
            "explained_score": float(self.explained_score),
            "history_size": int(self.history_size),
            "items": rows,
        }


def explain(
    model: RecommenderBase, user_or_history: Any, item: Any, n: int = DEFAULT_REASONS
) -> Explanation:
    """The body of :meth:`~tripletrec.models.base.RecommenderBase.explain` (see there)."""
    model._check_fitted()
    n = positive_int("n", n)
    item_idx = _item_index(model, item)
    user_idx, history = _history(model, user_or_history)
    contributions, exact = model._explain_contributions(history, item_idx)
    contributions = np.asarray(contributions, dtype=np.float64)
    total = float(contributions.sum())
    if user_idx is not None:
        score = float(model.score_indices(np.array([user_idx]), np.array([item_idx]))[0, 0])
    elif exact:
        score = total
    else:  # the fold-in behind recommend_from_history, on the history as given
        score = float(model.score_from_history([list(user_or_history)])[0, item_idx])
    order, _ = top_k(contributions[None, :], min(n, len(history)))
    order = order[0]
    magnitude = float(np.abs(contributions).sum())
    shares = contributions / magnitude if magnitude > 0 else np.zeros_like(contributions)
    raw = model.item_map_.ids[history[order]]
    names = model.item_names(raw)
    item_names = model.item_names([model.item_map_.ids[item_idx]])
    return Explanation(
        item=model.item_map_.ids[item_idx],
        score=score,
        items=raw,
        contributions=contributions[order],
        shares=shares[order],
        exact=bool(exact),
        explained_score=total,
        history_size=len(history),
        item_name=None if item_names is None else item_names[0],
        names=names,
    )


def ridge_contributions(item_vectors: np.ndarray, history: np.ndarray, item: int) -> np.ndarray:
    """``y_item' W y_i`` for each history item ``i``, ``W = (Y_H' Y_H + lambda I)^-1``.

    ``item_vectors``: every item's vector (rows); ``history``: distinct item indices.
    ``lambda`` is :data:`RIDGE` times the mean squared norm of the item vectors. The sum
    of the result is ``<u, y_item>`` for the ridge fit ``u`` of the history to all-ones.
    """
    vectors = np.asarray(item_vectors, dtype=np.float64)
    scale = float(np.mean(np.einsum("ij,ij->i", vectors, vectors))) or 1.0
    history_vectors = vectors[history]
    gram = history_vectors.T @ history_vectors
    gram[np.diag_indices_from(gram)] += RIDGE * scale
    # W is symmetric, so y_item' W y_i = (W y_item)' y_i: one solve for the whole history.
    solved = scipy.linalg.solve(gram, vectors[item], assume_a="pos")
    return history_vectors @ solved


def _item_index(model: RecommenderBase, item: Any) -> int:
    if isinstance(item, np.ndarray) and item.ndim == 0:
        item = item.item()
    if _is_sequence(item):
        raise ParameterError(f"item must be one raw item id, got a {type(item).__name__}")
    return int(model.item_map_.to_index([item])[0])


def _history(model: RecommenderBase, user_or_history: Any) -> tuple[int | None, np.ndarray]:
    """The user index (None for a history) and the distinct item indices of the history."""
    value = user_or_history
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if _is_sequence(value):
        if len(value) == 0:
            raise DataError("the history is empty: give at least one item id")
        # Unknown items are dropped as recommend_from_history drops them; an item listed
        # twice counts once.
        items = model.item_map_.to_index(list(value), strict=False)
        if (items < 0).all():
            raise DataError("the history has no item id the model knows: nothing explains it")
        return None, np.unique(items[items >= 0])
    user_idx = int(model.user_map_.to_index([value])[0])
    seen = model.seen_
    history = seen.indices[seen.indptr[user_idx] : seen.indptr[user_idx + 1]]
    if len(history) == 0:
        raise DataError(f"user {_plain(value)!r} has no training items to explain a score by")
    return user_idx, np.unique(history)


def _is_sequence(value: Any) -> bool:
    if isinstance(value, (str, bytes)):
        return False
    return isinstance(value, (Sequence, np.ndarray, pd.Series, pd.Index, set, frozenset))


def _plain(value: Any) -> Any:
    """A NumPy scalar as a Python one; a missing name (NaN) as None."""
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and np.isnan(value) else value
