"""Train/test splits of :class:`~tripletrec.data.Interactions`.

Every split returns parts that share the id maps of the input, so a model fitted on the
train part scores the test part's indices directly.
"""

from __future__ import annotations

import math

import numpy as np

from tripletrec.data import Interactions
from tripletrec.exceptions import DataError


def random_split(
    interactions: Interactions, test_size: float = 0.2, random_state: int | None = 42
) -> tuple[Interactions, Interactions]:
    """Split rows at random, exactly as scikit-learn's ``train_test_split``.

    ``random_split(data, 0.2, 42)`` selects the same rows, in the same order, as
    ``sklearn.model_selection.train_test_split(rows, test_size=0.2, random_state=42)``:
    a ``numpy.random.RandomState(seed).permutation`` of the rows whose first
    ``ceil(test_size * n)`` entries are the test rows. scikit-learn is not needed.

    Parameters
    ----------
    interactions : Interactions
        The rows to split (all ratings, before choosing positives, as in the notebook).
    test_size : float, default 0.2
        Fraction of rows in the test part, strictly between 0 and 1.
    random_state : int or None, default 42
        Seed of the permutation.

    Returns
    -------
    train, test : Interactions
    """
    if not 0.0 < test_size < 1.0:
        raise DataError(f"test_size must be strictly between 0 and 1, got {test_size}")
    n_rows = len(interactions)
    n_test = math.ceil(test_size * n_rows)
    if n_test == 0 or n_test == n_rows:
        raise DataError(f"cannot split {n_rows} row(s) with test_size={test_size}")
    permutation = np.random.RandomState(random_state).permutation(n_rows)
    return interactions.subset(permutation[n_test:]), interactions.subset(permutation[:n_test])
