"""HybridRecommender: the default factor model and EASE, blended on per-user standardised
scores with EASE's held at a floor; EASE's l2 chosen on an inner split of the training
positives."""

import json

import numpy as np
import pytest
import scipy.sparse as sp

from tripletrec import (
    EASERecommender,
    GraphFilterRecommender,
    HybridRecommender,
    TripletRecommender,
)
from tripletrec.data.features import HISTORY_COLUMN, Features, history_features
from tripletrec.exceptions import ParameterError
from tripletrec.models import ease_l2, hybrid
from tripletrec.models.ease_l2 import L2_GRID, chosen_l2
from tripletrec.models.hybrid import (
    EASE_MIN_ITEM_POSITIVES,
    standardised,
)
from tripletrec.models.hybrid_factor import (
    FACTOR_DECAY_MIN_DENSITY,
    FACTOR_DEFAULTS,
    FACTOR_DEFAULTS_BESIDE_EASE,
    FACTOR_GROWN_EPOCHS,
    FACTOR_USER_BATCH_GROWTH,
    FACTOR_USER_BATCH_STEPS,
    positives_density,
)
from tripletrec.persistence import MODEL_FILE, load_model

FACTOR = dict(n_factors=8, epochs=5, batch_size=64, learning_rate=0.05)


@pytest.fixture(scope="module")
def data() -> sp.csr_matrix:
    rng = np.random.default_rng(0)
    dense = rng.random((60, 25)) < 0.2
    dense[np.arange(60), rng.integers(0, 25, 60)] = True
    dense[3:, [5, 11]] = False  # two items under the hybrid's EASE_MIN_ITEM_POSITIVES
    return sp.csr_matrix(dense.astype(np.float32))


def independent_factor(data: sp.csr_matrix) -> TripletRecommender:
    """The hybrid's factor model built by hand: its defaults under FACTOR, fitted with each
    user's training items as a multi-valued feature."""
    import pandas as pd

    cells = [list(data[user].indices) for user in range(data.shape[0])]
    table = pd.DataFrame({HISTORY_COLUMN: cells})
    features = Features(table, multi_valued={HISTORY_COLUMN: ""})
    settings = {**FACTOR_DEFAULTS, **FACTOR_DEFAULTS_BESIDE_EASE, **FACTOR}
    # user_history=True is these features at full weight.
    settings |= {"user_history": False, "feature_weight": 1.0}
    return TripletRecommender(**settings, random_state=1).fit(data, user_features=features)


@pytest.fixture(scope="module")
def fitted(data) -> HybridRecommender:
    return HybridRecommender(l2=50.0, factor=FACTOR, random_state=1).fit(data)


def test_scores_are_the_weighted_blend_of_both_standardised_models(data, fitted):
    factor = independent_factor(data)
    ease = EASERecommender(
        l2=50.0, user_weight_exponent=0.5, min_item_positives=EASE_MIN_ITEM_POSITIVES
    ).fit(data)
    users = np.arange(60)
    z_factor, z_ease = (standardised(m.score(users)) for m in (factor, ease))
    expected = 0.7 * z_factor + 0.3 * np.maximum(z_ease, 0.0)
    np.testing.assert_allclose(fitted.score(users), expected, atol=1e-5)
    # A subset of the items scores as the same columns of the whole catalogue.
    np.testing.assert_array_equal(fitted.score([3], [4, 0, 9]), fitted.score([3])[:, [4, 0, 9]])


def test_standardised_rows_have_mean_zero_and_unit_spread():
    rows = standardised(np.array([[1.0, 2.0, 3.0, 6.0], [5.0, 5.0, 5.0, 5.0]]))
    np.testing.assert_allclose(rows[0].mean(), 0.0, atol=1e-12)
    np.testing.assert_allclose(rows[0].std(), 1.0)
    np.testing.assert_array_equal(rows[1], 0.0)  # a constant row stays 0, not NaN


