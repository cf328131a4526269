"""The peers (LightFM, implicit) behind tripletrec's interface, so that one metric code
scores every model.

``fit_lightfm(loss)`` and ``fit_implicit(kind)`` raise ``ImportError`` when the peer is not
installed (``pip install .[bench]``; LightFM 1.17's recipe is in ``perf/compare.py``).
Importing this module registers :class:`FactorModel` in tripletrec's estimator registry,
as any ``RecommenderBase`` subclass does.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

import tripletrec as tr
from tripletrec.models.base import RecommenderBase

from _protocol import THREADS

#: Factors of every peer.
N_FACTORS = 64


class FactorModel(RecommenderBase):
    """A peer's fitted factors behind tripletrec's interface, so one metric code scores all.

    ``score(u, i) = user_factors[u] . item_factors[i] + item_bias[i]``.
    """

    def __init__(self) -> None:
        pass

    @classmethod
    def from_factors(
        cls,
        train: tr.Interactions,
        user_factors: np.ndarray,
        item_factors: np.ndarray,
        item_bias: np.ndarray | None = None,
    ) -> FactorModel:
        model = cls()
        model._set_training_data(train)
        model.user_factors_ = np.ascontiguousarray(user_factors, dtype=np.float32)
        model.item_factors_ = np.ascontiguousarray(item_factors, dtype=np.float32)
        model.item_bias_ = (
            np.zeros(len(item_factors), np.float32)
            if item_bias is None
            else np.asarray(item_bias, np.float32)
        )
        return model

    def _score_block(self, user_idx: np.ndarray, item_idx: np.ndarray | None) -> np.ndarray:
        items = self.item_factors_ if item_idx is None else self.item_factors_[item_idx]
        bias = self.item_bias_ if item_idx is None else self.item_bias_[item_idx]
        return self.user_factors_[user_idx] @ items.T + bias

    def _item_vectors(self) -> np.ndarray:
        return self.item_factors_

    def _model_state(self) -> dict[str, np.ndarray]:
        return {}

    def _load_model_state(self, state: dict[str, np.ndarray], fit_summary: dict) -> None:
        raise NotImplementedError("benchmark wrappers are not saved")


def fit_lightfm(loss: str) -> Callable[[tr.Interactions, dict, int], RecommenderBase]:
    """A fit of LightFM with ``loss`` and ``settings`` (``learning_rate``, ``epochs``),
    its factors wrapped and its fit seconds in ``fit_seconds_``."""
    from lightfm import LightFM

    def fit(train: tr.Interactions, settings: dict, seed: int) -> RecommenderBase:
        matrix = train.to_csr().tocoo()
        model = LightFM(
            no_components=N_FACTORS,
            loss=loss,
            learning_rate=settings["learning_rate"],
            random_state=seed,
        )
        start = time.perf_counter()
        model.fit(matrix, epochs=settings["epochs"], num_threads=THREADS)
        seconds = time.perf_counter() - start
        _user_bias, user_factors = model.get_user_representations()
        item_bias, item_factors = model.get_item_representations()
        wrapped = FactorModel.from_factors(train, user_factors, item_factors, item_bias)
        wrapped.fit_seconds_ = seconds
        return wrapped

    return fit


def fit_implicit(kind: str) -> Callable[[tr.Interactions, dict, int], RecommenderBase]:
    """A fit of implicit's ``"als"`` (``alpha``, ``regularization``, ``iterations``) or
    BPR (``learning_rate``, ``iterations``), wrapped as :func:`fit_lightfm`'s."""
    import implicit

    def fit(train: tr.Interactions, settings: dict, seed: int) -> RecommenderBase:
        matrix = train.to_csr()
        if kind == "als":
            model = implicit.cpu.als.AlternatingLeastSquares(
                factors=N_FACTORS,
                alpha=settings["alpha"],
                regularization=settings["regularization"],
                iterations=settings["iterations"],
                num_threads=THREADS,
                random_state=seed,
            )
        else:
            model = implicit.cpu.bpr.BayesianPersonalizedRanking(
                factors=N_FACTORS,
                learning_rate=settings["learning_rate"],
                iterations=settings["iterations"],
                num_threads=THREADS,
                random_state=seed,
            )
        start = time.perf_counter()
        model.fit(matrix, show_progress=False)
        seconds = time.perf_counter() - start
        wrapped = FactorModel.from_factors(train, model.user_factors, model.item_factors)
        wrapped.fit_seconds_ = seconds
        return wrapped

    return fit
