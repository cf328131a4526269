"""Blends of standardised scores, and scores split for retrieval with exact moments.

:func:`standardised` and :func:`blend` are the arithmetic of
:class:`~tripletrec.models.hybrid.HybridRecommender`; :class:`BlendPart` describes one part
of such a blend to a caller that scores it some other way.

Approximate retrieval searches an inner-product space; a blend of standardised scores
(:class:`~tripletrec.models.hybrid.HybridRecommender`) is no inner product, but each of its
parts splits as ``queries @ items.T + rest``: all inner product for a factor model, all
remainder for EASE, both for the graph filter (its low-pass term and its linear filter).
:class:`ScoreTerms` holds one block of users' split, and :meth:`ScoreTerms.moments` gives
the mean and standard deviation of their scores over the whole catalogue without scoring
it: with ``Y`` the item vectors, ``Y'Y`` and the mean of ``Y`` computed once
(:class:`ItemMoments`), the second moment is ``(q'Y'Yq + 2 q.(rest Y) + |rest|^2) / n``.
So the standardisation of a blend, and with it every blended score, is exact for any item
the search proposes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: Floor of a score spread (a constant row standardises to 0), as the blend's.
MIN_SPREAD = 1e-12


@dataclass(frozen=True)
class ItemMoments:
    """The item side of :meth:`ScoreTerms.moments`: the mean item vector and ``Y'Y``
    (float64), computed once per model."""

    mean: np.ndarray  # (d,)
    gram: np.ndarray  # (d, d)
    n_items: int

    @classmethod
    def of(cls, items: np.ndarray) -> ItemMoments:
        """The moments of item vectors ``items`` (n_items x d)."""
        items64 = np.asarray(items, dtype=np.float64)
        return cls(items64.mean(axis=0), items64.T @ items64, len(items64))


@dataclass(frozen=True)
class ScoreTerms:
    """A block of users' scores over the catalogue, ``queries @ items.T + rest``.

    The item vectors are the model's ``term_items()``, the same for every block.

    Attributes
    ----------
    queries : numpy.ndarray, shape (n_users, d)
        The inner-product part's query vectors (``d`` may be 0).
    rest : numpy.ndarray of float32, shape (n_users, n_items), or None
        What no inner product gives; None: nothing.
    rest_projection : numpy.ndarray, shape (n_users, d), or None
        ``rest @ items``, which a model may compute more cheaply than the product (the
        graph filter does); None with ``rest``.
    """

    queries: np.ndarray
    rest: np.ndarray | None = None
    rest_projection: np.ndarray | None = None

    def moments(self, items: ItemMoments) -> tuple[np.ndarray, np.ndarray]:
        """Each user's mean and standard deviation of scores over the catalogue (float64,
        the spread floored at :data:`MIN_SPREAD`), exactly as the scores would give."""
        queries = np.asarray(self.queries, dtype=np.float64)
        mean = queries @ items.mean
        second = np.einsum("nd,de,ne->n", queries, items.gram, queries) / items.n_items
        if self.rest is not None:
            rest = np.asarray(self.rest, dtype=np.float64)
            mean += rest.sum(axis=1) / items.n_items
            second += np.einsum("ni,ni->n", rest, rest) / items.n_items
            if queries.shape[1]:
                projection = np.asarray(self.rest_projection, dtype=np.float64)
                second += 2.0 * np.einsum("nd,nd->n", queries, projection) / items.n_items
        spread = np.sqrt(np.maximum(second - mean * mean, 0.0))
        return mean, np.maximum(spread, MIN_SPREAD)

    def at(self, items: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """The scores (float64) of each user's ``candidates`` (n_users x c item indices,
        all valid), with item vectors ``items``."""
        # float32 products, as the models score (a float64 gather would be 2x the memory).
        queries = np.asarray(self.queries, dtype=np.float32)
        scores = np.einsum("nd,ncd->nc", queries, items[candidates]).astype(np.float64)
        if self.rest is not None:
            scores += np.take_along_axis(self.rest, candidates, axis=1)
        return scores


@dataclass(frozen=True)
class BlendPart:
    """One part of a blend of standardised scores: it adds
    ``weight * max(z(scores), floor)``, ``z`` standardising a user's scores over the
    catalogue (:func:`standardised`)."""

    model: Any
    weight: float
    floor: float = -np.inf


def standardised(scores: np.ndarray) -> np.ndarray:
    """Each row (a user's scores over the catalogue) to mean 0 and standard deviation 1."""
    scores = np.asarray(scores, dtype=np.float64)
    centred = scores - scores.mean(axis=1, keepdims=True)
    return centred / np.maximum(centred.std(axis=1, keepdims=True), MIN_SPREAD)


def blend(
    factor_scores: np.ndarray,
    item_item_scores: np.ndarray,
    weight: float,
    floor: float = -np.inf,
) -> np.ndarray:
    """``(1 - weight) z(factor_scores) + weight max(z(item_item_scores), floor)``, rows
    standardised by :func:`standardised` (float32)."""
    blended = (1.0 - weight) * standardised(factor_scores)
    blended += weight * np.maximum(standardised(item_item_scores), floor)
    return blended.astype(np.float32)
