"""Side features: encoding, feature-based models, new items and the cold-item protocol."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

import tripletrec as tr
from tripletrec.data.datasets import dataset_features
from tripletrec.data.features import (
    FeatureEncoder,
    Features,
    history_features,
    matrix_history_features,
    with_identity,
)
from tripletrec.data.interactions import IdMap
from tripletrec.data.splits import cold_item_split
from tripletrec.exceptions import DataError, ParameterError, TripletrecError
from tripletrec.models.scorers import FactorizationMachineScorer, FeatureEmbedding


def _table():
    return pd.DataFrame(
        {
            "genre": ["Action, Comedy", "Drama", None, "Comedy,Comedy", ""],
            "type": ["TV", "TV", "Movie", None, "OVA"],
            "episodes": [12, 24, np.nan, 100, 1],
        },
        index=pd.Index([10, 20, 30, 40, 50], name="item_id"),
    )


def _features(table=None):
    return Features(
        _table() if table is None else table, categorical=["type"],
        multi_valued={"genre": ","}, numeric={"episodes": 2},
    )  # fmt: skip


# ---------------------------------------------------------------------- encoding
def test_encoder_matrix_by_hand():
    features = _features()
    encoder = FeatureEncoder().fit(features)
    # Edges: the median of 12, 24, 100, 1 is 18 -> buckets q0 (< 18) and q1.
    assert encoder.bucket_edges_ == {"episodes": [18.0]}
    expected = ["type=TV", "type=Movie", "type=OVA", "genre=Action", "genre=Comedy"]
    expected += ["genre=Drama", "episodes:q0", "episodes:q1"]
    assert encoder.feature_names_ == sorted(expected)
    id_map = IdMap([40, 10, 99, 30], "item")  # another order, and an id with no row
    matrix = encoder.transform(features, id_map).toarray()
    names = encoder.feature_names_

    def row(*present):
        expected = np.zeros(len(names), np.float32)
        expected[[names.index(n) for n in present]] = 1.0 / len(present)
        return expected

    np.testing.assert_allclose(matrix[0], row("genre=Comedy", "episodes:q1"))  # dup once
    np.testing.assert_allclose(
        matrix[1], row("type=TV", "genre=Action", "genre=Comedy", "episodes:q0")
    )
    np.testing.assert_allclose(matrix[2], 0.0)  # no row: no side features
    np.testing.assert_allclose(matrix[3], row("type=Movie"))  # missing genre and episodes


def test_unseen_values_are_ignored():
    encoder = FeatureEncoder().fit(_features())
    new = pd.DataFrame({"genre": ["Space"], "type": ["TV"], "episodes": [5]}, index=[60])
    matrix = encoder.transform(_features(new), IdMap([60], "item")).toarray()[0]
    assert matrix[encoder.feature_names_.index("type=TV")] == pytest.approx(0.5)
    assert matrix.sum() == pytest.approx(1.0)  # Space unknown: TV and the bucket only


def test_encoder_round_trips_through_json_state():
    encoder = FeatureEncoder().fit(_features())
    again = FeatureEncoder.from_dict(encoder.to_dict())
    id_map = IdMap([10, 20, 30, 40, 50], "item")
    diff = encoder.transform(_features(), id_map) - again.transform(_features(), id_map)
    assert diff.nnz == 0 or abs(diff).max() == 0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda t: Features(t, categorical=["colour"]), "no column"),
        (lambda t: Features(t), "at least one"),
        (
            lambda t: Features(t.assign(episodes=["12", "x", None, 1, 2]), numeric={"episodes": 3}),
            None,
        ),
        (lambda t: Features(pd.concat([t, t.iloc[:1]]), categorical=["type"]), "duplicate ids"),
        (lambda t: Features(t, categorical=["type"], numeric={"episodes": 0}), "buckets"),
        (lambda t: Features(t.to_numpy(), categorical=["type"]), "DataFrame"),
    ],
)
def test_bad_feature_tables_raise_clear_errors(make, message):
    table = _table()
    if message is None:  # a non-numeric value in a numeric column fails at fit time
        with pytest.raises(DataError, match="non-numeric value 'x'"):
            FeatureEncoder().fit(make(table))
        return
    # A bucket count is a parameter of the encoding, not bad data.
    error = ParameterError if message == "buckets" else DataError
    with pytest.raises(error, match=message):
        make(table)


def test_with_identity_appends_columns_for_trained_rows_only():
    matrix = sp.csr_matrix(np.array([[0.5, 0.5], [1.0, 0.0], [0.0, 1.0]], np.float32))
    out = with_identity(matrix, 2).toarray()
    np.testing.assert_array_equal(out[:, 2:], [[1, 0], [0, 1], [0, 0]])


# ---------------------------------------------------------------------- modules
def test_feature_embedding_is_the_matrix_product():
    rng = np.random.default_rng(0)
    matrix = sp.random(6, 5, density=0.5, format="csr", random_state=1, dtype=np.float32)
    embedding = FeatureEmbedding(matrix, 3, 0.1, torch.Generator().manual_seed(0))
    expected = matrix.toarray() @ embedding.table.weight.detach().numpy()
    np.testing.assert_allclose(embedding.weight.detach().numpy(), expected, atol=1e-6)
    idx = torch.as_tensor(rng.integers(0, 6, size=(4, 2)))
    np.testing.assert_allclose(embedding(idx).detach().numpy(), expected[idx.numpy()], atol=1e-6)


def test_factorization_machine_matches_the_quadratic_definition():
    rng = np.random.default_rng(0)
    users = sp.csr_matrix(rng.random((3, 4)) * (rng.random((3, 4)) < 0.6), dtype=np.float32)
    items = sp.csr_matrix(rng.random((5, 6)) * (rng.random((5, 6)) < 0.6), dtype=np.float32)
    scorer = FactorizationMachineScorer(
        3, 5, 4, init_scale=0.3, user_features=users, item_features=items
    )
    with torch.no_grad():  # non-zero linear weights, so every term is exercised
        scorer.item_bias.table.weight.normal_()
        scorer.user_linear.table.weight.normal_()
    v_user = scorer.user_embedding.table.weight.detach().numpy()
    v_item = scorer.item_embedding.table.weight.detach().numpy()
    w_user = scorer.user_linear.table.weight.detach().numpy().ravel()
    w_item = scorer.item_bias.table.weight.detach().numpy().ravel()
    scores = scorer.score_all(torch.arange(3), for_ranking=False).detach().numpy()
    for u in range(3):
        for i in range(5):  # the O(n^2 k) definition, pair by pair
            x = np.concatenate([users[u].toarray().ravel(), items[i].toarray().ravel()])
            v = np.concatenate([v_user, v_item])
            w = np.concatenate([w_user, w_item])
            pairs = sum(
                x[f] * x[g] * v[f] @ v[g] for f in range(len(x)) for g in range(f + 1, len(x))
            )
            assert scores[u, i] == pytest.approx(w @ x + pairs, abs=1e-5)
    pairwise = scorer(torch.tensor([0, 2]), torch.tensor([4, 1])).detach().numpy()
    np.testing.assert_allclose(pairwise, scores[[0, 2], [4, 1]], atol=1e-5)


def test_factorization_machine_reads_each_sides_features_once(monkeypatch):
    # Factor sums and within-field pairs from one pass: with identity dropout in training,
    # both then come from the same draw.
    rng = np.random.default_rng(0)
    users = sp.csr_matrix(rng.random((3, 4)) * (rng.random((3, 4)) < 0.6), dtype=np.float32)
    items = sp.csr_matrix(rng.random((5, 6)) * (rng.random((5, 6)) < 0.6), dtype=np.float32)
    scorer = FactorizationMachineScorer(3, 5, 4, user_features=users, item_features=items)
    reads: dict[int, int] = {}
    real_inputs = FeatureEmbedding.bag_inputs

    def counting(module, idx):
        reads[id(module)] = reads.get(id(module), 0) + 1
        return real_inputs(module, idx)

    monkeypatch.setattr(FeatureEmbedding, "bag_inputs", counting)
    user, positive, negative = torch.tensor([0, 2]), torch.tensor([4, 1]), torch.tensor([3, 3])
    positive_scores, negative_scores = scorer.triplet_scores(user, positive, negative)
    assert reads[id(scorer.user_embedding)] == 1  # once for both items
    assert reads[id(scorer.item_embedding)] == 2  # positives, negatives
    scorer.eval()
    torch.testing.assert_close(positive_scores, scorer(user, positive))
    torch.testing.assert_close(negative_scores, scorer(user, negative))


# ---------------------------------------------------------------------- estimator
@pytest.fixture(scope="module")
def anime(anime_tv):
    _, items = dataset_features("anime-tv", anime_tv)
    train, test = tr.random_split(anime_tv, test_size=0.2, random_state=42)
    return train.positives(7), test.positives(7), items


def _fit(train, items, **params):
    params = {"random_state": 0, "epochs": 3, **params}
    return tr.TripletRecommender(**params).fit(train, item_features=items)


def test_shuffled_feature_table_gives_the_same_model(anime):
    train, _, items = anime
    shuffled = Features(
        items.table.sample(frac=1.0, random_state=3), items.categorical, items.multi_valued,
        items.numeric,
    )  # fmt: skip
    a, b = _fit(train, items), _fit(train, shuffled)
    users = train.user_map.ids[:50]
    np.testing.assert_array_equal(a.score(users), b.score(users))


@pytest.mark.parametrize(
    "params",
    [
        {"model": "bilinear", "epochs": 4},
        {**tr.PRESETS["deep-neumf"], "epochs": 2},
        {"model": "fm", "epochs": 4},
    ],
    ids=["bilinear", "deep", "fm"],
)
def test_models_with_features_rank_well_and_round_trip(anime, params, tmp_path):
    train, test, items = anime
    fitted = _fit(train, items, **params)
    # A couple of points below what each reaches: a regression of a few points fails.
    floor = {"bilinear": 0.85, "deep": 0.81, "fm": 0.85}[fitted.model]
    assert tr.evaluate(fitted, train, test)["auc"] > floor
    fitted.save(tmp_path / "m")
    loaded = tr.load_model(tmp_path / "m")
    users = train.user_map.ids[:20]
    np.testing.assert_array_equal(fitted.score(users), loaded.score(users))
    assert loaded.item_encoder_.feature_names_ == fitted.item_encoder_.feature_names_


def test_cold_items_are_ranked_from_features(anime_tv, anime, tmp_path):
    _, _, items = anime
    positives = anime_tv.positives(7)
    train, test = cold_item_split(positives, 0.2, random_state=0)
    cold = np.setdiff1d(positives.item_map.ids, train.item_map.ids)
    assert len(cold) == 59 and not np.isin(cold, train.item_map.ids).any()
    assert set(test.item_map.to_raw(test.items)) <= set(cold)
    model = tr.TripletRecommender.from_preset("cold-start", random_state=0, epochs=4)
    model.fit(train, item_features=items).add_items(items.for_ids(cold))
    assert model.n_items_ == positives.n_items
    auc = tr.evaluate(model, train, test, items=cold)["auc"]
    assert auc > 0.70  # a pure collaborative model scores 0.5 here; features reach more
    ids, _ = model.recommend(train.user_map.ids[:5], k=300, filter_seen=True)
    assert np.isin(cold, ids[0]).all()  # new items are recommended like the others
    model.save(tmp_path / "m")
    loaded = tr.load_model(tmp_path / "m")
    np.testing.assert_array_equal(
        loaded.score(train.user_map.ids[:3], cold), model.score(train.user_map.ids[:3], cold)
    )


def test_feature_weight_scales_features_next_to_the_identity(anime):
    train, _, items = anime
    model = _fit(train, items, epochs=1, feature_weight=0.25)
    n_features = model.item_encoder_.n_features
    feature_sums = np.asarray(model.item_features_[:, :n_features].sum(axis=1)).ravel()
    identity_sums = np.asarray(model.item_features_[:, n_features:].sum(axis=1)).ravel()
    np.testing.assert_allclose(feature_sums, 0.25, rtol=1e-6)
    np.testing.assert_array_equal(identity_sums, 1.0)
    # An item added later gets the same weight on its features, and no identity.
    new = items.table.iloc[:1].rename(index=lambda _: "new anime")
    model.add_items(Features(new, items.categorical, items.multi_valued, items.numeric))
    added = model.item_features_[-1].toarray().ravel()
    assert added[:n_features].sum() == pytest.approx(0.25) and added[n_features:].sum() == 0.0
    for bad in (0, -1.0, float("inf")):
        with pytest.raises(TripletrecError, match="feature_weight"):
            _fit(train, items, epochs=1, feature_weight=bad)


def test_added_items_take_their_names_from_item_metadata(anime):
    train, _, items = anime
    model = _fit(train, items, epochs=1)
    known = model.item_map_.ids[:2]
    names_before = model.item_names(known)
    new = items.table.iloc[:2].rename(index={items.table.index[0]: "new-1",
                                             items.table.index[1]: "new-2"})  # fmt: skip
    features = Features(new, items.categorical, items.multi_valued, items.numeric)
    metadata = pd.DataFrame({"name": ["First New", "Second New"]}, index=["new-1", "new-2"])
    model.add_items(features, item_metadata=metadata)
    assert list(model.item_names(["new-2", "new-1"])) == ["Second New", "First New"]
    assert list(model.item_names(known)) == list(names_before)  # known names are kept
    with pytest.raises(TripletrecError, match="item_metadata must be a pandas DataFrame"):
        model.add_items(features, item_metadata={"name": ["x"]})


def test_add_items_needs_a_model_with_item_features(anime):
    train, _, items = anime
    model = tr.TripletRecommender(random_state=0, epochs=1).fit(train)
    with pytest.raises(TripletrecError, match="without item features"):
        model.add_items(items)


def test_fit_rejects_a_plain_dataframe(anime):
    train, _, items = anime
    with pytest.raises(DataError, match="Features"):
        tr.TripletRecommender(epochs=1).fit(train, item_features=items.table)


def test_evaluate_on_a_subset_of_items_matches_by_hand(anime):
    train, test, _ = anime
    model = tr.TripletRecommender(random_state=0, epochs=1).fit(train)
    items = model.item_map_.ids[::3]
    result = tr.evaluate(model, train, test, ["auc"], items=items, per_user=True)
    cols = model.item_map_.to_index(items)
    user = model.user_map_.to_index(result["users"][0])[0]
    scores = model.score_indices([user], cols)[0]
    relevant = np.isin(cols, test.items[test.users == user])
    seen = np.isin(cols, train.items[train.users == user])
    from sklearn.metrics import roc_auc_score

    assert result["per_user"]["auc"][0] == pytest.approx(
        roc_auc_score(relevant[~seen], scores[~seen])
    )


def test_compact_keeps_raw_ids_and_drops_unused_ones(anime_tv):
    some = anime_tv.subset(np.flatnonzero(anime_tv.items < 10))
    compact = some.compact()
    assert compact.n_items == len(np.unique(some.items))
    np.testing.assert_array_equal(
        compact.item_map.to_raw(compact.items), some.item_map.to_raw(some.items)
    )
    np.testing.assert_array_equal(
        compact.user_map.to_raw(compact.users), some.user_map.to_raw(some.users)
    )


def test_movielens_builtin_features(movielens_100k_dir):
    data = tr.load_dataset("movielens-100k", path=movielens_100k_dir)
    users, items = dataset_features("movielens-100k", data, path=movielens_100k_dir)
    user_matrix = FeatureEncoder().fit(users).transform(users, data.user_map)
    item_encoder = FeatureEncoder().fit(items)
    assert (np.diff(user_matrix.indptr) == 3).all()  # age bucket, gender, occupation
    assert "genres=Film-Noir" in item_encoder.feature_names_
    assert len(item_encoder.bucket_edges_["year"]) == 3


# ---------------------------------------------------------------------- new users
@pytest.fixture(scope="module")
def with_user_features(anime):
    train, _, items = anime
    ids = train.user_map.ids
    groups = pd.DataFrame({"group": np.asarray(ids) % 3}, index=pd.Index(ids, name="user_id"))
    users = Features(groups, categorical=["group"])
    model = tr.TripletRecommender(random_state=0, epochs=2)
    return model.fit(train, user_features=users, item_features=items), users


def test_new_users_fold_in_from_features_and_history(with_user_features):
    model, _ = with_user_features
    new = Features(pd.DataFrame({"group": [1, 1]}, index=["a", "b"]), categorical=["group"])
    items = model.item_map_.ids
    histories = {"a": [], "b": list(items[:5])}
    scores = model.score_from_history(histories, user_features=new)
    # "a" has features only: its vector is the group-1 embedding, scored like any user.
    group_1 = model.user_features_[np.flatnonzero(model.user_map_.ids % 3 == 1)[0]].toarray()
    group_1[0, model.user_encoder_.n_features :] = 0.0  # without that user's identity
    vector = model.module_.user_embedding.vectors_of(sp.csr_matrix(group_1))
    expected = (vector @ model.module_.item_embedding.weight.T).detach().numpy()[0]
    bias = model.module_.item_bias.weight.detach().numpy().ravel()
    expected += model.module_.ranking_bias_scale * bias
    np.testing.assert_allclose(scores[0], expected, rtol=1e-5, atol=1e-5)
    assert not np.allclose(scores[1], scores[0])  # the history moves "b" away from it
    ids, _ = model.recommend_from_history(histories, k=5, user_features=new)
    assert not np.isin(ids[1], items[:5]).any()


def test_user_features_need_a_mapping_and_a_model_fitted_with_them(with_user_features, anime):
    model, users = with_user_features
    with pytest.raises(DataError, match="mapping"):
        model.recommend_from_history([[model.item_map_.ids[0]]], user_features=users)
    plain = tr.TripletRecommender(random_state=0, epochs=1).fit(anime[0])
    with pytest.raises(TripletrecError, match="without user features"):
        plain.recommend_from_history({"x": [plain.item_map_.ids[0]]}, user_features=users)


def test_history_features_are_each_users_item_indices_as_one_multi_valued_column():
    seen = sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 1]], np.float32))
    features = matrix_history_features(seen, ["u", "v", "w"])
    assert [list(cell) for cell in features.table["history"]] == [[0, 2], [], [1, 3]]
    assert list(features.ids) == ["u", "v", "w"]
    same = history_features(np.array([0, 0, 2, 2]), np.array([0, 2, 1, 3]), ["u", "v", "w"])
    assert [list(cell) for cell in same.table["history"]] == [[0, 2], [], [1, 3]]
    # Each row the mean of its items' features; the user without history has none.
    rows = FeatureEncoder().fit(features).transform(features, IdMap(["u", "v", "w"]))
    np.testing.assert_allclose(rows.toarray().sum(axis=1), [1.0, 0.0, 1.0])
    np.testing.assert_allclose(rows.toarray().max(axis=1), [0.5, 0.0, 0.5])
