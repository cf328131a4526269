"""GraphFilterRecommender (GF-CF): its scores against the formula computed densely, the
clamp of k on tiny data, degree-0 users and items, determinism, parameter checks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from tripletrec import GraphFilterRecommender, ParameterError, load_model
from tripletrec.models.graph_filter import SOLVERS


def _random_positives(n_users: int = 60, n_items: int = 40, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < 0.15).astype(np.float32)
    dense[0] = 0.0  # a user with no positive
    dense[:, 5] = 0.0  # an item with no positive
    dense[1, :3] = 1.0
    return sp.csr_matrix(dense)


def _dense_gf(x: np.ndarray, k: int, weight: float) -> np.ndarray:
    """GF-CF's scores computed densely, in float64, with an exact SVD."""
    user_degree, item_degree = x.sum(axis=1), x.sum(axis=0)
    with np.errstate(divide="ignore"):
        users = np.where(user_degree > 0, user_degree**-0.5, 0.0)
        items = np.where(item_degree > 0, item_degree**-0.5, 0.0)
    normalized = users[:, None] * x * items[None, :]
    _, _, vectors = np.linalg.svd(normalized, full_matrices=False)
    top = vectors[:k]
    low_pass = ((x * items) @ top.T @ top) * np.sqrt(item_degree)
    return x @ normalized.T @ normalized + weight * low_pass


@pytest.mark.parametrize("solver", SOLVERS)
def test_scores_follow_the_gf_cf_formula(solver):
    x = _random_positives()
    model = GraphFilterRecommender(n_components=8, low_pass_weight=0.3, solver=solver).fit(x)
    expected = _dense_gf(x.toarray().astype(np.float64), 8, 0.3)
    scores = model.score(np.arange(x.shape[0]))
    # The randomized finder's subspace is close to, not exactly, the top one.
    tolerance = 1e-4 if solver == "arpack" else 2e-2
    np.testing.assert_allclose(scores, expected, atol=tolerance * np.abs(expected).max())
    linear = GraphFilterRecommender(n_components=8, low_pass_weight=0.0).fit(x)
    np.testing.assert_allclose(
        linear.score(np.arange(x.shape[0])), _dense_gf(x.toarray().astype(float), 8, 0.0),
        rtol=1e-5, atol=1e-6,
    )  # fmt: skip


def test_degree_zero_users_and_items_score_zero_not_nan():
    x = _random_positives()
    model = GraphFilterRecommender(n_components=8).fit(x)
    scores = model.score(np.arange(x.shape[0]))
    assert np.isfinite(scores).all()
    np.testing.assert_array_equal(scores[0], 0.0)  # the user without positives
    np.testing.assert_array_equal(scores[:, 5], 0.0)  # the item without positives
    assert np.isfinite(model.item_vectors()).all()
    history = model.score_from_history([[5], [5, 1]])
    assert np.isfinite(history).all()
    np.testing.assert_array_equal(history[0], 0.0)  # only an item without positives


def test_k_is_clamped_to_the_rank_a_truncated_svd_returns():
    x = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]], np.float32))
    model = GraphFilterRecommender(n_components=256).fit(x)  # 4 users x 3 items
    assert model.n_components_ == 2 and model.components_.shape == (2, 3)
    one_user = GraphFilterRecommender().fit(sp.csr_matrix(np.ones((1, 5), np.float32)))
    assert one_user.n_components_ == 0  # no low-pass term: the linear filter alone
    assert np.isfinite(one_user.score([0])).all()


@pytest.mark.parametrize("solver", SOLVERS)
def test_the_same_seed_gives_the_same_model_bitwise(solver, tmp_path):
    x = _random_positives()
    first = GraphFilterRecommender(n_components=8, solver=solver, random_state=3).fit(x)
    again = GraphFilterRecommender(n_components=8, solver=solver, random_state=3).fit(x)
    np.testing.assert_array_equal(first.components_, again.components_)
    np.testing.assert_array_equal(first.score([1, 2]), again.score([1, 2]))
    loaded = load_model(first.save(tmp_path / "gf"))
    for name in ("components_", "singular_values_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(first, name))
    assert (loaded.normalized_ != first.normalized_).nnz == 0
    np.testing.assert_array_equal(loaded.score(np.arange(60)), first.score(np.arange(60)))


def test_the_singular_values_are_the_top_ones_decreasing():
    x = _random_positives()
    model = GraphFilterRecommender(n_components=6, solver="arpack").fit(x)
    exact = np.linalg.svd(model.normalized_.toarray().astype(np.float64), compute_uv=False)
    np.testing.assert_allclose(model.singular_values_, exact[:6], rtol=1e-5)
    assert np.isclose(model.singular_values_[0], 1.0, atol=1e-5)  # Rn's top value is 1


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"n_components": 0}, "n_components must be a positive integer"),
        ({"low_pass_weight": -0.1}, "low_pass_weight must be >= 0"),
        ({"low_pass_weight": float("nan")}, "low_pass_weight must be a finite number"),
        ({"solver": "lanczos"}, "solver must be one of"),
        ({"random_state": -1}, "random_state must be None or an integer"),
    ],
)
def test_bad_parameters_are_refused_in_one_line(params, fragment):
    with pytest.raises(ParameterError, match=fragment) as caught:
        GraphFilterRecommender(**params).fit(_random_positives())
    assert "\n" not in str(caught.value)