def test_below_the_floor_items_keep_the_factor_models_order(data, fitted):
    users = np.arange(60)
    z_ease = standardised(fitted.item_item_.score(users))
    factor, blended = fitted.factor_.score(users), fitted.score(users)
    for user in users:
        below = np.flatnonzero(z_ease[user] <= 0.0)
        assert len(below) > 1
        np.testing.assert_array_equal(
            np.argsort(-blended[user, below], kind="stable"),
            np.argsort(-factor[user, below], kind="stable"),
        )
    # Without the floor EASE reorders them too.
    plain = HybridRecommender(l2=50.0, item_item_floor=None, factor=FACTOR, random_state=1)
    z_factor = standardised(fitted.factor_.score(users))
    np.testing.assert_allclose(
        plain.fit(data).score(users), 0.7 * z_factor + 0.3 * z_ease, atol=1e-5
    )


def test_the_factor_model_defaults_here_unless_given():
    assert HybridRecommender()._factor_model().epochs == FACTOR_DEFAULTS["epochs"]
    assert HybridRecommender(factor={"epochs": 3})._factor_model().epochs == 3
    rest = HybridRecommender()._factor_model("graph_filter").get_params()
    assert {k: v for k, v in rest.items() if k not in FACTOR_DEFAULTS} == {
        k: v for k, v in TripletRecommender().get_params().items() if k not in FACTOR_DEFAULTS
    }
    beside_ease = HybridRecommender()._factor_model("ease").get_params()
    assert beside_ease == {**rest, **FACTOR_DEFAULTS_BESIDE_EASE}
    assert HybridRecommender(factor={"l2": 0.0})._factor_model("ease").l2 == 0.0


def test_the_weight_decay_beside_ease_needs_dense_data(data):
    decay = FACTOR_DEFAULTS_BESIDE_EASE["l2"]
    assert positives_density(data) >= FACTOR_DECAY_MIN_DENSITY
    assert HybridRecommender()._factor_model("ease", data).l2 == decay
    # Users and items without a positive do not count: 2 x 2 filled in a 3 x 1,000 matrix.
    corner = np.pad(np.ones((2, 2), np.float32), ((0, 1), (0, 998)))
    assert positives_density(sp.csr_matrix(corner)) == 1.0
    sparse = sp.random(400, 5_000, density=0.002, format="csr", random_state=0, dtype=np.float32)
    assert positives_density(sparse) < FACTOR_DECAY_MIN_DENSITY
    assert HybridRecommender()._factor_model("ease", sparse).l2 == 0.0
    assert HybridRecommender(factor={"l2": 1e-4})._factor_model("ease", sparse).l2 == 1e-4
    assert positives_density(sp.csr_matrix((3, 4), dtype=np.float32)) == 0.0


def _sparse_positives(n_users: int, n_items: int, per_user: int) -> sp.csr_matrix:
    """``per_user`` distinct positives for each of ``n_users`` users, well under 1 % dense."""
    rng = np.random.default_rng(0)
    items = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    users = np.repeat(np.arange(n_users), per_user)
    return sp.csr_matrix((np.ones(len(items), np.float32), (users, items)), (n_users, n_items))


