"""SplitMix64: the counter-based hash behind every draw that must not depend on a shared
random stream (the random baseline's scores, fold-in's initial vectors and negatives).

``splitmix64(x)`` is one output of the SplitMix64 generator whose state is ``x``: the state
advanced by the golden-ratio increment, then :func:`mix64`, the finaliser. Callers that
already hold well-spread values may apply :func:`mix64` alone. All arithmetic wraps
modulo 2**64.
"""

from __future__ import annotations

import numpy as np

#: The SplitMix64 state increment: 2**64 divided by the golden ratio, made odd.
GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)


def mix64(x: np.ndarray | np.uint64) -> np.ndarray:
    """The SplitMix64 finaliser (a bijection of uint64), elementwise."""
    z = np.array(x, dtype=np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z


def splitmix64(x: np.ndarray | np.uint64) -> np.ndarray:
    """The SplitMix64 output for state ``x``: ``mix64(x + GOLDEN_GAMMA)``, elementwise."""
    with np.errstate(over="ignore"):
        return mix64(np.asarray(x, dtype=np.uint64) + GOLDEN_GAMMA)


def uniform01(x: np.ndarray) -> np.ndarray:
    """Floats in [0, 1) from the top 53 bits of ``splitmix64(x)``."""
    return (splitmix64(x) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
