"""model.explain: exact splits for item-item models (known by hand), the ridge split of
factor models against its formula, the two forms of a user, errors, and GET/POST /explain."""

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import tripletrec as tr
from tripletrec.exceptions import DataError, ParameterError, UnknownIdError
from tripletrec.models.explain import RIDGE

#: 4 users x 4 items. Users of each item: 0 -> {0, 1}, 1 -> {0, 1, 2}, 2 -> {1, 2, 3},
#: 3 -> {2, 3}; user 1 liked items 0, 1, 2 and not 3.
TINY = sp.csr_matrix(
    np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 1]], dtype=np.float32)
)


def _tiny_named() -> tr.Interactions:
    """TINY with string ids and names (item "d" has none)."""
    users, items = TINY.nonzero()
    frame = pd.DataFrame(
        {"user_id": [f"u{u}" for u in users], "item_id": np.array(list("abcd"))[items]}
    )
    names = pd.DataFrame({"name": ["Alpha", "Beta", "Gamma", None]}, index=list("abcd"))
    return tr.Interactions.from_dataframe(frame, item_metadata=names)


# ---------------------------------------------------------------------- exact, by hand
def test_item_knn_explains_user_1_and_item_3_as_computed_by_hand():
    # Cosine of user sets: sim(2, 3) = |{2, 3}| / sqrt(3 * 2) = 2 / sqrt(6),
    # sim(1, 3) = |{2}| / sqrt(3 * 2) = 1 / sqrt(6), sim(0, 3) = 0.
    model = tr.ItemKNNRecommender(k_neighbours=0).fit(TINY)
    explanation = model.explain(1, 3, n=3)
    assert explanation.items.tolist() == [2, 1, 0] and explanation.exact
    np.testing.assert_allclose(explanation.contributions, [2 / 6**0.5, 1 / 6**0.5, 0], rtol=1e-6)
    np.testing.assert_allclose(explanation.shares, [2 / 3, 1 / 3, 0], rtol=1e-6)
    np.testing.assert_allclose(explanation.score, 3 / 6**0.5, rtol=1e-6)
    assert explanation.explained_score == pytest.approx(explanation.score, rel=1e-6)
    assert explanation.history_size == 3 and explanation.item == 3


def test_rp3beta_explains_user_1_and_item_3_as_computed_by_hand():
    # alpha = 1: W[i, j] = sum_u x_ui / pop(i) * x_uj / |items of u| / pop(j)^beta. Item 3's
    # users are 2 (3 items) and 3 (2 items): W[2, 3] = (1/3 * 1/3 + 1/3 * 1/2) / sqrt(2),
    # W[1, 3] = 1/3 * 1/3 / sqrt(2), W[0, 3] = 0.
    model = tr.RP3BetaRecommender(alpha=1.0, beta=0.5).fit(TINY)
    explanation = model.explain(1, 3, n=2)
    w23, w13 = (1 / 9 + 1 / 6) / 2**0.5, (1 / 9) / 2**0.5
    assert explanation.items.tolist() == [2, 1]  # n=2 of the 3 history items
    np.testing.assert_allclose(explanation.contributions, [w23, w13], rtol=1e-6)
    np.testing.assert_allclose(explanation.shares, [5 / 7, 2 / 7], rtol=1e-6)
    np.testing.assert_allclose(explanation.score, w23 + w13, rtol=1e-6)


def test_ease_contributions_are_the_columns_of_its_closed_form_with_negative_shares():
    l2 = 1.0
    x = TINY.toarray().astype(np.float64)
    precision = np.linalg.inv(x.T @ x + l2 * np.eye(4))
    weights = -precision / np.diag(precision)[None, :]
    np.fill_diagonal(weights, 0.0)
    model = tr.EASERecommender(l2=l2).fit(TINY)
    explanation = model.explain(1, 3, n=3)
    history = explanation.items
    np.testing.assert_allclose(explanation.contributions, weights[history, 3], rtol=1e-5)
    assert (np.diff(explanation.contributions) <= 0).all()
    assert explanation.contributions[-1] < 0 and explanation.shares[-1] < 0  # item 0 counts against
    np.testing.assert_allclose(np.abs(explanation.shares).sum(), 1.0)
    np.testing.assert_allclose(explanation.score, x[1] @ weights[:, 3], rtol=1e-5)


