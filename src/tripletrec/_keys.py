"""Pair keys and sorted membership: "is (row, column) one of these pairs?" for many pairs.

A pair ``(row, col)`` of a matrix with ``n_cols`` columns is the int64 key
``row * n_cols + col``; keys of a CSR matrix with sorted indices are increasing in storage
order. Testing many pairs against a set of pairs is then one binary search over the sorted
keys, without a dense matrix and without a Python loop. The negative samplers, the sampled
evaluation protocol, fold-in and the ranking metrics all use this rule.
"""

from __future__ import annotations

import numpy as np


def pair_keys(rows: np.ndarray, cols: np.ndarray, n_cols: int) -> np.ndarray:
    """The int64 keys ``rows * n_cols + cols`` (broadcast like the arrays)."""
    return np.asarray(rows, dtype=np.int64) * np.int64(n_cols) + np.asarray(cols, dtype=np.int64)


def contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Whether each of ``keys`` is in ``sorted_keys`` (ascending), as a bool array shaped
    like ``keys``."""
    keys = np.asarray(keys)
    if len(sorted_keys) == 0:
        return np.zeros(keys.shape, dtype=bool)
    position = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[position] == keys
