"""Negative item samplers, vectorised over a whole epoch of triplets.

A sampler maps an array of user indices (one per training positive) to negative item
indices, one per user (shape ``(n,)``) or ``n_negatives`` per user (shape ``(n, K)``),
drawing from a NumPy ``Generator`` so that a seed fixes every epoch's negatives. A sampler
also reports ``log_q``, the log-probability with which it proposes each item (None when
uniform), for the sampled-softmax correction.
"""

from __future__ import annotations

from typing import Literal, Protocol, get_args

import numpy as np
import scipy.sparse as sp

from tripletrec._keys import contains, pair_keys
from tripletrec.exceptions import TripletrecError


class NegativeSampler(Protocol):
    """Draws negative item indices for user indices (None: every item is a negative)."""

    #: Log-probability of proposing each item, or None for uniform proposals.
    log_q: np.ndarray | None

    def __call__(
        self, users: np.ndarray, rng: np.random.Generator, n_negatives: int = 1
    ) -> np.ndarray | None: ...


def _shape(n: int, n_negatives: int) -> tuple[int, ...]:
    return (n,) if n_negatives == 1 else (n, n_negatives)


class UniformSampler:
    """Items drawn uniformly from the catalogue, as in the notebook.

    A draw may hit one of the user's positives; with a few hundred items and a margin loss
    this costs little and keeps sampling at one random integer per triplet.
    """

    log_q = None

    def __init__(self, n_items: int) -> None:
        self.n_items = n_items

    def __call__(
        self, users: np.ndarray, rng: np.random.Generator, n_negatives: int = 1
    ) -> np.ndarray:
        return rng.integers(0, self.n_items, size=_shape(len(users), n_negatives), dtype=np.int64)


class ExcludePositivesSampler:
    """Uniform items, redrawn wherever the draw is one of the user's known positives.

    Membership is tested for all draws at once by binary search over the sorted
    ``user * n_items + item`` keys of the positives; only the colliding draws are redrawn.
    Users who have interacted with every item keep their last draw after ``max_rounds``.
    """

    log_q = None

    def __init__(self, positives: sp.csr_matrix, max_rounds: int = 50) -> None:
        positives = sp.csr_matrix(positives)
        positives.sum_duplicates()  # also sorts indices, making the keys below sorted
        self.n_items = positives.shape[1]
        rows = np.repeat(np.arange(positives.shape[0], dtype=np.int64), np.diff(positives.indptr))
        self._keys = pair_keys(rows, positives.indices, self.n_items)
        self.max_rounds = max_rounds

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether each (user, item) pair is a known positive."""
        return contains(self._keys, pair_keys(users, items, self.n_items))

    def __call__(
        self, users: np.ndarray, rng: np.random.Generator, n_negatives: int = 1
    ) -> np.ndarray:
        shape = _shape(len(users), n_negatives)
        users = np.broadcast_to(users[:, None], (len(users), n_negatives)).ravel()
        negatives = rng.integers(0, self.n_items, size=len(users), dtype=np.int64)
        todo = np.flatnonzero(self.is_positive(users, negatives))
        for _ in range(self.max_rounds):
            if len(todo) == 0:
                break
            negatives[todo] = rng.integers(0, self.n_items, size=len(todo), dtype=np.int64)
            todo = todo[self.is_positive(users[todo], negatives[todo])]
        return negatives.reshape(shape)


class PopularitySampler:
    """Items drawn with probability proportional to ``(count + 1) ** alpha``.

    ``alpha = 0`` is uniform, ``alpha = 1`` follows popularity (word2vec uses 0.75). Popular
    items are the likeliest false top recommendations, so sampling them more often as
    negatives sharpens the ranking among them; pair it with the ``softmax`` loss, whose
    log-q correction (``log_q`` below) undoes the sampling bias in the gradient.
    """

    def __init__(self, positives: sp.csr_matrix, alpha: float = 0.75) -> None:
        counts = np.asarray(sp.csr_matrix(positives).sum(axis=0)).ravel() + 1.0
        weights = counts**alpha
        self.probabilities = weights / weights.sum()
        self._cumulative = np.cumsum(self.probabilities)
        self._cumulative[-1] = 1.0  # guard the last bucket against rounding
        self.log_q = np.log(self.probabilities)
        self.n_items = len(counts)

    def __call__(
        self, users: np.ndarray, rng: np.random.Generator, n_negatives: int = 1
    ) -> np.ndarray:
        uniform = rng.random(size=_shape(len(users), n_negatives))
        return np.searchsorted(self._cumulative, uniform, side="right").astype(np.int64)


class AllItems:
    """Not a sample: every item is a negative (the full softmax). Draws nothing."""

    log_q = None

    def __call__(self, users: np.ndarray, rng: np.random.Generator, n_negatives: int = 1) -> None:
        return None


class InBatch:
    """Not a sample either: each positive's negatives are the batch's other positives.

    The batch's positives are drawn in proportion to their popularity, so ``log_q`` is the
    log of each item's share of the training positives, for the softmax's correction.
    """

    def __init__(self, positives: sp.csr_matrix) -> None:
        counts = np.asarray(sp.csr_matrix(positives).sum(axis=0)).ravel()
        with np.errstate(divide="ignore"):  # items without positives are never in a batch
            self.log_q = np.log(counts / counts.sum())
        self.log_q[~np.isfinite(self.log_q)] = 0.0

    def __call__(self, users: np.ndarray, rng: np.random.Generator, n_negatives: int = 1) -> None:
        return None


#: The samplers :func:`make_sampler` makes, by name (the estimator's ``negatives``).
SamplerName = Literal["uniform", "exclude_positives", "popularity", "all", "in_batch"]
SAMPLERS: tuple[SamplerName, ...] = get_args(SamplerName)
#: Samplers that draw nothing: the training step builds the negatives from the batch.
IMPLICIT_NEGATIVES: tuple[SamplerName, ...] = ("all", "in_batch")


def make_sampler(name: str, positives: sp.csr_matrix, alpha: float = 0.75) -> NegativeSampler:
    """The sampler called ``name`` for a user x item matrix of training positives."""
    if name == "uniform":
        return UniformSampler(positives.shape[1])
    if name == "exclude_positives":
        return ExcludePositivesSampler(positives)
    if name == "popularity":
        return PopularitySampler(positives, alpha)
    if name == "all":
        return AllItems()
    if name == "in_batch":
        return InBatch(positives)
    raise TripletrecError(f"unknown negative sampler {name!r}; choose from {', '.join(SAMPLERS)}")
