"""The open estimator registry: any RecommenderBase subclass saves and loads by class name."""

from __future__ import annotations

import json
from abc import abstractmethod

import numpy as np
import pytest
import scipy.sparse as sp

import tripletrec as tr
from tripletrec import _registry
from tripletrec.models.base import RecommenderBase
from tripletrec.persistence import MODEL_FILE, load_model


class ShiftedPopularity(RecommenderBase):
    """A third-party estimator: item counts plus a constant, nothing built in knows it."""

    def __init__(self, shift: float = 0.5, tags: tuple[str, ...] = ("a",)) -> None:
        self.shift = shift
        self.tags = tags

    def fit(self, data: sp.spmatrix) -> ShiftedPopularity:
        seen = self._set_training_data(data)
        self.counts_ = np.asarray(seen.sum(axis=0), np.float32).ravel() + np.float32(self.shift)
        return self

    def _score_block(self, user_idx: np.ndarray, item_idx: np.ndarray | None) -> np.ndarray:
        row = self.counts_ if item_idx is None else self.counts_[item_idx]
        return np.broadcast_to(row, (len(user_idx), len(row))).copy()

    def _item_vectors(self) -> np.ndarray:
        return self.counts_[:, None].copy()

    def _model_state(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts_}

    def _load_model_state(self, state: dict[str, np.ndarray], fit_summary: dict) -> None:
        self.counts_ = np.asarray(state["counts"], np.float32)


def _matrix() -> sp.csr_matrix:
    rng = np.random.default_rng(0)
    return sp.random(30, 12, density=0.3, format="csr", random_state=rng, dtype=np.float32)


def test_built_in_estimators_are_registered():
    known = _registry.registered()
    for cls in (
        tr.TripletRecommender,
        tr.RandomRecommender,
        tr.PopularityRecommender,
        tr.ItemKNNRecommender,
    ):
        assert known[cls.__name__] is cls


def test_a_third_party_estimator_round_trips(tmp_path):
    assert _registry.lookup("ShiftedPopularity") is ShiftedPopularity
    model = ShiftedPopularity(shift=2.0, tags=("x", "y")).fit(_matrix())
    loaded = load_model(model.save(tmp_path / "m"))
    assert type(loaded) is ShiftedPopularity
    assert loaded.get_params() == {"shift": 2.0, "tags": ("x", "y")}  # the tuple survives JSON
    users = np.arange(30)
    np.testing.assert_array_equal(loaded.score_indices(users), model.score_indices(users))
    np.testing.assert_array_equal(loaded.recommend(users, k=3)[0], model.recommend(users, k=3)[0])
    assert ShiftedPopularity.load(tmp_path / "m").shift == 2.0


def test_a_second_class_with_a_registered_name_is_refused():
    with pytest.raises(TypeError, match="'PopularityRecommender' is already registered"):

        class PopularityRecommender(ShiftedPopularity):
            pass

    assert _registry.lookup("PopularityRecommender") is tr.PopularityRecommender


def test_the_same_definition_made_again_replaces_the_old_class():
    def define() -> type:
        class MadeInAFunction(ShiftedPopularity):
            pass

        return MadeInAFunction

    first, second = define(), define()
    assert first is not second
    assert _registry.lookup("MadeInAFunction") is second


def test_abstract_subclasses_are_not_registered():
    class StillAbstract(RecommenderBase):
        @abstractmethod
        def extra(self) -> None: ...

    class Inherits(StillAbstract):  # leaves `extra` and the base's methods abstract
        pass

    assert _registry.lookup("StillAbstract") is None
    assert _registry.lookup("Inherits") is None


def test_an_unknown_estimator_names_the_module_to_import(tmp_path):
    path = ShiftedPopularity().fit(_matrix()).save(tmp_path / "m")
    manifest = json.loads((path / MODEL_FILE).read_text())
    assert manifest["estimator_module"] == __name__
    manifest["estimator"] = "NotDefinedAnywhere"
    manifest["estimator_module"] = "somepackage.models"
    (path / MODEL_FILE).write_text(json.dumps(manifest))
    expected = r"'NotDefinedAnywhere'.*import somepackage\.models"
    with pytest.raises(tr.ModelFileError, match=expected):
        load_model(path)
    del manifest["estimator_module"]  # as files written before the field existed
    (path / MODEL_FILE).write_text(json.dumps(manifest))
    with pytest.raises(tr.ModelFileError, match="import the module that defines it"):
        load_model(path)
