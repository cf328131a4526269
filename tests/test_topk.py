"""tripletrec.evaluation.topk beyond top_k itself: one row, and merging candidate lists."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from tripletrec.evaluation.topk import merge_top_k, one_per_row, top_k, top_k_row
from tripletrec.exceptions import DataError, ParameterError


def test_top_k_row_is_top_k_of_a_one_row_block():
    rng = np.random.default_rng(0)
    row = rng.integers(0, 4, 30).astype(np.float32)  # many ties
    exclude = np.array([3, 7, 11])
    mask = sp.csr_matrix((np.ones(3), (np.zeros(3, int), exclude)), shape=(1, 30))
    for k in (0, 1, 5, 27, 40):
        idx, scores = top_k_row(row, k, exclude)
        expected_idx, expected_scores = top_k(row[None], k, mask)
        np.testing.assert_array_equal(idx, expected_idx[0])
        np.testing.assert_array_equal(scores, expected_scores[0])
    assert (top_k_row(row, 40, exclude)[0][-13:] == -1).all()  # 27 items left, then padding
    with pytest.raises(ParameterError, match="k must be a non-negative integer"):
        top_k_row(row, -1)
    with pytest.raises(DataError, match="NaN or infinite"):
        top_k_row(np.array([1.0, np.inf]), 1)


def test_merging_shards_equals_top_k_of_the_whole():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 5, (6, 40)).astype(np.float32)
    k = 7
    pieces = [top_k(scores[:, s : s + 10], k) for s in range(0, 40, 10)]
    indices = np.hstack([np.where(i >= 0, i + 10 * n, -1) for n, (i, _) in enumerate(pieces)])
    values = np.hstack([v for _, v in pieces])
    merged_idx, merged_scores = merge_top_k(indices, values, k)
    expected_idx, expected_scores = top_k(scores, k)
    np.testing.assert_array_equal(merged_idx, expected_idx)
    np.testing.assert_array_equal(merged_scores, expected_scores)
    assert merged_scores.dtype == np.float32


def test_merge_puts_missing_candidates_last_and_pads():
    indices = np.array([[4, -1, 2, 9]])
    scores = np.array([[1.0, 5.0, 1.0, 3.0]], np.float32)  # a missing one with a high score
    idx, top = merge_top_k(indices, scores, 6)
    np.testing.assert_array_equal(idx, [[9, 2, 4, -1, -1, -1]])  # the tie goes to item 2
    np.testing.assert_array_equal(top, [[3.0, 1.0, 1.0, -np.inf, -np.inf, -np.inf]])


def test_one_per_row():
    mask = one_per_row(np.array([2, 0]), 3)
    np.testing.assert_array_equal(mask.toarray(), [[0, 0, 1], [1, 0, 0]])
