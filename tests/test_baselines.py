"""Random, popularity and item-kNN baselines behind the estimator interface."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import tripletrec as tr
from tripletrec.exceptions import DataError, ParameterError


@pytest.fixture(scope="module")
def tiny() -> tr.Interactions:
    # Users a, b like items 1 and 2 together; c likes 2 and 3; item 1 is the most popular.
    frame = pd.DataFrame(
        {
            "user_id": ["a", "a", "b", "b", "c", "c", "d"],
            "item_id": [1, 2, 1, 2, 2, 3, 1],
        }
    )
    return tr.Interactions.from_dataframe(frame)


@pytest.fixture(scope="module")
def anime_split(anime_tv):
    train, test = tr.random_split(anime_tv, 0.2, 42)
    return train.positives(7), test.positives(7)


def test_popularity_counts_and_ranks_by_training_positives(tiny):
    model = tr.PopularityRecommender().fit(tiny)
    np.testing.assert_array_equal(model.popularity_, [3, 3, 1])  # items 1, 2, 3
    items, _ = model.recommend(["c"], k=1)
    assert items[0, 0] == 1  # the most popular item c has not seen
    # The same scores for everybody.
    scores = model.score(["a", "d"])
    np.testing.assert_array_equal(scores[0], scores[1])
    similar, _ = model.similar_items([1], k=2)
    assert similar.tolist() == [[2, 3]]


def test_item_knn_is_cosine_of_item_columns_times_user_rows(tiny):
    model = tr.ItemKNNRecommender(k_neighbours=0).fit(tiny)
    x = tiny.to_csr().toarray()
    cosine = (x.T @ x) / np.sqrt(np.outer(x.sum(0), x.sum(0)))
    np.fill_diagonal(cosine, 0.0)
    np.testing.assert_allclose(model.similarity_.toarray(), cosine, rtol=1e-6)
    np.testing.assert_allclose(model.score_indices(np.arange(4)), x @ cosine, rtol=1e-6)
    similar, values = model.similar_items([2], k=2)
    assert similar[0, 0] == 1 and values[0, 0] == pytest.approx(cosine[1, 0])


def test_item_knn_keeps_k_neighbours_per_item_and_shrinks():
    rng = np.random.default_rng(0)
    matrix = sp.random(60, 30, density=0.2, random_state=rng, format="csr")
    model = tr.ItemKNNRecommender(k_neighbours=3).fit(matrix)
    full = tr.ItemKNNRecommender(k_neighbours=0).fit(matrix).similarity_.toarray()
    kept = model.similarity_.toarray()
    assert (np.count_nonzero(kept, axis=0) <= 3).all()
    for item in range(30):
        nonzero = kept[:, item] > 0
        if nonzero.any():  # kept values are the largest of the column
            assert kept[nonzero, item].min() >= np.sort(full[:, item])[-3] - 1e-6
    shrunk = tr.ItemKNNRecommender(k_neighbours=0, shrinkage=5.0).fit(matrix).similarity_
    assert (shrunk.toarray() <= full + 1e-7).all() and shrunk.sum() < full.sum()


def test_bad_knn_parameters_raise_parameter_error(tiny):
    with pytest.raises(ParameterError, match="k_neighbours"):
        tr.ItemKNNRecommender(k_neighbours=-1).fit(tiny)
    with pytest.raises(ParameterError, match="shrinkage"):
        tr.ItemKNNRecommender(shrinkage=-1.0).fit(tiny)


def test_random_scores_are_deterministic_uniform_and_batch_independent(tiny, anime_split):
    train, _ = anime_split
    model = tr.RandomRecommender(random_state=3).fit(train)
    users = np.arange(50)
    whole = model.score_indices(users)
    np.testing.assert_array_equal(whole[10:20], model.score_indices(users[10:20]))
    np.testing.assert_array_equal(whole, tr.RandomRecommender(3).fit(train).score_indices(users))
    assert not np.array_equal(whole, tr.RandomRecommender(4).fit(train).score_indices(users))
    assert whole.min() >= 0.0 and whole.max() < 1.0 and abs(whole.mean() - 0.5) < 0.01
    picked = model.score_indices(users, np.array([5, 2]))
    np.testing.assert_array_equal(picked, whole[:, [5, 2]])


def test_reference_values_on_anime_tv(anime_split):
    # reference-results.md: popularity AUC 0.720 / NDCG@10 0.172; random 0.501 / 0.033.
    train, test = anime_split
    popularity = tr.evaluate(tr.PopularityRecommender().fit(train), train, test, ["auc", "ndcg"])
    assert popularity["auc"] == pytest.approx(0.720, abs=0.002)
    assert popularity["ndcg@10"] == pytest.approx(0.172, abs=0.002)
    random = tr.evaluate(tr.RandomRecommender(0).fit(train), train, test, ["auc"])
    assert random["auc"] == pytest.approx(0.5, abs=0.01)
    knn = tr.evaluate(tr.ItemKNNRecommender().fit(train), train, test, ["auc", "ndcg"])
    assert knn["auc"] > popularity["auc"] + 0.05 and knn["ndcg@10"] > popularity["ndcg@10"]


# Save / load, not-fitted errors and the rest of the estimator contract: tests/test_contract.py.
def test_empty_data_is_a_data_error():
    with pytest.raises(DataError, match="empty"):
        tr.ItemKNNRecommender().fit(sp.csr_matrix((3, 3)))
