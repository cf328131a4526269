"""EASE and RP3beta: equal to their closed forms, histories, persistence, bad parameters."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import tripletrec as tr
from tripletrec.exceptions import DataError, ParameterError, TripletrecError
from tripletrec.models import ease as ease_module
from tripletrec.models import rp3beta as rp3beta_module
from tripletrec.models.item_item import top_k_per_row


def _random_matrix(n_users: int = 40, n_items: int = 25, seed: int = 0) -> sp.csr_matrix:
    """Binary users x items with item 3 never liked (an empty column) and one empty user."""
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < 0.25).astype(np.float32)
    dense[:, 3] = 0.0
    dense[7] = 0.0
    return sp.csr_matrix(dense)


def _ease_closed_form(x: np.ndarray, l2: float) -> np.ndarray:
    precision = np.linalg.inv(x.T @ x + l2 * np.eye(x.shape[1]))
    weights = -precision / np.diag(precision)[None, :]
    np.fill_diagonal(weights, 0.0)
    return weights


def _rp3beta_formula(x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        user_to_item = np.nan_to_num(x / x.sum(axis=1, keepdims=True))
        item_to_user = np.nan_to_num(x.T / x.sum(axis=0)[:, None])
        walk = (item_to_user**alpha) @ (user_to_item**alpha)
        weights = np.nan_to_num(walk / x.sum(axis=0)[None, :] ** beta)
    np.fill_diagonal(weights, 0.0)
    return weights


@pytest.fixture(scope="module")
def matrix() -> sp.csr_matrix:
    return _random_matrix()


@pytest.fixture(scope="module")
def named() -> tr.Interactions:
    rng = np.random.default_rng(1)
    users = rng.integers(0, 30, 300)
    items = rng.integers(0, 20, 300)
    frame = pd.DataFrame({"user_id": [f"u{u}" for u in users], "item_id": items + 100})
    return tr.Interactions.from_dataframe(frame.drop_duplicates())


def test_ease_equals_the_closed_form_with_zero_diagonal(matrix):
    model = tr.EASERecommender(l2=5.0).fit(matrix)
    x = matrix.toarray().astype(np.float64)
    expected = _ease_closed_form(x, 5.0)
    scores = model.score_indices(np.arange(x.shape[0]))
    np.testing.assert_allclose(scores, x @ expected, atol=1e-5)
    # The empty column is left out of the inverse; the full B has zero rows / columns there.
    assert 3 not in model.active_items_ and len(model.active_items_) == x.shape[1] - 1
    full = model._item_vectors()  # rows of B over the active columns
    np.testing.assert_allclose(full, expected[:, model.active_items_], atol=1e-5)
    assert np.all(np.diag(model.weights_) == 0.0)
    assert np.all(scores[:, 3] == 0.0)
    assert model.weights_.dtype == np.float32


def test_blocked_computations_equal_the_one_block_results(matrix, monkeypatch):
    # Blocks of a few items: the Gram matrix, the mirrored inverse and W's rows by pieces.
    x = matrix.toarray().astype(np.float64)
    monkeypatch.setattr(ease_module, "_GRAM_BLOCK_BYTES", 12 * 25 * 4)
    monkeypatch.setattr(ease_module, "_MIRROR_BLOCK_BYTES", 8 * 24 * 5)
    monkeypatch.setattr(rp3beta_module, "_BLOCK_BYTES", 20 * 24 * 3)
    ease = tr.EASERecommender(l2=5.0).fit(matrix)
    np.testing.assert_allclose(
        ease._item_vectors(), _ease_closed_form(x, 5.0)[:, ease.active_items_], atol=1e-5
    )
    for top_k in (None, 4):
        rp3 = tr.RP3BetaRecommender(top_k=top_k).fit(matrix)
        one_block = tr.RP3BetaRecommender(top_k=top_k)
        monkeypatch.setattr(rp3beta_module, "_BLOCK_BYTES", 64 << 20)
        one_block.fit(matrix)
        monkeypatch.setattr(rp3beta_module, "_BLOCK_BYTES", 20 * 24 * 3)
        np.testing.assert_array_equal(rp3._item_vectors(), one_block._item_vectors())


@pytest.mark.parametrize("exponent", [0.5, 1.0])
def test_user_weighted_ease_equals_the_weighted_closed_form(matrix, exponent):
    x = matrix.toarray().astype(np.float64)
    lengths = x.sum(axis=1)
    weights = np.zeros_like(lengths)
    weights[lengths > 0] = lengths[lengths > 0] ** -exponent
    weights *= lengths.sum() / (weights @ lengths)  # all positives weigh as unweighted
    precision = np.linalg.inv(x.T @ (weights[:, None] * x) + 5.0 * np.eye(x.shape[1]))
    expected = -precision / np.diag(precision)[None, :]
    np.fill_diagonal(expected, 0.0)
    model = tr.EASERecommender(l2=5.0, user_weight_exponent=exponent).fit(matrix)
    scores = model.score_indices(np.arange(x.shape[0]))
    np.testing.assert_allclose(scores, x @ expected, atol=1e-5)
    plain = tr.EASERecommender(l2=5.0).fit(matrix).score_indices(np.arange(x.shape[0]))
    assert not np.allclose(scores, plain, atol=1e-3)  # the weighting does change B


def test_ease_scores_a_subset_of_items_like_the_full_scores(matrix):
    model = tr.EASERecommender(l2=2.0).fit(matrix)
    items = np.array([5, 3, 0, 24])
    np.testing.assert_array_equal(
        model.score_indices(np.arange(10), items), model.score_indices(np.arange(10))[:, items]
    )


@pytest.mark.parametrize("least", [1, 10])
def test_ease_for_each_l2_equals_separate_fits_from_one_gram_matrix(matrix, monkeypatch, least):
    separate = [
        tr.EASERecommender(l2=l2, user_weight_exponent=0.5, min_item_positives=least).fit(matrix)
        for l2 in (2.0, 9.0)
    ]
    grams = []
    build = ease_module._gram
    monkeypatch.setattr(ease_module, "_gram", lambda x: grams.append(1) or build(x))
    shared = list(ease_module.ease_for_each_l2(matrix, (2.0, 9.0), 0.5, least))
    assert len(grams) == 1  # one Gram matrix for the whole grid
    for alone, together in zip(separate, shared):
        assert together.get_params() == alone.get_params()
        np.testing.assert_array_equal(together.weights_, alone.weights_)
        np.testing.assert_array_equal(together.active_items_, alone.active_items_)


def test_ease_min_item_positives_fits_the_kept_items_alone(matrix):
    counts = np.asarray(matrix.sum(axis=0)).ravel()
    least = int(np.median(counts[counts > 0]))
    kept = np.flatnonzero(counts >= least)
    model = tr.EASERecommender(l2=5.0, min_item_positives=least).fit(matrix)
    np.testing.assert_array_equal(model.active_items_, kept)
    # B on the kept items is EASE's closed form on their columns alone; the others score 0.
    x = matrix.toarray().astype(np.float64)
    expected = np.zeros((x.shape[0], x.shape[1]))
    expected[:, kept] = x[:, kept] @ _ease_closed_form(x[:, kept], 5.0)
    np.testing.assert_allclose(model.score_indices(np.arange(x.shape[0])), expected, atol=1e-5)
    none_kept = tr.EASERecommender(min_item_positives=int(counts.max()) + 1).fit(matrix)
    assert none_kept.weights_.shape == (0, 0)
    assert not none_kept.score_indices(np.arange(5)).any()
    assert not none_kept.score_histories(np.zeros(2, np.int64), np.array([0, 1]), 1).any()


def test_the_memory_check_counts_the_kept_items_only(matrix):
    counts = np.asarray(matrix.sum(axis=0)).ravel()
    least = int(np.median(counts[counts > 0]))
    n_kept = int(np.count_nonzero(counts >= least))
    peak = ease_module.ease_peak_bytes(n_kept, matrix.nnz, matrix.shape[0])
    ease_module.check_ease_fits("EASE", matrix, peak, min_item_positives=least)
    with pytest.raises(DataError, match=f"cannot fit {n_kept} items"):
        ease_module.check_ease_fits("EASE", matrix, peak - 1, min_item_positives=least)


def test_ease_refuses_a_catalogue_that_does_not_fit_in_memory(matrix):
    n_active = 24
    peak = ease_module.ease_peak_bytes(n_active, matrix.nnz, matrix.shape[0])
    assert peak >= 4 * n_active**2  # the float32 Gram matrix, which becomes B, at least
    with pytest.raises(DataError, match="EASERecommender cannot fit 24 items: its items x"):
        tr.EASERecommender(max_memory_bytes=peak - 1).fit(matrix)
    model = tr.EASERecommender(max_memory_bytes=peak).fit(matrix)
    assert model.weights_.shape == (n_active, n_active)
    # A refused fit leaves the estimator unfitted rather than half-fitted.
    refused = tr.EASERecommender(max_memory_bytes=1)
    with pytest.raises(DataError):
        refused.fit(matrix)
    with pytest.raises(tr.NotFittedError):
        refused.score([0])


@pytest.mark.parametrize(("alpha", "beta"), [(1.0, 0.0), (0.5, 0.7), (1.5, 1.0)])
def test_rp3beta_equals_the_formula(matrix, alpha, beta):
    model = tr.RP3BetaRecommender(alpha=alpha, beta=beta).fit(matrix)
    x = matrix.toarray().astype(np.float64)
    expected = _rp3beta_formula(x, alpha, beta)
    np.testing.assert_allclose(
        model.score_indices(np.arange(x.shape[0])), x @ expected, rtol=1e-5, atol=1e-7
    )
    assert isinstance(model.weights_, np.ndarray) and np.all(np.diag(model.weights_) == 0.0)


def test_rp3beta_top_k_keeps_the_largest_entries_of_each_row(matrix):
    x = matrix.toarray().astype(np.float64)
    expected = _rp3beta_formula(x, 1.0, 0.5)
    # The reference pruning: per row, the 4 largest entries (ties to the lower column).
    order = np.argsort(-expected, axis=1, kind="stable")[:, :4]
    pruned = np.zeros_like(expected)
    np.put_along_axis(pruned, order, np.take_along_axis(expected, order, axis=1), axis=1)
    model = tr.RP3BetaRecommender(alpha=1.0, beta=0.5, top_k=4).fit(matrix)
    assert sp.issparse(model.weights_)
    assert (np.diff(model.weights_.indptr) <= 4).all()
    full = np.zeros_like(expected)
    active = model.active_items_
    full[np.ix_(active, active)] = model.weights_.toarray()
    np.testing.assert_allclose(full, pruned, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(
        model.score_indices(np.arange(x.shape[0])), x @ pruned, rtol=1e-5, atol=1e-7
    )


def test_top_k_per_row_breaks_ties_by_column_and_skips_zeros():
    rows = np.array([[0.0, 2.0, 1.0, 2.0], [0.0, 0.0, 0.0, 3.0]])
    pruned = top_k_per_row(rows, 2)
    np.testing.assert_array_equal(pruned.toarray(), [[0, 2, 0, 2], [0, 0, 0, 3]])
    assert pruned.nnz == 3 and pruned.has_sorted_indices


@pytest.mark.parametrize(
    "model",
    [tr.EASERecommender(l2=3.0), tr.RP3BetaRecommender(), tr.RP3BetaRecommender(top_k=5)],
    ids=["ease", "rp3beta", "rp3beta-top-k"],
)
def test_history_scores_equal_a_trained_user_with_the_same_items(named, model):
    model.fit(named)
    users = ["u3", "u11", "u0"]
    histories = [
        list(named.item_map.ids[model.seen_[model.user_map_.to_index([u])[0]].indices])
        for u in users
    ]
    histories[0] = histories[0] + histories[0][:1]  # a repeated item counts once
    np.testing.assert_array_equal(model.score_from_history(histories), model.score(users))
    items, scores = model.recommend_from_history(histories, k=4)
    expected_items, expected_scores = model.recommend(users, k=4)
    np.testing.assert_array_equal(items, expected_items)
    np.testing.assert_array_equal(scores, expected_scores)
    with pytest.raises(TripletrecError, match="without user features"):
        model.recommend_from_history({"new": [100]}, user_features=object())


@pytest.mark.parametrize(
    "model",
    [tr.EASERecommender(l2=3.0), tr.RP3BetaRecommender(beta=0.3), tr.RP3BetaRecommender(top_k=3)],
    ids=["ease", "rp3beta", "rp3beta-top-k"],
)
def test_save_and_load_give_identical_scores(named, model, tmp_path):
    model.fit(named)
    model.save(tmp_path / "model")
    loaded = tr.load_model(tmp_path / "model")
    assert type(loaded) is type(model) and loaded.get_params() == model.get_params()
    users = named.user_map.ids
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
    np.testing.assert_array_equal(
        loaded.similar_items([100, 105], k=3)[0], model.similar_items([100, 105], k=3)[0]
    )
    assert loaded.fit_seconds_ == pytest.approx(model.fit_seconds_)


def test_similar_items_are_the_cosine_of_rows_of_w(matrix):
    model = tr.RP3BetaRecommender().fit(matrix)
    x = matrix.toarray().astype(np.float64)
    rows = _rp3beta_formula(x, 1.0, 0.5)
    with np.errstate(invalid="ignore"):  # the empty item's row is zero
        unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    cosine = unit[0] @ unit.T
    cosine[0] = -np.inf
    cosine[3] = -np.inf  # the empty item: cosine 0 here, nan in the reference
    items, values = model.similar_items([0], k=3)
    np.testing.assert_array_equal(items[0], np.argsort(-cosine, kind="stable")[:3])
    np.testing.assert_allclose(values[0], np.sort(cosine)[::-1][:3], rtol=1e-5)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (tr.EASERecommender(l2=0.0), "l2 must be > 0"),
        (tr.EASERecommender(l2=float("nan")), "l2 must be a finite number"),
        (tr.EASERecommender(l2=True), "l2 must be a finite number"),
        (tr.EASERecommender(max_memory_bytes=0), "max_memory_bytes must be a positive integer"),
        (tr.EASERecommender(user_weight_exponent=-0.5), "user_weight_exponent must be >= 0"),
        (tr.EASERecommender(min_item_positives=0), "min_item_positives must be a positive"),
        (tr.EASERecommender(min_item_positives=2.5), "min_item_positives must be a positive"),
        (tr.RP3BetaRecommender(alpha=0.0), "alpha must be > 0"),
        (tr.RP3BetaRecommender(beta=-0.1), "beta must be >= 0"),
        (tr.RP3BetaRecommender(top_k=0), "top_k must be a positive integer"),
        (tr.RP3BetaRecommender(top_k=2.5), "top_k must be a positive integer"),
    ],
)
def test_bad_parameters_raise_parameter_error(matrix, model, message):
    with pytest.raises(ParameterError, match=message):
        model.fit(matrix)
    assert not hasattr(model, "seen_")  # checked before touching the data


def test_constructors_only_store_parameters():
    model = tr.RP3BetaRecommender(alpha=-1, top_k="x")  # validated in fit, not here
    assert model.get_params() == {"alpha": -1, "beta": 0.5, "top_k": "x"}
    assert tr.EASERecommender().get_params() == {
        "l2": 500.0,
        "max_memory_bytes": None,
        "user_weight_exponent": 0.0,
        "min_item_positives": 1,
    }
    with pytest.raises(DataError):
        tr.EASERecommender().fit(np.ones((3, 3)))
