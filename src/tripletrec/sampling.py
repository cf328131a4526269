"""Negative item samplers, vectorised over a whole epoch of triplets.

A sampler maps an array of user indices (one per training positive) to an array of negative
item indices of the same length, drawing from a NumPy ``Generator`` so that a seed fixes
every epoch's negatives.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import scipy.sparse as sp

from tripletrec.exceptions import TripletrecError


class NegativeSampler(Protocol):
    """Draws one negative item index per user index."""

    def __call__(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...


class UniformSampler:
    """Items drawn uniformly from the catalogue, as in the notebook.

    A draw may hit one of the user's positives; with a few hundred items and a margin loss
    this costs little and keeps sampling at one random integer per triplet.
    """

    def __init__(self, n_items: int) -> None:
        self.n_items = n_items

    def __call__(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(0, self.n_items, size=len(users), dtype=np.int64)


class ExcludePositivesSampler:
    """Uniform items, redrawn wherever the draw is one of the user's known positives.

    Membership is tested for all draws at once by binary search over the sorted
    ``user * n_items + item`` keys of the positives; only the colliding draws are redrawn.
    Users who have interacted with every item keep their last draw after ``max_rounds``.
    """

    def __init__(self, positives: sp.csr_matrix, max_rounds: int = 50) -> None:
        positives = sp.csr_matrix(positives)
        positives.sum_duplicates()  # also sorts indices, making the keys below sorted
        self.n_items = positives.shape[1]
        rows = np.repeat(np.arange(positives.shape[0], dtype=np.int64), np.diff(positives.indptr))
        self._keys = rows * self.n_items + positives.indices.astype(np.int64)
        self.max_rounds = max_rounds

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether each (user, item) pair is a known positive."""
        keys = users.astype(np.int64) * self.n_items + items
        found = np.searchsorted(self._keys, keys)
        found[found == len(self._keys)] = 0
        return self._keys[found] == keys if len(self._keys) else np.zeros(len(keys), bool)

    def __call__(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        negatives = rng.integers(0, self.n_items, size=len(users), dtype=np.int64)
        todo = np.flatnonzero(self.is_positive(users, negatives))
        for _ in range(self.max_rounds):
            if len(todo) == 0:
                break
            negatives[todo] = rng.integers(0, self.n_items, size=len(todo), dtype=np.int64)
            todo = todo[self.is_positive(users[todo], negatives[todo])]
        return negatives


SAMPLERS = ("uniform", "exclude_positives")


def make_sampler(name: str, positives: sp.csr_matrix) -> NegativeSampler:
    """The sampler called ``name`` for a user x item matrix of training positives."""
    if name == "uniform":
        return UniformSampler(positives.shape[1])
    if name == "exclude_positives":
        return ExcludePositivesSampler(positives)
    raise TripletrecError(f"unknown negative sampler {name!r}; choose from {', '.join(SAMPLERS)}")
