"""The default blended with EASE, for the validation study that chose
``tripletrec.HybridRecommender``'s weight (``studies/hybrid_validation.py``).

``tripletrec.models.hybrid.blend`` of two models fitted once, so that a grid of weights
and ``l2`` costs no refits.
"""

from __future__ import annotations

import numpy as np

from tripletrec.models.base import RecommenderBase
from tripletrec.models.hybrid import blend

#: The EASE ``l2`` grid: eight log-spaced values from 1 to 5,000 (two significant digits).
EASE_L2_GRID = [float(f"{value:.2g}") for value in np.geomspace(1.0, 5000.0, 8)]


class Blend(RecommenderBase):
    """``(1 - weight) z(first) + weight max(z(second), floor)``: a scoring wrapper for the
    studies."""

    def __init__(self) -> None:
        pass

    @classmethod
    def of(
        cls,
        first: RecommenderBase,
        second: RecommenderBase,
        weight: float,
        train,
        floor: float = -np.inf,
    ) -> Blend:
        wrapper = cls()
        wrapper._set_training_data(train)
        wrapper.first, wrapper.second, wrapper.weight, wrapper.floor = first, second, weight, floor
        return wrapper

    def _score_block(self, user_idx: np.ndarray, item_idx: np.ndarray | None) -> np.ndarray:
        first = self.first.score_indices(user_idx, item_idx)
        second = self.second.score_indices(user_idx, item_idx)
        return blend(first, second, self.weight, self.floor)

    def _item_vectors(self) -> np.ndarray:
        return self.first.item_vectors()

    def _model_state(self) -> dict[str, np.ndarray]:
        return {}

    def _load_model_state(self, state: dict[str, np.ndarray], fit_summary: dict) -> None:
        return None
