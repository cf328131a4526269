"""Train/test splits of :class:`~tripletrec.data.interactions.Interactions`.

Every split returns parts that share the id maps of the input, so a model fitted on the
train part scores the test part's indices directly.
"""

from __future__ import annotations

import math

import numpy as np

from tripletrec._checks import fraction as check_fraction
from tripletrec._checks import positive_int, random_seed
from tripletrec.data.interactions import Interactions
from tripletrec.exceptions import DataError


def _check_interactions(value: object) -> None:
    if not isinstance(value, Interactions):
        raise DataError(f"expected Interactions, got {type(value).__name__}")


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
    _check_interactions(interactions)
    test_size = check_fraction("test_size", test_size, low_open=True, high_open=True)
    random_state = random_seed("random_state", random_state)
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
    _check_interactions(interactions)
    n = positive_int("n", n)
    n_rows = len(interactions)
    if n_rows == 0:
        raise DataError("cannot split: the interactions are empty")
    rank, _ = _rank_within_user(interactions.users)  # in row order
    test = rank < n
    if test.all():
        raise DataError(f"cannot split: no user has more than {n} row(s), so train is empty")
    return interactions.subset(~test), interactions.subset(test)


def movielens_ua_split(interactions: Interactions) -> tuple[Interactions, Interactions]:
    """The official MovieLens 100K ``ua.base``/``ua.test`` split: 10 test rows per user.

    Applied to ``u.data`` in line order (as :func:`tripletrec.data.datasets.load_movielens_100k`
    returns it), the test part holds exactly the 9,430 rows of ``ua.test``.
    """
    return first_n_per_user_split(interactions, n=10)


