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


def first_n_per_user_split(
    interactions: Interactions, n: int = 10
) -> tuple[Interactions, Interactions]:
    """Hold out each user's first ``n`` rows, in row order (the GroupLens ``ua`` rule).

    Users with ``n`` rows or fewer have every row in the test part and none in train.
    Both parts keep the input's row order.

    Parameters
    ----------
    interactions : Interactions
        The rows to split; "first" means first in this row order.
    n : int, default 10
        Rows per user that go to the test part; at least 1.

    Returns
    -------
    train, test : Interactions
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DataError(f"n must be a positive whole number of rows per user, got {n!r}")
    n_rows = len(interactions)
    if n_rows == 0:
        raise DataError("cannot split: the interactions are empty")
    users = interactions.users
    # A stable sort groups each user's rows while keeping their order, so a row's rank
    # within its user is its distance from the start of the user's run.
    order = np.argsort(users, kind="stable")
    sorted_users = users[order]
    positions = np.arange(n_rows)
    run_start = np.r_[True, sorted_users[1:] != sorted_users[:-1]]
    first_of_run = np.maximum.accumulate(np.where(run_start, positions, 0))
    rank = np.empty(n_rows, dtype=np.int64)
    rank[order] = positions - first_of_run
    test = rank < n
    if test.all():
        raise DataError(f"cannot split: no user has more than {n} row(s), so train is empty")
    return interactions.subset(~test), interactions.subset(test)


def movielens_ua_split(interactions: Interactions) -> tuple[Interactions, Interactions]:
    """The official MovieLens 100K ``ua.base``/``ua.test`` split: 10 test rows per user.

    Applied to ``u.data`` in line order (as :func:`tripletrec.datasets.load_movielens_100k`
    returns it), the test part holds exactly the 9,430 rows of ``ua.test``.
    """
    return first_n_per_user_split(interactions, n=10)
