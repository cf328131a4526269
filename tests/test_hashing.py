"""tripletrec._hashing: one SplitMix64, bitwise equal to the two copies it replaced.

The expected numbers were computed with the code before the merge (the random baseline's
own finaliser and fold-in's SplitMix64), so a change in either rule fails here.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from tripletrec._hashing import mix64, splitmix64, uniform01
from tripletrec.models.baselines import RandomRecommender

VALUES = np.array([0, 1, 2, 2**63, 2**64 - 1], dtype=np.uint64)


def test_splitmix64_is_the_reference_generator():
    # 0xE220A8397B1DCDAF is the first output of SplitMix64 seeded with 0 (Vigna's splitmix64.c).
    expected = [0xE220A8397B1DCDAF, 0x910A2DEC89025CC1, 0x975835DE1C9756CE,
                0x481EC0A212A9F3DB, 0xE4D971771B652C20]  # fmt: skip
    assert [int(v) for v in splitmix64(VALUES)] == expected
    np.testing.assert_array_equal(splitmix64(VALUES), mix64(VALUES + np.uint64(0x9E3779B97F4A7C15)))


def test_uniform01_is_unchanged():
    expected = [0.88331081, 0.56656158, 0.59118973, 0.28171925, 0.89394292]
    np.testing.assert_allclose(uniform01(VALUES), expected, rtol=0, atol=5e-9)
    draws = uniform01(np.arange(1000, dtype=np.uint64))
    assert draws.min() >= 0 and draws.max() < 1


def test_random_baseline_scores_are_unchanged():
    model = RandomRecommender(random_state=3).fit(sp.csr_matrix(np.ones((3, 4), np.float32)))
    expected = np.array(
        [[14074199, 12755582, 4083352, 2460998],
         [14832228, 15037317, 10631250, 9364406],
         [10450886, 3274698, 5573751, 12041427]],
    ) / np.float32(2**24)  # fmt: skip
    np.testing.assert_array_equal(model.score_indices(np.arange(3)), expected.astype(np.float32))