def _rank_within_user(users: np.ndarray, *keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's 0-based rank within its user, ordered by ``keys``, and the user's row count.

    ``keys`` are sort keys, most significant first; remaining ties keep row order, since
    ``np.lexsort`` is stable.
    """
    n_rows = len(users)
    # lexsort sorts by its last key first: the user groups, then the given keys in order.
    order = np.lexsort((*reversed(keys), users)) if keys else np.argsort(users, kind="stable")
    sorted_users = users[order]
    positions = np.arange(n_rows)
    run_start = np.r_[True, sorted_users[1:] != sorted_users[:-1]]
    first_of_run = np.maximum.accumulate(np.where(run_start, positions, 0))
    rank = np.empty(n_rows, dtype=np.int64)
    rank[order] = positions - first_of_run
    counts = np.bincount(users, minlength=int(users.max()) + 1)
    return rank, counts[users]


def fraction_per_user_split(
    interactions: Interactions, test_fraction: float = 0.2, random_state: int | None = 42
) -> tuple[Interactions, Interactions]:
    """Hold out a random fraction of each user's rows.

    A user with ``n`` rows gets ``round(test_fraction * n)`` random rows (halves rounded
    up) in the test part, but never all of them: every user keeps at least one training
    row, so users with a single row stay entirely in train. Unlike :func:`random_split`,
    every user with enough rows is represented in the test part in proportion to their
    activity, so heavy users do not dominate it by chance.

    Parameters
    ----------
    interactions : Interactions
        The rows to split.
    test_fraction : float, default 0.2
        Fraction of each user's rows in the test part, strictly between 0 and 1.
    random_state : int or None, default 42
        Seed of the per-row random keys.

    Returns
    -------
    train, test : Interactions
        Both keep the input's row order and share its id maps.
    """
    _check_interactions(interactions)
    test_fraction = check_fraction("test_fraction", test_fraction, low_open=True, high_open=True)
    random_state = random_seed("random_state", random_state)
    if len(interactions) == 0:
        raise DataError("cannot split: the interactions are empty")
    keys = np.random.RandomState(random_state).random_sample(len(interactions))
    rank, counts = _rank_within_user(interactions.users, keys)
    # Round half up; cap at n - 1 so nobody loses all their training rows.
    n_test = np.minimum(np.floor(test_fraction * counts + 0.5).astype(np.int64), counts - 1)
    test = rank < n_test
    if not test.any():
        raise DataError(
            f"cannot split: test_fraction={test_fraction} holds out no row "
            "(users have too few rows)"
        )
    return interactions.subset(~test), interactions.subset(test)


def leave_last_k_out(interactions: Interactions, k: int = 1) -> tuple[Interactions, Interactions]:
    """Hold out each user's ``k`` most recent rows (the NCF leave-one-out protocol at k=1).

    Rows are ordered by timestamp; rows with equal timestamps are ordered by row position
    (a later row counts as more recent). A user with ``n <= k`` rows holds out ``n - 1``
    of them, so every user keeps at least one training row.

    Parameters
    ----------
    interactions : Interactions
        The rows to split; they must have timestamps.
    k : int, default 1
        Rows per user in the test part; at least 1.

    Returns
    -------
    train, test : Interactions
        Both keep the input's row order and share its id maps.

    Raises
    ------
    DataError
        When the interactions have no timestamps, or no user has a row to hold out.
    ParameterError
        When ``k`` is not a positive integer.
    """
    _check_interactions(interactions)
    # No user has more rows than there are: a larger k holds out the same rows (and would
    # overflow the int64 arithmetic below).
    k = min(positive_int("k", k), len(interactions))
    if interactions.timestamps is None:
        raise DataError(
            "leave_last_k_out needs timestamps, and these interactions have none; build "
            "them with timestamp_col=... or use fraction_per_user_split"
        )
    if len(interactions) == 0:
        raise DataError("cannot split: the interactions are empty")
    rank, counts = _rank_within_user(interactions.users, interactions.timestamps)
    from_end = counts - 1 - rank
    test = from_end < np.minimum(k, counts - 1)
    if not test.any():
        raise DataError("cannot split: every user has a single row, so nothing is held out")
    return interactions.subset(~test), interactions.subset(test)


def validation_split(
    train: Interactions, fraction: float = 0.1, random_state: int | None = 0
) -> tuple[Interactions, Interactions]:
    """Carve a validation part out of a training part, for early stopping and tuning.

    Pass the *training* part of a train/test split (never the full data, never the test
    part): the test rows must stay unseen by every choice made on validation scores. The
    carve is a random row split, as :func:`random_split`, so the validation part is
    distributed like the test part of the usual protocol.

    Parameters
    ----------
    train : Interactions
        The training part to carve from.
    fraction : float, default 0.1
        Fraction of its rows that go to validation, strictly between 0 and 1.
    random_state : int or None, default 0
        Seed of the permutation.

    Returns
    -------
    fit, validation : Interactions
        The rows to fit on and the held-out validation rows; together they are ``train``.
        Both share its id maps.
    """
    _check_interactions(train)
    fraction = check_fraction("validation fraction", fraction, low_open=True, high_open=True)
    return random_split(train, test_size=fraction, random_state=random_state)


def cold_item_split(
    interactions: Interactions, fraction: float = 0.2, random_state: int | None = 0
) -> tuple[Interactions, Interactions]:
    """Hold out a share of the items entirely: every interaction of theirs goes to test.

    The cold-start protocol for new items (``docs/protocols.md``): a model fitted on
    ``train`` has never seen a held-out item, and can only rank them from side features
    (added with ``TripletRecommender.add_items``). Evaluate with
    ``evaluate(model, train, test, items=cold_items)`` to rank the held-out items only.

    Parameters
    ----------
    interactions : Interactions
    fraction : float, default 0.2
        Share of the items held out, strictly between 0 and 1.
    random_state : int or None, default 0
        Seed of the item draw.

    Returns
    -------
    train : Interactions
        The interactions of the other items, with compacted id maps (see
        :meth:`Interactions.compact`): the held-out items are not in them.
    test : Interactions
        Every interaction of the held-out items (the parent's id maps).
    """
    _check_interactions(interactions)
    fraction = check_fraction("fraction", fraction, low_open=True, high_open=True)
    n_items = interactions.n_items
    n_cold = math.ceil(fraction * n_items)
    if not 0 < n_cold < n_items:
        raise DataError(f"cannot hold out {fraction:g} of {n_items} item(s)")
    cold = np.zeros(n_items, dtype=bool)
    cold[np.random.default_rng(random_state).permutation(n_items)[:n_cold]] = True
    in_test = cold[interactions.items]
    return interactions.subset(~in_test).compact(), interactions.subset(in_test)
