"""The contract's capability checks: what an estimator declares it can do, it does, and
what it does not declare it refuses with one line (see :mod:`tripletrec.testing`)."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest

from tripletrec.exceptions import TripletrecError
from tripletrec.models.base import RecommenderBase
from tripletrec.models.capabilities import Capabilities

#: The ``fit`` options each capability brings: an estimator takes them exactly when it
#: declares the capability.
_FIT_OPTIONS = {
    "side_features": ("user_features", "item_features"),
    "epochs": ("validation", "on_epoch_end"),
    "checkpoints": ("checkpoint_dir",),
}


class CapabilityChecks:
    """Checks of :meth:`~tripletrec.models.base.RecommenderBase.capabilities`, part of
    :class:`~tripletrec.testing.RecommenderContract` (which provides the fixtures)."""

    def make_estimator(self) -> RecommenderBase:  # pragma: no cover - the contract's
        raise NotImplementedError

    def fit_estimator(
        self, estimator: RecommenderBase, data: Any, **fit_params: Any
    ) -> RecommenderBase:  # pragma: no cover - the contract's
        raise NotImplementedError

    # ------------------------------------------------------------------ capabilities
    def test_capabilities_are_one_value_kept_by_fit_and_refused_when_undeclared(
        self, fitted
    ) -> None:
        declared = self.make_estimator().capabilities()
        assert isinstance(declared, Capabilities) and fitted.capabilities() == declared
        # What fit takes follows what the estimator declares.
        fit = inspect.signature(type(fitted).fit).parameters
        for capability, options in _FIT_OPTIONS.items():
            takes = all(option in fit for option in options)
            assert takes == getattr(declared, capability), f"{capability}: fit{options}"
        for name in Capabilities.names():
            if getattr(declared, name):
                fitted.require(name, "the contract")
                continue
            with pytest.raises(TripletrecError) as refused:
                fitted.require(name, "the contract")
            message = str(refused.value)
            assert "\n" not in message and name.replace("_", " ") in message

    def test_the_vector_space_ranks_as_the_model_or_is_none(self, fitted, toy) -> None:
        space = fitted.vector_space()
        if not fitted.capabilities().vector_space:
            assert space is None
            return
        users, items = space
        assert users.dtype == items.dtype == np.float32
        assert users.shape[0] == fitted.n_users_ and items.shape[0] == fitted.n_items_
        rows = fitted.user_map_.to_index(toy.user_ids)
        np.testing.assert_allclose(
            users[rows] @ items.T, fitted.score(toy.user_ids), rtol=1e-4, atol=1e-4
        )

    def test_index_level_history_scores_equal_the_raw_id_ones(self, fitted, toy) -> None:
        histories = toy.histories()
        rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
        items = fitted.item_map_.to_index([item for h in histories for item in h])
        if not fitted.capabilities().history_scoring:
            with pytest.raises(TripletrecError):
                fitted.score_histories(rows, items, len(histories))
            return
        np.testing.assert_array_equal(
            fitted.score_histories(rows, items, len(histories)),
            fitted.score_from_history(histories),
        )

    def test_fit_partial_trains_further_or_refuses(self, toy) -> None:
        estimator = self.fit_estimator(self.make_estimator(), toy.interactions)
        if not estimator.capabilities().fit_partial:
            with pytest.raises(TripletrecError, match="fit partial"):
                estimator.fit_partial(toy.interactions)
            return
        before = estimator.score(toy.user_ids)
        assert estimator.fit_partial(toy.interactions, epochs=1) is estimator
        assert estimator.score(toy.user_ids).shape == before.shape
