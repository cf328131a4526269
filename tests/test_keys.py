"""tripletrec._keys: pair keys and sorted membership, against a Python set."""

from __future__ import annotations

import numpy as np

from tripletrec._keys import contains, pair_keys


def test_pair_keys_are_int64_and_unique_per_pair():
    keys = pair_keys(np.array([0, 1, 2], np.int32), np.array([3, 0, 4], np.int32), 5)
    assert keys.dtype == np.int64
    np.testing.assert_array_equal(keys, [3, 5, 14])
    # Large indices do not overflow int32 arithmetic.
    big = pair_keys(np.array([100_000], np.int32), np.array([7], np.int32), 1_000_000)
    assert big[0] == 100_000 * 1_000_000 + 7


def test_contains_matches_a_set():
    rng = np.random.default_rng(0)
    stored = np.unique(rng.integers(0, 500, 120))
    queries = rng.integers(-5, 510, size=(40, 7))
    expected = np.vectorize(lambda q: q in set(stored.tolist()))(queries)
    got = contains(stored, queries)
    assert got.shape == queries.shape and got.dtype == bool
    np.testing.assert_array_equal(got, expected)
    assert got.any() and not got.all()


def test_contains_on_edges():
    assert not contains(np.array([], np.int64), np.array([0, 1])).any()
    np.testing.assert_array_equal(
        contains(np.array([5]), np.array([4, 5, 6])), [False, True, False]
    )
