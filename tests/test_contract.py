"""The estimator contract (tripletrec.testing), run against every estimator kind.

One class per kind; its name names the estimator, so test ids do. Settings are tiny: each
model fits the contract's block data in well under a second.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import numpy as np

import tripletrec
from tripletrec import (
    EASERecommender,
    GraphFilterRecommender,
    HybridRecommender,
    ItemKNNRecommender,
    PopularityRecommender,
    RandomRecommender,
    Recommender,
    RP3BetaRecommender,
    TripletRecommender,
)
from tripletrec.models.base import RecommenderBase
from tripletrec.testing import BlockData, RecommenderContract, block_data, fitted_ids

#: Short, fixed-step training for the block data (24 users, 176 positives).
TINY = dict(epochs=30, batch_size=32, random_state=0)
#: The same for the pairwise presets, which start from the notebook's small learning rate.
TINY_PAIRWISE = dict(TINY, learning_rate=0.05)


class TestTripletRecommenderDotBias(RecommenderContract):
    """The default: dot product with item biases, full softmax."""

    def make_estimator(self) -> TripletRecommender:
        return TripletRecommender(n_factors=8, learning_rate=0.05, **TINY)


class TestTripletRecommenderBilinearCosine(RecommenderContract):
    def make_estimator(self) -> TripletRecommender:
        return TripletRecommender.from_preset("notebook-bilinear", n_factors=8, **TINY_PAIRWISE)


class TestTripletRecommenderDeep(RecommenderContract):
    """The notebook's MLP with dropout, margin loss."""

    def make_estimator(self) -> TripletRecommender:
        # The MLP alone needs more, smaller steps than the others to separate the blocks.
        return TripletRecommender.from_preset(
            "notebook-deep", user_dim=8, item_dim=8, hidden_layers=(16,),
            **dict(TINY, epochs=40, learning_rate=0.02),
        )  # fmt: skip


class TestTripletRecommenderDeepNeuMF(RecommenderContract):
    """The MLP beside a dot product, sampled softmax."""

    def make_estimator(self) -> TripletRecommender:
        return TripletRecommender.from_preset(
            "deep-neumf", user_dim=8, item_dim=8, hidden_layers=(16,), dot_factors=8,
            **TINY_PAIRWISE,
        )  # fmt: skip


class TestTripletRecommenderFM(RecommenderContract):
    def make_estimator(self) -> TripletRecommender:
        return TripletRecommender(model="fm", n_factors=8, learning_rate=0.05, **TINY)


class TestTripletRecommenderUserHistory(RecommenderContract):
    """The default with each user's history in their vector, in per-user batches."""

    def make_estimator(self) -> TripletRecommender:
        return TripletRecommender(
            n_factors=8, learning_rate=0.05, user_history=True, batch_by="user", **TINY
        )


class TestTripletRecommenderWithFeatures(RecommenderContract):
    """The default with user and item side features (each entity's block)."""

    def make_estimator(self) -> TripletRecommender:
        return TripletRecommender(n_factors=8, learning_rate=0.05, **TINY)

    def fit_estimator(self, estimator, data, **fit_params):
        users, items = fitted_ids(data)
        toy = block_data()
        return estimator.fit(
            data,
            user_features=toy.block_features(users),
            item_features=toy.block_features(items),
            **fit_params,
        )


class TestRandomRecommender(RecommenderContract):
    no_answer_reason = "random scores do not depend on the data: there is no answer to find"

    def make_estimator(self) -> RandomRecommender:
        return RandomRecommender(random_state=0)


class TestPopularityRecommender(RecommenderContract):
    no_similarity_reason = "popularity has no notion of similarity (the most popular items)"

    def make_estimator(self) -> PopularityRecommender:
        return PopularityRecommender()

    def expected_top_items(self, toy: BlockData) -> np.ndarray:
        # The same ranking for everybody: each user's most popular unseen item.
        return toy.most_popular_unseen


class TestItemKNNRecommender(RecommenderContract):
    def make_estimator(self) -> ItemKNNRecommender:
        return ItemKNNRecommender(k_neighbours=5)


class TestEASERecommender(RecommenderContract):
    history_is_exact = True  # a history is scored as the binary row of a trained user

    def make_estimator(self) -> EASERecommender:
        return EASERecommender(l2=10.0)


class TestRP3BetaRecommender(RecommenderContract):
    history_is_exact = True

    def make_estimator(self) -> RP3BetaRecommender:
        return RP3BetaRecommender(alpha=1.0, beta=0.5)


class TestGraphFilterRecommender(RecommenderContract):
    history_is_exact = True  # a history is scored as the binary row of a trained user

    def make_estimator(self) -> GraphFilterRecommender:
        return GraphFilterRecommender(n_components=4, low_pass_weight=0.3, random_state=0)


class TestGraphFilterRecommenderArpack(RecommenderContract):
    history_is_exact = True

    def make_estimator(self) -> GraphFilterRecommender:
        return GraphFilterRecommender(n_components=4, solver="arpack", random_state=0)


class TestHybridRecommender(RecommenderContract):
    """The default factor model and EASE, blended; l2 chosen on an inner split."""

    def make_estimator(self) -> HybridRecommender:
        factor = dict(n_factors=8, learning_rate=0.05, epochs=30, batch_size=32)
        return HybridRecommender(factor=factor, random_state=0)


class TestRecommender(RecommenderContract):
    """The product's default (the blend above under its own name)."""

    def make_estimator(self) -> Recommender:
        factor = dict(n_factors=8, learning_rate=0.05, epochs=30, batch_size=32)
        return Recommender(factor=factor, random_state=0)


def _estimator_classes() -> set[type[RecommenderBase]]:
    """Every concrete, public ``RecommenderBase`` subclass defined in the tripletrec package."""
    for module in pkgutil.walk_packages(tripletrec.__path__, "tripletrec."):
        if module.name.endswith("__main__"):
            continue  # runs the command line
        try:  # optional dependencies (the service, plots) may be missing
            importlib.import_module(module.name)
        except (ImportError, tripletrec.TripletrecError):
            continue
    found, todo = set(), [RecommenderBase]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        found.add(cls)
    exported = [getattr(tripletrec, name) for name in tripletrec.__all__]
    found.update(c for c in exported if isinstance(c, type) and issubclass(c, RecommenderBase))
    return {
        cls
        for cls in found
        if cls.__module__.split(".")[0] == "tripletrec"
        and not cls.__name__.startswith("_")
        and not inspect.isabstract(cls)
    }


def test_every_estimator_has_a_contract_class():
    covered = {
        type(value().make_estimator())
        for value in globals().values()
        if isinstance(value, type)
        and issubclass(value, RecommenderContract)
        and value is not RecommenderContract
    }
    missing = sorted(cls.__name__ for cls in _estimator_classes() - covered)
    assert not missing, (
        f"no contract class for {', '.join(missing)}: add a RecommenderContract subclass "
        "to tests/test_contract.py"
    )
