"""The default blended with EASE, for the validation study that chose
``tripletrec.HybridRecommender``'s rule (``hybrid_validation.py``).

``(1 - w) z(default) + w z(EASE)`` (``tripletrec.models.hybrid.standardised``) from two
models fitted once, so that a grid of weights and ``l2`` costs no refits.
"""

from __future__ import annotations

import numpy as np

from tripletrec.models.base import RecommenderBase
from tripletrec.models.hybrid import standardised

#: The EASE ``l2`` grid: eight log-spaced values from 1 to 5,000 (two significant digits).
EASE_L2_GRID = [float(f"{value:.2g}") for value in np.geomspace(1.0, 5000.0, 8)]


class Blend(RecommenderBase):
    """``(1 - weight) z(first) + weight z(second)``: a scoring wrapper for the studies."""

    def __init__(self) -> None:
        pass

    @classmethod
    def of(cls, first: RecommenderBase, second: RecommenderBase, weight: float, train) -> Blend:
        blend = cls()
        blend._set_training_data(train)
        blend.first, blend.second, blend.weight = first, second, weight
        return blend

    def _score_block(self, user_idx: np.ndarray, item_idx: np.ndarray | None) -> np.ndarray:
        first = standardised(self.first._score_block(user_idx, item_idx))
        second = standardised(self.second._score_block(user_idx, item_idx))
        return ((1.0 - self.weight) * first + self.weight * second).astype(np.float32)

    def _item_vectors(self) -> np.ndarray:
        return self.first._item_vectors()

    def _model_state(self) -> dict[str, np.ndarray]:
        return {}

    def _load_model_state(self, state: dict[str, np.ndarray], fit_summary: dict) -> None:
        return None
