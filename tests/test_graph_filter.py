"""GraphFilterRecommender: its scores against the formulas (its own, GF-CF's) computed
densely, the plateau, files saved before the filter's settings, the clamp of k on tiny
data, degree-0 users and items, determinism, parameter checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from tripletrec import (
    GraphFilterRecommender,
    HybridRecommender,
    ParameterError,
    evaluate,
    load_model,
)
from tripletrec.models.graph_filter import SOLVERS
from tripletrec.models.graph_filter_choice import (
    DEGREE_EXPONENT_GRID,
    FALLBACK_DEGREE_EXPONENT,
    chosen_degree_exponent,
)
from tripletrec.models.spectral import plateau
from tripletrec.persistence import MODEL_FILE

GF_CF = {"degree_exponent": None, "flatness": 1.0}


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


def _dense_filter(x: np.ndarray, k: int, weight: float, exponent: float, flatness: float):
    """The filter's scores computed densely, in float64, with an exact SVD:
    ``(phi s P + s V' diag(h(sigma^2) - phi sigma^2 + w) V) D^b``, ``s = x D^-b``."""
    user_degree, item_degree = x.sum(axis=1), x.sum(axis=0)
    with np.errstate(divide="ignore"):
        users = np.where(user_degree > 0, user_degree**-0.5, 0.0)
        items = np.where(item_degree > 0, item_degree**-0.5, 0.0)
        into = np.where(item_degree > 0, item_degree**-exponent, 0.0)
    normalized = users[:, None] * x * items[None, :]
    _, values, vectors = np.linalg.svd(normalized, full_matrices=False)
    top, eigenvalues = vectors[:k], values[:k] ** 2
    spectral = (1 - np.sign(1 - 2 * eigenvalues) * np.abs(1 - 2 * eigenvalues) ** flatness) / 2
    spectral += weight - flatness * eigenvalues
    signal = x * into
    linear = flatness * signal @ normalized.T @ normalized
    return (linear + (signal @ top.T * spectral) @ top) * item_degree**exponent


@pytest.mark.parametrize(
    ("weight", "exponent", "flatness"), [(0.2, 0.35, 1.5), (0.0, 0.0, 1.0), (0.5, 0.5, 2.5)]
)
def test_scores_follow_the_filter_formula(weight, exponent, flatness):
    x = _random_positives()
    model = GraphFilterRecommender(
        n_components=8, low_pass_weight=weight, degree_exponent=exponent, flatness=flatness,
        solver="arpack",
    ).fit(x)  # fmt: skip
    expected = _dense_filter(x.toarray().astype(np.float64), 8, weight, exponent, flatness)
    scores = model.score(np.arange(x.shape[0]))
    np.testing.assert_allclose(scores, expected, atol=1e-4 * np.abs(expected).max())
    # A trained user's history, given as a new user's, scores as that user.
    history = model.score_from_history([list(x[1].indices)])
    np.testing.assert_allclose(history[0], scores[1], rtol=1e-5, atol=1e-6)


def test_the_plateau_maps_the_ends_and_the_middle_to_themselves():
    points = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(plateau(points, 1.0), points, atol=1e-15)
    shaped = plateau(points, 1.5)
    np.testing.assert_allclose(shaped[[0, 2, 4]], [0.0, 0.5, 1.0], atol=1e-15)
    assert shaped[1] > 0.25 and shaped[3] < 0.75  # flatter around 1/2
    slope = plateau(np.array([1e-7]), 1.5)[0] / 1e-7
    assert slope == pytest.approx(1.5, rel=1e-5)


@pytest.mark.parametrize("solver", SOLVERS)
def test_gf_cf_settings_follow_the_gf_cf_formula(solver):
    x = _random_positives()
    model = GraphFilterRecommender(n_components=8, low_pass_weight=0.3, solver=solver, **GF_CF).fit(
        x
    )
    expected = _dense_gf(x.toarray().astype(np.float64), 8, 0.3)
    scores = model.score(np.arange(x.shape[0]))
    # The randomized finder's subspace is close to, not exactly, the top one.
    tolerance = 1e-4 if solver == "arpack" else 2e-2
    np.testing.assert_allclose(scores, expected, atol=tolerance * np.abs(expected).max())
    linear = GraphFilterRecommender(n_components=8, low_pass_weight=0.0, **GF_CF).fit(x)
    np.testing.assert_allclose(
        linear.score(np.arange(x.shape[0])), _dense_gf(x.toarray().astype(float), 8, 0.0),
        rtol=1e-5, atol=1e-6,
    )  # fmt: skip


def test_files_saved_before_the_filter_settings_load_as_gf_cf(tmp_path):
    """A file without ``degree_exponent`` and ``flatness`` (saved before they existed)
    scores as it did, as GF-CF, alone or as a hybrid's part."""
    x = _random_positives()
    gf_cf = GraphFilterRecommender(n_components=8, low_pass_weight=0.3, **GF_CF).fit(x)
    hybrid = HybridRecommender(
        item_item="graph_filter", factor={"epochs": 1, "n_factors": 4}, random_state=0
    ).fit(x)
    hybrid.item_item_.set_params(**GF_CF)
    hybrid.item_item_._drop_caches()
    for model, name in ((gf_cf, "alone"), (hybrid, "hybrid")):
        path = model.save(tmp_path / name)
        manifest = json.loads((path / MODEL_FILE).read_text())
        entries = [manifest["params"]]
        if name == "hybrid":
            entries = [part["params"] for part in manifest["fit"]["parts"].values()]
        for params in entries:
            for setting in GF_CF:
                params.pop(setting, None)
        (path / MODEL_FILE).write_text(json.dumps(manifest))
        loaded = load_model(path)
        np.testing.assert_allclose(
            loaded.score(np.arange(x.shape[0])), model.score(np.arange(x.shape[0])),
            rtol=1e-5, atol=1e-6,
        )  # fmt: skip


def test_auto_chooses_the_degree_exponent_on_an_inner_split_and_keeps_it(tmp_path):
    x = _random_positives(n_users=200, n_items=60, seed=4)
    auto = GraphFilterRecommender(n_components=8, random_state=2).fit(x)
    chosen, scores = chosen_degree_exponent(x, auto._inner_model, 2)
    assert auto.degree_exponent_ == chosen and auto.degree_exponent_scores_ == scores
    assert chosen in DEGREE_EXPONENT_GRID and len(scores) == len(DEGREE_EXPONENT_GRID)
    # The exponent weighs the scores only: the same filter with it given scores the same.
    given = GraphFilterRecommender(n_components=8, degree_exponent=chosen, random_state=2)
    users = np.arange(x.shape[0])
    np.testing.assert_array_equal(given.fit(x).score(users), auto.score(users))
    loaded = load_model(auto.save(tmp_path / "auto"))
    assert loaded.degree_exponent == "auto" and loaded.degree_exponent_ == chosen
    np.testing.assert_array_equal(loaded.score(users), auto.score(users))


def test_the_choice_scores_fewer_users_past_its_score_budget(monkeypatch):
    from tripletrec.models import graph_filter_choice

    asked = []

    def recording(*args, **kwargs):
        asked.append(kwargs["max_users"])
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(graph_filter_choice, "evaluate", recording)
    x = _random_positives(n_users=200, n_items=60, seed=4)
    GraphFilterRecommender(n_components=8).fit(x)
    assert set(asked) == {graph_filter_choice.INNER_USERS}
    asked.clear()
    monkeypatch.setattr(graph_filter_choice, "INNER_SCORE_BUDGET", 60 * 25)
    GraphFilterRecommender(n_components=8).fit(x)
    assert set(asked) == {25}


def test_auto_falls_back_where_the_inner_split_holds_nothing():
    one = sp.csr_matrix(np.ones((1, 2), np.float32))  # seed 0 holds neither positive out
    model = GraphFilterRecommender(random_state=0).fit(one)
    assert model.degree_exponent_ == FALLBACK_DEGREE_EXPONENT
    assert model.degree_exponent_scores_ == []
    assert np.isfinite(model.score([0])).all()


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


def test_the_auto_solver_is_exact_within_both_budgets(monkeypatch):
    from tripletrec.models import graph_filter

    used = []
    exact_top = graph_filter.top_singular_vectors

    def recording(matrix, k, seed, solver):
        used.append((k, solver))
        return exact_top(matrix, 4, seed, solver)

    monkeypatch.setattr(graph_filter, "top_singular_vectors", recording)
    x = sp.random(40, 30, density=0.3, format="csr", random_state=4)

    def fitted_with() -> tuple[int | str, str]:
        GraphFilterRecommender(degree_exponent=0.35).fit(x)
        return used[-1]

    assert fitted_with() == (graph_filter.AUTO_COMPONENTS, "arpack")
    monkeypatch.setattr(graph_filter, "ARPACK_MAX_POSITIVES", x.nnz - 1)  # more positives
    assert fitted_with() == (graph_filter.AUTO_COMPONENTS, "randomized")
    monkeypatch.setattr(graph_filter, "ARPACK_MAX_ITEMS", x.shape[1] - 1)  # more items
    assert fitted_with() == (graph_filter.LARGE_CATALOGUE_COMPONENTS, "randomized")


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
        ({"degree_exponent": -0.5}, "degree_exponent must be >= 0"),
        ({"flatness": 0.0}, "flatness must be > 0"),
        ({"solver": "lanczos"}, "solver must be one of"),
        ({"random_state": -1}, "random_state must be None or an integer"),
    ],
)
def test_bad_parameters_are_refused_in_one_line(params, fragment):
    with pytest.raises(ParameterError, match=fragment) as caught:
        GraphFilterRecommender(**params).fit(_random_positives())
    assert "\n" not in str(caught.value)
