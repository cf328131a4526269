"""The contract checks: :class:`RecommenderContract` (see :mod:`tripletrec.testing`)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from tripletrec.data.interactions import Interactions
from tripletrec.exceptions import (
    DataError,
    ModelFileError,
    NotFittedError,
    ParameterError,
    TripletrecError,
    UnknownIdError,
)
from tripletrec.models.base import RecommenderBase
from tripletrec.persistence import MODEL_FILE, WEIGHTS_FILE, load_model
from tripletrec.testing.capability_checks import CapabilityChecks
from tripletrec.testing.data import BlockData, block_data

#: Ids no fitted model knows.
UNKNOWN_USER, UNKNOWN_ITEM = -12345, "no such item"
#: Values of ``k`` every method taking one must reject.
BAD_K = (0, -1, 2.5, True)


def _best(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of each row's ``k`` highest scores, best first, ties by lower index (the
    documented order of every ranking in tripletrec)."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


class RecommenderContract(CapabilityChecks):
    """The checks every :class:`~tripletrec.models.base.RecommenderBase` estimator passes.

    Subclass it in a test module with a ``Test...`` name, define :meth:`make_estimator`,
    and set the class attributes that describe the estimator. See the module docstring.
    What the estimator can do beyond the base contract is not declared here but by the
    estimator itself (:meth:`~tripletrec.models.base.RecommenderBase.capabilities`): each
    declared capability is checked to work, each undeclared one to be refused.
    """

    #: A history's scores equal those of a trained user with that history, exactly.
    history_is_exact: bool = False
    #: Why the estimator cannot find the known answers of :func:`block_data`; None: it must.
    no_answer_reason: str | None = None
    #: Why ``similar_items`` does not follow the blocks; None: each item's most similar
    #: item is in its block.
    no_similarity_reason: str | None = None

    def make_estimator(self) -> RecommenderBase:
        """A new, unfitted estimator with a fixed seed and settings small enough for
        :func:`block_data`."""
        raise NotImplementedError("define make_estimator in the contract subclass")

    def fit_estimator(
        self, estimator: RecommenderBase, data: Interactions | sp.spmatrix, **fit_params: Any
    ) -> RecommenderBase:
        """Fit ``estimator`` on ``data`` (override to pass side features, ...)."""
        return estimator.fit(data, **fit_params)

    def expected_top_items(self, toy: BlockData) -> np.ndarray:
        """Raw id of the item the fitted estimator recommends first to each user."""
        return toy.held_out

    # ------------------------------------------------------------------ fixtures
    @pytest.fixture(scope="class")
    @classmethod
    def toy(cls) -> BlockData:
        return block_data()

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, toy: BlockData) -> RecommenderBase:
        contract = cls()
        return contract.fit_estimator(contract.make_estimator(), toy.interactions)

    @pytest.fixture(scope="class")
    @classmethod
    def saved(cls, fitted: RecommenderBase, tmp_path_factory: pytest.TempPathFactory) -> Path:
        return fitted.save(tmp_path_factory.mktemp("contract") / "model")

    def _answer(self) -> None:
        if self.no_answer_reason is not None:
            pytest.skip(self.no_answer_reason)

    # ------------------------------------------------------------------ parameters
    def test_params_rebuild_an_equal_estimator_and_repr_shows_them(self) -> None:
        estimator = self.make_estimator()
        params = estimator.get_params()
        rebuilt = type(estimator)(**params)
        assert rebuilt.get_params() == params and repr(rebuilt) == repr(estimator)
        assert repr(estimator).startswith(f"{type(estimator).__name__}(")
        assert all(f"{name}={value!r}" in repr(estimator) for name, value in params.items())
        assert estimator.set_params(**params) is estimator and estimator.get_params() == params
        with pytest.raises(ValueError, match="no_such_parameter"):
            estimator.set_params(no_such_parameter=1)
        try:  # scikit-learn is optional here (it is in the test extra)
            from sklearn.base import clone
        except ImportError:
            return
        # clone checks that the constructor stores every parameter as given.
        assert clone(estimator).get_params() == params

    def test_fit_returns_self_keeps_params_and_records_the_data(self, toy: BlockData) -> None:
        estimator = self.make_estimator()
        params = estimator.get_params()
        assert self.fit_estimator(estimator, toy.interactions) is estimator
        assert estimator.get_params() == params  # fitting never changes hyper-parameters
        assert estimator.user_map_ == toy.interactions.user_map
        assert estimator.item_map_ == toy.interactions.item_map
        assert (estimator.seen_ != toy.interactions.to_csr()).nnz == 0

    def test_an_unfitted_estimator_raises_not_fitted(self, toy: BlockData, tmp_path: Path) -> None:
        estimator = self.make_estimator()
        calls = [
            lambda: estimator.score(toy.user_ids[:1]),
            lambda: estimator.recommend(toy.user_ids[:1]),
            lambda: estimator.similar_items(toy.item_ids[:1]),
            lambda: estimator.recommend_from_history([toy.item_ids[:2].tolist()]),
            lambda: estimator.save(tmp_path / "model"),
        ]
        for call in calls:
            with pytest.raises(NotFittedError):
                call()

    def test_same_random_state_gives_identical_scores(self, fitted, toy: BlockData) -> None:
        again = self.fit_estimator(self.make_estimator(), toy.interactions)
        np.testing.assert_array_equal(again.score(toy.user_ids), fitted.score(toy.user_ids))
        for a, b in zip(again.similar_items(toy.item_ids), fitted.similar_items(toy.item_ids)):
            np.testing.assert_array_equal(a, b)

    # ------------------------------------------------------------------ scoring
    def test_score_has_one_float32_row_per_user_and_item_columns(self, fitted, toy) -> None:
        users, items = toy.user_ids[[5, 0, 17]], toy.item_ids[[7, 2, 9]]
        full = fitted.score(users)
        assert full.shape == (3, len(toy.item_ids)) and full.dtype == np.float32
        assert np.isfinite(full).all()
        np.testing.assert_allclose(
            fitted.score(users, items), full[:, [7, 2, 9]], rtol=1e-6, atol=1e-6
        )
        np.testing.assert_array_equal(fitted.score_indices(np.array([5, 0, 17])), full)
        # One user is a smaller product than three: equal up to rounding.
        np.testing.assert_allclose(fitted.score(users[0]), full[:1], rtol=1e-6, atol=1e-6)

    def test_recommend_returns_the_best_unseen_items_sorted(self, fitted, toy) -> None:
        k = 4
        items, scores = fitted.recommend(toy.user_ids, k=k)
        assert items.shape == scores.shape == (len(toy.user_ids), k)
        assert items.dtype == toy.item_ids.dtype and scores.dtype == np.float32
        masked = np.where(
            toy.interactions.to_csr().toarray() > 0, -np.inf, fitted.score(toy.user_ids)
        )
        best = _best(masked, k)
        np.testing.assert_array_equal(items, toy.item_ids[best])
        np.testing.assert_array_equal(scores, np.take_along_axis(masked, best, axis=1))

    def test_recommend_without_filter_and_with_exclusions(self, fitted, toy) -> None:
        users = toy.user_ids[[0, 12, 23]]
        scores = fitted.score(users)
        everything, _ = fitted.recommend(users, k=5, filter_seen=False)
        np.testing.assert_array_equal(everything, toy.item_ids[_best(scores, 5)])
        left_out = everything[0, :2]  # among the best of every user, in this data
        items, _ = fitted.recommend(users, k=5, filter_seen=False, exclude=left_out)
        scores[:, np.isin(toy.item_ids, left_out)] = -np.inf
        np.testing.assert_array_equal(items, toy.item_ids[_best(scores, 5)])

    def test_recommend_pads_rows_with_fewer_candidates_than_k(self, fitted, toy) -> None:
        k = len(toy.item_ids)  # every user has seen some items
        items, scores = fitted.recommend(toy.user_ids, k=k)
        n_seen = np.diff(toy.interactions.to_csr().indptr)
        for row, n in enumerate(n_seen):
            assert (items[row, k - n :] == -1).all() and np.isneginf(scores[row, k - n :]).all()
            assert (items[row, : k - n] != -1).all() and np.isfinite(scores[row, : k - n]).all()

    def test_similar_items_leave_out_the_query_and_are_sorted(self, fitted, toy) -> None:
        query = toy.item_ids[[3, 20]]
        k = len(toy.item_ids)  # one more than the candidates: the last column is padding
        items, similarities = fitted.similar_items(query, k=k)
        assert items.shape == similarities.shape == (2, k) and similarities.dtype == np.float32
        assert not (items == query[:, None]).any()
        assert (items[:, -1] == -1).all() and np.isneginf(similarities[:, -1]).all()
        assert (np.diff(similarities[:, :-1], axis=1) <= 0).all()
        assert sorted(items[0, :-1]) == sorted(set(toy.item_ids) - {query[0]})

    def test_batch_calls_equal_single_calls(self, fitted, toy) -> None:
        users, items = toy.user_ids[[3, 11, 20]], toy.item_ids[[1, 15]]
        together = fitted.recommend(users, k=3)
        for row, user in enumerate(users):
            np.testing.assert_allclose(
                fitted.score([user]), fitted.score(users)[[row]], rtol=1e-6, atol=1e-6
            )
            alone = fitted.recommend([user], k=3)
            np.testing.assert_array_equal(alone[0][0], together[0][row])
            np.testing.assert_allclose(alone[1][0], together[1][row], rtol=1e-6, atol=1e-6)
        similar = fitted.similar_items(items, k=3)
        for row, item in enumerate(items):
            np.testing.assert_array_equal(fitted.similar_items([item], k=3)[0][0], similar[0][row])

    def test_unknown_ids_raise_unknown_id_error(self, fitted, toy) -> None:
        calls = [
            lambda: fitted.score([UNKNOWN_USER]),
            lambda: fitted.score(toy.user_ids[:1], [UNKNOWN_ITEM]),
            lambda: fitted.recommend([toy.user_ids[0], UNKNOWN_USER]),
            lambda: fitted.similar_items([UNKNOWN_ITEM]),
        ]
        for call in calls:
            with pytest.raises(UnknownIdError, match=r"unknown (user|item) id"):
                call()

    def test_bad_k_raises_a_tripletrec_error(self, fitted, toy) -> None:
        calls = [
            (fitted.recommend, toy.user_ids[:1]),
            (fitted.similar_items, toy.item_ids[:1]),
            (fitted.recommend_from_history, [toy.item_ids[:3].tolist()]),
        ]
        for k in BAD_K:
            for method, ids in calls:
                with pytest.raises(TripletrecError, match="k must be"):
                    method(ids, k=k)

    # ------------------------------------------------------------------ ids
    def test_string_ids_give_the_same_model_and_pad_with_none(self, fitted, toy) -> None:
        data = toy.string_interactions
        model = self.fit_estimator(self.make_estimator(), data)
        np.testing.assert_array_equal(model.score(data.user_map.ids), fitted.score(toy.user_ids))
        items, _ = model.recommend(data.user_map.ids[:2], k=len(toy.item_ids))
        expected, _ = fitted.recommend(toy.user_ids[:2], k=len(toy.item_ids))
        real = expected != -1
        assert items.dtype == object and all(i is None for i in items[~real])
        same = data.item_map.ids[toy.interactions.item_map.to_index(expected[real])]
        np.testing.assert_array_equal(items[real], same)

    def test_a_sparse_matrix_fits_with_indices_as_ids(self, fitted, toy) -> None:
        matrix = toy.interactions.to_csr()
        model = self.fit_estimator(self.make_estimator(), matrix)
        np.testing.assert_array_equal(model.user_map_.ids, np.arange(matrix.shape[0]))
        np.testing.assert_array_equal(model.item_map_.ids, np.arange(matrix.shape[1]))
        np.testing.assert_array_equal(model.score(np.arange(3)), fitted.score(toy.user_ids[:3]))
        items, _ = model.recommend([0], k=len(toy.item_ids))
        assert items.dtype == np.int64 and items[0, -1] == -1

    # ------------------------------------------------------------------ known answers
    def test_the_top_recommendation_is_the_held_out_item(self, fitted, toy) -> None:
        self._answer()
        items, _ = fitted.recommend(toy.user_ids, k=1)
        np.testing.assert_array_equal(items[:, 0], self.expected_top_items(toy))

    def test_the_most_similar_item_is_in_the_same_block(self, fitted, toy) -> None:
        self._answer()
        if self.no_similarity_reason is not None:
            pytest.skip(self.no_similarity_reason)
        items, _ = fitted.similar_items(toy.item_ids, k=1)
        blocks = toy.blocks[toy.interactions.item_map.to_index(items[:, 0])]
        np.testing.assert_array_equal(blocks, toy.blocks)

    # ------------------------------------------------------------------ new users
    def test_recommend_from_history_folds_in_or_raises(self, fitted, toy) -> None:
        histories = toy.histories()
        if not fitted.capabilities().history_scoring:
            for call in (fitted.recommend_from_history, fitted.score_from_history):
                with pytest.raises(TripletrecError):
                    call(histories)
            return
        items, scores = fitted.recommend_from_history(histories, k=3)
        assert items.shape == scores.shape == (len(histories), 3) and scores.dtype == np.float32
        full = fitted.score_from_history(histories)
        assert full.shape == (len(histories), len(toy.item_ids)) and full.dtype == np.float32
        masked = np.where(toy.interactions.to_csr().toarray() > 0, -np.inf, full)
        np.testing.assert_array_equal(items, toy.item_ids[_best(masked, 3)])
        unfiltered, _ = fitted.recommend_from_history(histories, k=3, filter_history=False)
        np.testing.assert_array_equal(unfiltered, toy.item_ids[_best(full, 3)])
        excluded, _ = fitted.recommend_from_history(histories, k=3, exclude=items[0, :1])
        assert not (excluded == items[0, 0]).any()
        again, _ = fitted.recommend_from_history(histories[:2], k=3)
        np.testing.assert_array_equal(again, items[:2])  # the same whatever else is in the batch
        if self.history_is_exact:
            np.testing.assert_allclose(full, fitted.score(toy.user_ids), rtol=1e-5)
        if self.no_answer_reason is None:
            np.testing.assert_array_equal(items[:, 0], self.expected_top_items(toy))

    # ------------------------------------------------------------------ explanations
    def test_explain_splits_the_score_over_the_history_or_refuses(self, fitted, toy) -> None:
        user, item = toy.user_ids[4], toy.held_out[4]
        if not fitted.capabilities().explain:
            with pytest.raises(ParameterError, match="cannot explain"):
                fitted.explain(user, item)
            return
        history = toy.histories()[4]
        whole = fitted.explain(user, item, n=len(history))
        assert sorted(whole.items.tolist()) == sorted(history)
        assert whole.history_size == len(history) and whole.item == item
        assert (np.diff(whole.contributions) <= 0).all()  # most contributing first
        assert np.isclose(whole.contributions.sum(), whole.explained_score)
        assert np.isclose(whole.score, fitted.score([user], [item])[0, 0], rtol=1e-6)
        if whole.exact:
            assert np.isclose(whole.explained_score, whole.score, rtol=1e-5, atol=1e-6)
        if np.abs(whole.contributions).sum() > 0:
            assert np.isclose(np.abs(whole.shares).sum(), 1.0)
        top = fitted.explain(user, item, n=2)
        np.testing.assert_array_equal(top.items, whole.items[:2])
        np.testing.assert_array_equal(top.shares, whole.shares[:2])
        # The same history given as a new user's (reordered, an item twice, an unknown one)
        # is split the same way.
        given = fitted.explain([UNKNOWN_ITEM, *history[::-1], history[0]], item, n=len(history))
        np.testing.assert_array_equal(given.items, whole.items)
        np.testing.assert_allclose(given.contributions, whole.contributions, rtol=1e-6)
        if self.no_answer_reason is None:  # the held-out item owes most to its own block
            blocks = toy.blocks[toy.interactions.item_map.to_index(top.items[:1])]
            assert blocks[0] == toy.blocks[4]
        calls = [
            (UnknownIdError, lambda: fitted.explain(UNKNOWN_USER, item)),
            (UnknownIdError, lambda: fitted.explain(user, UNKNOWN_ITEM)),
            (DataError, lambda: fitted.explain([], item)),
            (DataError, lambda: fitted.explain([UNKNOWN_ITEM], item)),
            (ParameterError, lambda: fitted.explain(user, item, n=0)),
        ]
        for error, call in calls:
            with pytest.raises(error):
                call()

    # ------------------------------------------------------------------ persistence
    def test_save_and_load_give_identical_answers(self, fitted, saved, toy) -> None:
        loaded = load_model(saved)
        assert type(loaded) is type(fitted) and loaded.get_params() == fitted.get_params()
        assert type(fitted).load(saved).n_items_ == fitted.n_items_
        np.testing.assert_array_equal(loaded.score(toy.user_ids), fitted.score(toy.user_ids))
        for method, ids in (("recommend", toy.user_ids), ("similar_items", toy.item_ids)):
            for a, b in zip(getattr(loaded, method)(ids, k=5), getattr(fitted, method)(ids, k=5)):
                np.testing.assert_array_equal(a, b)

    def test_memory_mapped_and_copied_loads_give_bitwise_equal_answers(
        self, fitted, saved, toy
    ) -> None:
        # The default load maps the weights read-only; mmap=False copies them. The bytes are
        # the same, so every answer must be too, and nothing may write into the mapped
        # arrays while answering (that would raise: they are read-only).
        mapped, copied = load_model(saved), load_model(saved, mmap=False)
        assert mapped.score(toy.user_ids).tobytes() == copied.score(toy.user_ids).tobytes()
        for method, ids in (("recommend", toy.user_ids), ("similar_items", toy.item_ids)):
            for a, b in zip(getattr(mapped, method)(ids, k=5), getattr(copied, method)(ids, k=5)):
                np.testing.assert_array_equal(a, b)
        if mapped.capabilities().history_scoring:
            history = toy.histories()[:3]
            for a, b in zip(
                mapped.recommend_from_history(history, k=5),
                copied.recommend_from_history(history, k=5),
            ):
                np.testing.assert_array_equal(a, b)

    def test_a_corrupt_model_directory_raises_model_file_error(self, saved, tmp_path) -> None:
        def truncate(path: Path) -> None:
            weights = path / WEIGHTS_FILE
            weights.write_bytes(weights.read_bytes()[:-7])

        def flip_a_byte(path: Path) -> None:
            data = bytearray((path / WEIGHTS_FILE).read_bytes())
            data[len(data) // 2] ^= 0xFF
            (path / WEIGHTS_FILE).write_bytes(bytes(data))

        def break_json(path: Path) -> None:
            text = (path / MODEL_FILE).read_text()
            (path / MODEL_FILE).write_text(text[: len(text) // 2])

        for corrupt in (truncate, flip_a_byte, break_json):
            copy = Path(shutil.copytree(saved, tmp_path / corrupt.__name__))
            corrupt(copy)
            with pytest.raises(ModelFileError):
                load_model(copy)

    # ------------------------------------------------------------------ serving
    def test_every_http_endpoint_answers(self, fitted, saved, toy) -> None:
        pytest.importorskip("fastapi")
        pytest.importorskip("httpx2")
        from fastapi.testclient import TestClient

        from tripletrec.serving.app import create_app

        user, item = toy.user_ids[4], toy.item_ids[4]
        with TestClient(create_app(saved)) as client:
            assert client.get("/health").json()["status"] == "ok"
            assert client.get("/model").json()["estimator"] == type(fitted).__name__
            answer = client.get("/recommend", params={"user": str(user), "k": 3}).json()
            assert [row["item_id"] for row in answer["items"]] == list(
                fitted.recommend([user], 3)[0][0]
            )
            assert (
                client.get("/recommend", params={"user": "-1"}).json()["fallback"] == "popularity"
            )
            answer = client.get("/similar", params={"item": str(item), "k": 3}).json()
            assert [row["item_id"] for row in answer["items"]] == list(
                fitted.similar_items([item], 3)[0][0]
            )
            assert client.get("/similar", params={"item": "-1"}).status_code == 404
            history = toy.histories()[4]
            response = client.post("/recommend", json={"history": history, "k": 3})
            if fitted.capabilities().history_scoring:
                expected, _ = fitted.recommend_from_history([history], k=3)
                assert response.status_code == 200, response.text
                assert [row["item_id"] for row in response.json()["items"]] == list(expected[0])
            else:  # a clean refusal, not an internal error
                assert 400 <= response.status_code < 500 and response.json()["detail"]
            response = client.get("/explain", params={"user": str(user), "item": str(item)})
            if fitted.capabilities().explain:
                assert response.status_code == 200, response.text
                expected = fitted.explain(user, item).items.tolist()
                assert [row["item_id"] for row in response.json()["items"]] == expected
            else:
                assert response.status_code == 422 and response.json()["detail"]

    # ------------------------------------------------------------------ training
    def test_scoring_in_on_epoch_end_leaves_training_unchanged(self, toy) -> None:
        if not self.make_estimator().capabilities().epochs:
            pytest.skip("fit does not train by epochs (no on_epoch_end callback)")
        plain = self.fit_estimator(self.make_estimator(), toy.interactions)
        watched = self.make_estimator()
        calls = []

        def on_epoch_end(epoch: int, record: dict) -> None:
            calls.append(watched.recommend(toy.user_ids[:3], k=2))

        self.fit_estimator(watched, toy.interactions, on_epoch_end=on_epoch_end)
        assert calls, "on_epoch_end was never called"
        np.testing.assert_array_equal(watched.score(toy.user_ids), plain.score(toy.user_ids))

    # ------------------------------------------------------------------ refitting
    def test_a_second_fit_on_other_data_equals_a_fresh_fit(self, toy) -> None:
        # Other positives of the same shape (side features are given per index): the
        # block matrix without each user's first positive, its ids the indices.
        other = toy.interactions.to_csr().copy()
        other.data[other.indptr[:-1]] = 0
        other.eliminate_zeros()
        first = self.fit_estimator(self.make_estimator(), toy.interactions)
        refitted = self.fit_estimator(first, other)
        fresh = self.fit_estimator(self.make_estimator(), other)
        users = np.arange(other.shape[0])
        np.testing.assert_array_equal(refitted.score(users), fresh.score(users))
        for a, b in zip(refitted.recommend(users, k=5), fresh.recommend(users, k=5)):
            np.testing.assert_array_equal(a, b)
        fitted = [
            {name for name in vars(model) if name.endswith("_") and not name.startswith("_")}
            for model in (refitted, fresh)
        ]
        assert fitted[0] == fitted[1]  # nothing of the first fit is left over
