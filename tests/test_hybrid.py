"""HybridRecommender: the default factor model and EASE, blended on per-user standardised
scores; EASE's l2 chosen on an inner split of the training positives."""

import numpy as np
import pytest
import scipy.sparse as sp

from tripletrec import EASERecommender, HybridRecommender, TripletRecommender
from tripletrec.exceptions import ParameterError
from tripletrec.models import hybrid
from tripletrec.models.hybrid import L2_GRID, standardised

FACTOR = dict(n_factors=8, epochs=5, batch_size=64, learning_rate=0.05)


@pytest.fixture(scope="module")
def data() -> sp.csr_matrix:
    rng = np.random.default_rng(0)
    dense = rng.random((60, 25)) < 0.2
    dense[np.arange(60), rng.integers(0, 25, 60)] = True
    return sp.csr_matrix(dense.astype(np.float32))


@pytest.fixture(scope="module")
def fitted(data) -> HybridRecommender:
    return HybridRecommender(l2=50.0, factor=FACTOR, random_state=1).fit(data)


def test_scores_are_the_weighted_blend_of_both_standardised_models(data, fitted):
    factor = TripletRecommender(**FACTOR, random_state=1).fit(data)
    ease = EASERecommender(l2=50.0).fit(data)
    users = np.arange(60)
    z_factor, z_ease = (standardised(m.score(users)) for m in (factor, ease))
    np.testing.assert_allclose(fitted.score(users), 0.7 * z_factor + 0.3 * z_ease, atol=1e-5)
    # A subset of the items scores as the same columns of the whole catalogue.
    np.testing.assert_array_equal(fitted.score([3], [4, 0, 9]), fitted.score([3])[:, [4, 0, 9]])


def test_standardised_rows_have_mean_zero_and_unit_spread():
    rows = standardised(np.array([[1.0, 2.0, 3.0, 6.0], [5.0, 5.0, 5.0, 5.0]]))
    np.testing.assert_allclose(rows[0].mean(), 0.0, atol=1e-12)
    np.testing.assert_allclose(rows[0].std(), 1.0)
    np.testing.assert_array_equal(rows[1], 0.0)  # a constant row stays 0, not NaN


@pytest.mark.parametrize(("weight", "alone"), [(0.0, "factor"), (1.0, "ease")])
def test_the_end_weights_rank_as_one_model_alone(data, weight, alone):
    model = HybridRecommender(weight=weight, l2=50.0, factor=FACTOR, random_state=1).fit(data)
    single = (
        TripletRecommender(**FACTOR, random_state=1) if alone == "factor"
        else EASERecommender(l2=50.0)
    ).fit(data)  # fmt: skip
    users = np.arange(60)
    np.testing.assert_array_equal(model.recommend(users, k=5)[0], single.recommend(users, k=5)[0])


def test_auto_l2_is_the_grid_value_with_the_best_inner_ndcg(data, monkeypatch):
    seen = []
    original = hybrid.evaluate

    def recording(model, train, test, metrics):
        result = original(model, train, test, metrics)
        seen.append((model.l2, result["ndcg@10"], train.nnz, test.nnz))
        return result

    monkeypatch.setattr(hybrid, "evaluate", recording)
    model = HybridRecommender(factor=FACTOR, random_state=1).fit(data)
    assert [l2 for l2, *_ in seen] == list(L2_GRID)
    best = max(seen, key=lambda row: row[1])
    assert model.l2_ == best[0] and model.item_item_.l2 == best[0]
    # The inner split partitions the training positives, about a fifth held out.
    _, _, n_fit, n_held = seen[0]
    assert n_fit + n_held == data.nnz and 0.1 < n_held / data.nnz < 0.3
    again = HybridRecommender(factor=FACTOR, random_state=1).fit(data)
    np.testing.assert_array_equal(again.score([0, 1]), model.score([0, 1]))


def test_a_history_blends_the_fold_in_with_exact_ease_scores(data, fitted):
    histories = [[0, 3, 7], [12]]
    factor = fitted.factor_.score_from_history(histories)
    ease = fitted.item_item_.score_from_history(histories)
    expected = 0.7 * standardised(factor) + 0.3 * standardised(ease)
    np.testing.assert_allclose(fitted.score_from_history(histories), expected, atol=1e-5)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (dict(weight=1.5), "weight"),
        (dict(weight=float("nan")), "weight"),
        (dict(l2=-1.0), "l2"),
        (dict(l2="big"), "l2"),
        (dict(factor={"n_factor": 8}), "factor"),
    ],
)
def test_bad_parameters_fail_before_any_work(data, params, message):
    with pytest.raises(ParameterError, match=message):
        HybridRecommender(**params).fit(data)


def test_there_is_no_vector_space_to_index(fitted):
    from tripletrec.exceptions import TripletrecError
    from tripletrec.serving.retrieval import model_vectors

    with pytest.raises(TripletrecError, match="HybridRecommender has no user/item vector space"):
        model_vectors(fitted)