@pytest.mark.parametrize(
    "model",
    [tr.EASERecommender(l2=1.0), tr.RP3BetaRecommender(), tr.ItemKNNRecommender(k_neighbours=2)],
    ids=lambda m: type(m).__name__,
)
def test_a_known_user_and_the_same_history_are_explained_alike(model):
    model.fit(TINY)
    for user in range(4):
        history = TINY[user].indices.tolist()
        for item in range(4):
            as_user = model.explain(user, item, n=4)
            as_history = model.explain(history[::-1] + history[:1], item, n=4)  # order, repeats
            np.testing.assert_array_equal(as_history.items, as_user.items)
            np.testing.assert_allclose(as_history.contributions, as_user.contributions)
            np.testing.assert_allclose(as_history.score, as_user.score, rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(
                as_user.score, model.score([user], [item])[0, 0], rtol=1e-5, atol=1e-7
            )


def test_an_item_nothing_links_to_has_zero_contributions_and_shares():
    matrix = sp.hstack([TINY, sp.csr_matrix((4, 1))]).tocsr()  # item 4: no positive
    model = tr.EASERecommender(l2=1.0).fit(matrix)
    explanation = model.explain(1, 4)
    assert explanation.score == 0 and explanation.explained_score == 0
    assert not explanation.contributions.any() and not explanation.shares.any()


# ---------------------------------------------------------------------- factor models
@pytest.fixture(scope="module")
def ratings():
    rng = np.random.default_rng(0)
    return sp.csr_matrix((rng.random((30, 12)) < 0.3).astype(np.float32))


def _ridge_split(vectors: np.ndarray, history: np.ndarray, item: int) -> np.ndarray:
    """The formula, written out: W = (Y_H' Y_H + lambda I)^-1, contribution_i = y_j' W y_i."""
    lam = RIDGE * np.mean(np.sum(vectors**2, axis=1))
    y_h = vectors[history]
    w = np.linalg.inv(y_h.T @ y_h + lam * np.eye(vectors.shape[1]))
    return np.array([vectors[item] @ w @ y_i for y_i in y_h])


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_a_factor_model_split_is_the_ridge_formula_and_sums_to_the_ridge_score(ratings, similarity):
    model = tr.TripletRecommender(n_factors=4, similarity=similarity, epochs=5, random_state=0).fit(
        ratings
    )
    vectors = model.module_.item_embedding.weight.detach().double().numpy()
    if similarity == "cosine":  # the score is against the normalised item vectors
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    user, item = 3, 5
    history = ratings[user].indices
    explanation = model.explain(user, item, n=len(history))
    order = np.searchsorted(history, model.item_map_.to_index(explanation.items))
    np.testing.assert_allclose(
        explanation.contributions, _ridge_split(vectors, history, item)[order], rtol=1e-6
    )
    # The contributions add up to <u, y_j>, u the ridge fit of the history to all-ones
    # (solved here as an augmented least-squares problem, not through the formula).
    lam = RIDGE * np.mean(np.sum(vectors**2, axis=1))
    design = np.vstack([vectors[history], np.sqrt(lam) * np.eye(4)])
    target = np.r_[np.ones(len(history)), np.zeros(4)]
    ridge_user = np.linalg.lstsq(design, target, rcond=None)[0]
    assert explanation.explained_score == pytest.approx(vectors[item] @ ridge_user, rel=1e-6)
    assert explanation.contributions.sum() == pytest.approx(explanation.explained_score)
    assert not explanation.exact
    # The score is the model's own, not the approximation.
    assert explanation.score == pytest.approx(float(model.score([user], [item])[0, 0]), rel=1e-6)


def test_a_new_users_history_is_scored_by_fold_in_and_split_like_a_known_user(ratings):
    model = tr.TripletRecommender(n_factors=4, epochs=5, random_state=0).fit(ratings)
    history = ratings[3].indices.tolist()
    as_history = model.explain(history, 5, n=3)
    as_user = model.explain(3, 5, n=3)
    np.testing.assert_array_equal(as_history.items, as_user.items)
    np.testing.assert_allclose(as_history.contributions, as_user.contributions)
    expected = model.score_from_history([history])[0, 5]
    assert as_history.score == pytest.approx(float(expected), rel=1e-6)


# ---------------------------------------------------------------------- errors
def test_models_whose_scores_are_not_made_of_the_history_refuse_clearly():
    for model in (tr.PopularityRecommender(), tr.RandomRecommender(random_state=0)):
        with pytest.raises(ParameterError, match="cannot explain"):
            model.fit(TINY).explain(1, 3)
    deep = tr.TripletRecommender(model="deep", epochs=1, random_state=0).fit(TINY)
    with pytest.raises(ParameterError, match="no user/item vector space"):
        deep.explain(1, 3)


def test_bad_users_items_histories_and_n_raise_clear_errors():
    model = tr.EASERecommender(l2=1.0).fit(_tiny_named())
    with pytest.raises(UnknownIdError, match="'nobody'"):
        model.explain("nobody", "a")
    with pytest.raises(UnknownIdError, match="'zz'"):
        model.explain("u1", "zz")
    with pytest.raises(DataError, match="empty"):
        model.explain([], "a")
    with pytest.raises(DataError, match="no item id the model knows"):
        model.explain(["zz", "yy"], "a")
    with pytest.raises(ParameterError, match="one raw item id"):
        model.explain("u1", ["a", "b"])
    for n in (0, -1, 2.5, True):
        with pytest.raises(ParameterError, match="n must be"):
            model.explain("u1", "a", n=n)
    with pytest.raises(tr.NotFittedError):
        tr.EASERecommender().explain("u1", "a")


def test_to_dict_is_json_with_names_and_none_for_a_missing_name():
    model = tr.ItemKNNRecommender(k_neighbours=0).fit(_tiny_named())
    body = model.explain("u2", "a", n=10).to_dict()
    assert json.loads(json.dumps(body)) == body
    assert body["item"] == "a" and body["name"] == "Alpha" and body["history_size"] == 3
    assert [row["item_id"] for row in body["items"]] == ["b", "c", "d"]
    assert [row["name"] for row in body["items"]] == ["Beta", "Gamma", None]
    keys = {"item", "name", "score", "exact", "explained_score", "history_size", "items"}
    assert set(body) == keys
    plain = tr.ItemKNNRecommender(k_neighbours=0).fit(TINY).explain(1, 3).to_dict()
    assert "name" not in plain and all("name" not in row for row in plain["items"])
    assert all(isinstance(row["item_id"], int) for row in plain["items"])


# ---------------------------------------------------------------------- serving
@pytest.fixture(scope="module")
def client(tmp_path_factory):
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx2")
    from fastapi.testclient import TestClient

    from tripletrec.serving.app import create_app

    root = tmp_path_factory.mktemp("explain")
    data = _tiny_named()
    model = tr.ItemKNNRecommender(k_neighbours=0).fit(data)
    popularity = tr.PopularityRecommender().fit(data)
    with (
        TestClient(create_app(model.save(root / "knn"))) as knn,
        TestClient(create_app(popularity.save(root / "popularity"))) as popular,
    ):
        yield knn, popular, model


def test_get_explain_answers_the_model_explanation_with_names(client):
    knn, _, model = client
    response = knn.get("/explain", params={"user": "u1", "item": "d", "n": 2})
    assert response.status_code == 200, response.text
    assert response.json() == {"user": "u1"} | model.explain("u1", "d", n=2).to_dict()
    assert [row["name"] for row in response.json()["items"]] == ["Gamma", "Beta"]
    default = knn.get("/explain", params={"user": "u1", "item": "d"}).json()
    assert len(default["items"]) == 3  # n defaults to 5: the whole 3-item history


def test_post_explain_explains_a_history_and_lists_its_unknown_items(client):
    knn, _, model = client
    body = {"history": ["a", "zz", "b", "c", "zz"], "item": "d", "n": 3}
    response = knn.post("/explain", json=body)
    assert response.status_code == 200, response.text
    expected = model.explain(["a", "b", "c"], "d", n=3).to_dict()
    assert response.json() == {"user": None, "unknown_items": ["zz"]} | expected


def test_explain_errors_are_404_for_unknown_ids_and_422_for_bad_input(client):
    knn, popular, _ = client
    cases = [
        (knn.get("/explain", params={"user": "nobody", "item": "a"}), 404),
        (knn.get("/explain", params={"user": "u1", "item": "zz"}), 404),
        (knn.get("/explain", params={"user": "u1", "item": "a", "n": 0}), 422),
        (knn.get("/explain", params={"user": "u1"}), 422),
        (knn.post("/explain", json={"history": [], "item": "a"}), 422),
        (knn.post("/explain", json={"history": ["zz"], "item": "a"}), 422),
        (knn.post("/explain", json={"history": ["a"], "item": "zz"}), 404),
        (knn.post("/explain", json={"history": ["a"]}), 422),
        (popular.get("/explain", params={"user": "u1", "item": "a"}), 422),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert response.json()["detail"]
    assert "cannot explain" in cases[-1][0].json()["detail"]