def test_beside_ease_without_the_decay_the_user_batches_grow_with_the_data():
    base = TripletRecommender()
    small = _sparse_positives(600, 5_000, 40)  # 24,000 positives: under 16 batches
    model = HybridRecommender()._factor_model("ease", small)
    assert model.l2 == 0.0 and model.batch_by == "user"
    assert (model.batch_size, model.learning_rate) == (base.batch_size, base.learning_rate)
    assert model.epochs == FACTOR_DEFAULTS["epochs"]
    grown = _sparse_positives(2_000, 8_000, 40)  # 80,000 positives: 16 batches of 5,000
    model = HybridRecommender()._factor_model("ease", grown)
    assert model.batch_size == -(-grown.nnz // FACTOR_USER_BATCH_STEPS) == 5_000
    assert model.learning_rate == pytest.approx(base.learning_rate * 5_000 / base.batch_size)
    assert model.epochs == FACTOR_GROWN_EPOCHS
    large = _sparse_positives(5_000, 9_000, 60)  # 300,000 positives: the growth's bound
    model = HybridRecommender()._factor_model("ease", large)
    assert model.batch_size == FACTOR_USER_BATCH_GROWTH * base.batch_size
    # What ``factor`` names stays as named; with the decay the steps stay as tuned.
    named = HybridRecommender(factor={"learning_rate": 0.01, "epochs": 9})
    model = named._factor_model("ease", large)
    assert model.batch_size > base.batch_size
    assert (model.learning_rate, model.epochs) == (0.01, 9)
    assert (
        HybridRecommender(factor={"batch_size": 512})._factor_model("ease", large).batch_size == 512
    )
    decayed = HybridRecommender(factor={"l2": 1e-4})._factor_model("ease", large)
    assert (decayed.batch_size, decayed.epochs) == (base.batch_size, FACTOR_DEFAULTS["epochs"])
    beside_the_filter = HybridRecommender()._factor_model("graph_filter", large)
    assert (beside_the_filter.batch_size, beside_the_filter.epochs) == (
        base.batch_size,
        FACTOR_DEFAULTS["epochs"],
    )


@pytest.mark.parametrize(("weight", "alone"), [(0.0, "factor"), (1.0, "ease")])
def test_the_end_weights_rank_as_one_model_alone(data, weight, alone):
    model = HybridRecommender(
        weight=weight, l2=50.0, item_item_floor=None, factor=FACTOR, random_state=1
    ).fit(data)
    ease = EASERecommender(
        l2=50.0, user_weight_exponent=0.5, min_item_positives=EASE_MIN_ITEM_POSITIVES
    )
    single = independent_factor(data) if alone == "factor" else ease.fit(data)
    users = np.arange(60)
    np.testing.assert_array_equal(model.recommend(users, k=5)[0], single.recommend(users, k=5)[0])


def test_auto_l2_is_the_grid_value_with_the_best_inner_ndcg(data, monkeypatch):
    seen = []
    original = ease_l2.evaluate

    def recording(model, train, test, metrics, **options):
        assert options == {"max_users": ease_l2.L2_SEARCH_USERS, "random_state": 1}
        result = original(model, train, test, metrics, **options)
        seen.append((model.l2, result["ndcg@10"], train.nnz, test.nnz))
        # The search fits the EASE the hybrid uses.
        assert model.user_weight_exponent == 0.5
        assert model.min_item_positives == EASE_MIN_ITEM_POSITIVES
        return result

    monkeypatch.setattr(ease_l2, "evaluate", recording)
    model = HybridRecommender(factor=FACTOR, random_state=1).fit(data)
    assert [l2 for l2, *_ in seen] == list(L2_GRID)
    best = max(seen, key=lambda row: row[1])
    assert model.l2_ == best[0] and model.item_item_.l2 == best[0]
    assert model.item_item_.user_weight_exponent == 0.5
    assert model.item_item_.min_item_positives == EASE_MIN_ITEM_POSITIVES
    assert not np.isin([5, 11], model.item_item_.active_items_).any()
    # The inner split partitions the training positives, about a fifth held out.
    _, _, n_fit, n_held = seen[0]
    assert n_fit + n_held == data.nnz and 0.1 < n_held / data.nnz < 0.3
    again = HybridRecommender(factor=FACTOR, random_state=1).fit(data)
    np.testing.assert_array_equal(again.score([0, 1]), model.score([0, 1]))


def test_the_l2_search_runs_on_the_most_popular_items(data, monkeypatch):
    fitted_on = []
    original = ease_l2.evaluate

    def recording(model, train, test, metrics, **options):
        fitted_on.append(train.shape)
        return original(model, train, test, metrics, **options)

    monkeypatch.setattr(ease_l2, "evaluate", recording)
    popular = np.sort(np.argsort(-np.diff(data.tocsc().indptr), kind="stable")[:10])
    l2, scores = chosen_l2(data, 1, max_items=10)
    assert fitted_on == [(60, 10)] * len(L2_GRID) and l2 == L2_GRID[int(np.argmax(scores))]
    # The same search as on the catalogue cut to those columns by hand.
    assert chosen_l2(data[:, popular].tocsr(), 1, max_items=None) == (l2, scores)
    fitted_on.clear()
    chosen_l2(data, 1)  # 25 items, under the default cap: the whole catalogue
    assert fitted_on == [(60, 25)] * len(L2_GRID)


@pytest.mark.parametrize(("max_users", "random_state"), [(20, 1), (20, None), (None, 1)])
def test_the_l2_search_judges_every_value_on_one_sample_of_users(
    data, monkeypatch, max_users, random_state
):
    judged = []
    original = ease_l2.evaluate

    def recording(model, train, test, metrics, **options):
        result = original(model, train, test, metrics, per_user=True, **options)
        judged.append((tuple(result["users"]), result["n_test_users"]))
        return result

    monkeypatch.setattr(ease_l2, "evaluate", recording)
    chosen_l2(data, random_state, max_users=max_users)
    assert len(judged) == len(L2_GRID) and len(set(judged)) == 1  # the same users each time
    users, n_test_users = judged[0]
    assert n_test_users > 20
    assert len(users) == (n_test_users if max_users is None else max_users)


def test_a_history_blends_the_fold_in_with_exact_ease_scores(data, fitted):
    histories = [[0, 3, 7], [12]]
    # The factor model takes each history as the new user's features, then folds it in:
    # as if the history were given as features.
    as_features = history_features(np.array([0, 0, 0, 1]), np.array([0, 3, 7, 12]), ["a", "b"])
    given = fitted.factor_.score_from_history(
        {"a": histories[0], "b": histories[1]}, user_features=as_features
    )
    factor = fitted.factor_.score_from_history(histories)
    np.testing.assert_allclose(factor, given, atol=1e-6)
    ease = fitted.item_item_.score_from_history(histories)
    expected = 0.7 * standardised(factor) + 0.3 * np.maximum(standardised(ease), 0.0)
    np.testing.assert_allclose(fitted.score_from_history(histories), expected, atol=1e-5)


def test_a_file_saved_before_the_floor_existed_blends_without_it(fitted, tmp_path):
    path = fitted.save(tmp_path / "old")
    manifest = json.loads((path / MODEL_FILE).read_text())
    del manifest["params"]["item_item_floor"]  # as files were written before
    del manifest["params"]["user_weight_exponent"]
    fit = manifest["fit"]  # parts were not named by class then
    fit.update({name: part["fit"] for name, part in fit.pop("parts").items()})
    (path / MODEL_FILE).write_text(json.dumps(manifest))
    loaded = load_model(path)
    assert loaded.item_item_floor is None
    # Its EASE weights are in the file: only a refit would use the exponent of its day.
    assert loaded.user_weight_exponent == 0.0 == loaded.item_item_.user_weight_exponent
    assert loaded.item_item_.min_item_positives == 1
    users = np.arange(60)
    z_factor, z_ease = (standardised(m.score(users)) for m in (fitted.factor_, fitted.item_item_))
    np.testing.assert_allclose(loaded.score(users), 0.7 * z_factor + 0.3 * z_ease, atol=1e-5)
    np.testing.assert_array_equal(load_model(fitted.save(tmp_path / "new")).score(users),
                                  fitted.score(users))  # fmt: skip


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (dict(weight=1.5), "weight"),
        (dict(weight=float("nan")), "weight"),
        (dict(l2=-1.0), "l2"),
        (dict(l2="big"), "l2"),
        (dict(item_item_floor=float("nan")), "item_item_floor"),
        (dict(item_item_floor="low"), "item_item_floor"),
        (dict(factor={"n_factor": 8}), "factor"),
        (dict(user_weight_exponent=-1.0), "user_weight_exponent"),
        (dict(item_item="sansa"), "item_item"),
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


def test_an_item_ease_holds_at_the_floor_is_explained_by_the_factor_model_alone(fitted):
    history = np.array([0, 3, 7])
    rows = np.zeros(len(history), np.int64)
    z_ease = standardised(fitted.item_item_._score_histories(rows, history, 1, 0))[0]
    below, above = int(np.argmin(z_ease)), int(np.argmax(z_ease))
    assert z_ease[below] <= 0.0 < z_ease[above]

    def scaled(model, item, share):
        contributions, _ = model._explain_contributions(history, item)
        scores = (  # the factor model's as the hybrid computes them: history as features
            fitted._factor_history_scores(rows, history, 1, 0)
            if model is fitted.factor_
            else model._score_histories(rows, history, 1, 0)
        )
        spread = np.std(scores, dtype=np.float64)
        return share * np.asarray(contributions, np.float64) / spread

    factor_part = scaled(fitted.factor_, below, 0.7)
    np.testing.assert_allclose(fitted._explain_contributions(history, below)[0], factor_part)
    both = scaled(fitted.factor_, above, 0.7) + scaled(fitted.item_item_, above, 0.3)
    np.testing.assert_allclose(fitted._explain_contributions(history, above)[0], both)


@pytest.mark.parametrize(("limit", "kind"), [(25, "ease"), (24, "graph_filter")])
def test_auto_fits_ease_up_to_the_item_limit_and_the_graph_filter_above(
    data, monkeypatch, limit, kind
):
    monkeypatch.setattr(hybrid, "EASE_MAX_ITEMS", limit)  # data has 25 items
    model = HybridRecommender(factor=FACTOR, random_state=1).fit(data)
    assert model.item_item_kind_ == kind
    assert model.fit_summary()["resolved"]["item_item"] == kind
    expected = EASERecommender if kind == "ease" else GraphFilterRecommender
    assert type(model.item_item_) is expected
    assert (model.l2_ is None) == (kind == "graph_filter")


def test_a_graph_filter_hybrid_blends_its_scores_and_round_trips(data, tmp_path):
    model = HybridRecommender(item_item="graph_filter", factor=FACTOR, random_state=1).fit(data)
    users = np.arange(10)
    expected = hybrid.blend(
        model.factor_.score_indices(users), model.item_item_.score_indices(users), 0.3, 0.0
    )
    np.testing.assert_array_equal(model.score_indices(users), expected)
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.item_item_kind_ == "graph_filter"
    np.testing.assert_array_equal(loaded.score_indices(users), model.score_indices(users))


def test_past_the_full_softmax_budget_the_factor_model_shuffles_positives(data, monkeypatch):
    # Per-user batches cannot train the in-batch softmax "auto" takes on large catalogues:
    # the blend's factor model must still fit, with shuffled positives.
    import tripletrec.training.losses as losses

    monkeypatch.setattr(losses, "FULL_SOFTMAX_PAIR_BUDGET", 10)
    model = HybridRecommender(factor=FACTOR, random_state=1).fit(data)
    assert model.factor_.negatives_ == "in_batch" and model.factor_.batch_by_ == "positive"
    small = HybridRecommender(factor=FACTOR, random_state=1)
    monkeypatch.undo()
    assert small.fit(data).factor_.batch_by_ == "user"
    with pytest.raises(ParameterError, match="in-batch"):  # an explicit choice is kept
        monkeypatch.setattr(losses, "FULL_SOFTMAX_PAIR_BUDGET", 10)
        HybridRecommender(factor={**FACTOR, "batch_by": "user"}, random_state=1).fit(data)
