"""``TripletRecommender(user_history=...)``: each user's history in their vector."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import tripletrec as tr
from tripletrec.data.features import (
    FeatureEncoder,
    Features,
    history_encoder,
    history_features,
    history_rows,
    matrix_history_features,
)
from tripletrec.data.interactions import IdMap
from tripletrec.data.synthetic import generate_synthetic
from tripletrec.exceptions import DataError, ParameterError
from tripletrec.models.triplet._features import HISTORY_WEIGHT
from tripletrec.persistence import MODEL_FILE

SETTINGS = dict(n_factors=8, epochs=3, batch_size=128, learning_rate=0.05, random_state=0)


@pytest.fixture(scope="module")
def data() -> tr.Interactions:
    frame = generate_synthetic(200, 60, 3000, random_state=0)
    return tr.Interactions.from_dataframe(frame)


@pytest.fixture(scope="module")
def fitted(data) -> tr.TripletRecommender:
    return tr.TripletRecommender(user_history=True, batch_by="user", **SETTINGS).fit(data)


def test_the_direct_history_encoding_equals_the_feature_tables():
    rng = np.random.default_rng(0)
    seen = sp.random(50, 120, density=0.05, format="csr", random_state=rng, dtype=np.float32)
    seen.data[:] = 1.0
    ids = np.arange(50)
    features = matrix_history_features(seen, ids)
    encoder = FeatureEncoder().fit(features)
    direct = history_encoder(seen)
    assert direct.to_dict() == encoder.to_dict()
    expected = encoder.transform(features, IdMap(ids))
    got = history_rows(direct, seen)
    for name in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name))
    # Items the encoder never saw (new in fit_partial) are left out of a row.
    wider = sp.hstack([seen, sp.csr_matrix(np.ones((50, 3), np.float32))], format="csr")
    np.testing.assert_array_equal(history_rows(direct, wider).toarray(), got.toarray())
    with pytest.raises(DataError, match="not histories"):
        history_rows(FeatureEncoder().fit(Features(pd.DataFrame({"g": ["a"]}), ["g"])), seen)


def test_auto_follows_the_batches_and_the_given_features(data):
    by_user = tr.TripletRecommender(batch_by="user", **SETTINGS).fit(data)
    by_positive = tr.TripletRecommender(batch_by="positive", **SETTINGS).fit(data)
    assert by_user.user_history_ and by_user.user_encoder_ is not None
    assert not by_positive.user_history_ and by_positive.user_encoder_ is None
    features = Features(
        pd.DataFrame({"group": data.user_map.ids % 3}, index=data.user_map.ids), ["group"]
    )
    given = tr.TripletRecommender(batch_by="user", **SETTINGS).fit(data, user_features=features)
    assert not given.user_history_  # the caller's features describe the users
    assert by_user.fit_summary()["resolved"]["user_history"] is True


def test_bad_settings_are_refused_in_one_line(data):
    features = Features(pd.DataFrame({"g": ["a"]}, index=[data.user_map.ids[0]]), ["g"])
    with pytest.raises(ParameterError, match="not both"):
        tr.TripletRecommender(user_history=True, **SETTINGS).fit(data, user_features=features)
    with pytest.raises(ParameterError, match="True, False or 'auto'"):
        tr.TripletRecommender(user_history="yes", **SETTINGS).fit(data)


def test_the_history_is_the_users_features_at_full_weight(data, fitted):
    seen = data.to_csr()
    explicit = tr.TripletRecommender(
        user_history=False, batch_by="user", feature_weight=HISTORY_WEIGHT, **SETTINGS
    ).fit(data, user_features=matrix_history_features(seen, data.user_map.ids))
    users = np.arange(40)
    np.testing.assert_array_equal(fitted.score_indices(users), explicit.score_indices(users))


def test_a_new_users_history_is_their_features(fitted):
    histories = [[0, 3, 7], [12]]  # raw item ids
    indices = fitted.item_map_.to_index(np.array([0, 3, 7, 12]))
    items = np.concatenate([np.sort(indices[:3]), indices[3:]])
    as_features = history_features(np.array([0, 0, 0, 1]), items, ["a", "b"])
    given = fitted.score_from_history(
        {"a": histories[0], "b": histories[1]}, user_features=as_features
    )
    np.testing.assert_allclose(fitted.score_from_history(histories), given, atol=1e-6)
    # A plain fold-in of the same history (no features) lands elsewhere.
    rows, items = np.zeros(3, np.int64), items[:3]
    plain = copy.copy(fitted)
    plain.user_history_ = False
    assert not np.allclose(
        fitted.score_histories(rows, items, 1), plain.score_histories(rows, items, 1)
    )


def test_save_and_load_keep_the_history(fitted, tmp_path):
    loaded = tr.load_model(fitted.save(tmp_path / "model"))
    assert loaded.user_history_ is True
    users = np.arange(30)
    np.testing.assert_array_equal(loaded.score_indices(users), fitted.score_indices(users))
    np.testing.assert_array_equal(
        loaded.score_from_history([[1, 2, 5]]), fitted.score_from_history([[1, 2, 5]])
    )


def test_a_file_saved_before_user_history_existed_loads_without_it(data, tmp_path):
    model = tr.TripletRecommender(batch_by="positive", **SETTINGS).fit(data)
    path = model.save(tmp_path / "old")
    manifest = json.loads((path / MODEL_FILE).read_text())
    del manifest["params"]["user_history"]
    del manifest["fit"]["user_history"]
    (path / MODEL_FILE).write_text(json.dumps(manifest))
    loaded = tr.load_model(path)
    assert loaded.user_history is False and loaded.user_history_ is False
    np.testing.assert_array_equal(loaded.score_indices([0, 1]), model.score_indices([0, 1]))


def test_fit_partial_rebuilds_every_users_history(data, fitted):
    model = copy.deepcopy(fitted)
    known_user, new_user = data.user_map.ids[0], "someone new"
    items = data.item_map.ids
    frame = pd.DataFrame({"user_id": [known_user, new_user, new_user],
                          "item_id": [items[-1], items[0], items[1]]})  # fmt: skip
    new = tr.Interactions.from_dataframe(frame)
    model.fit_partial(new, epochs=1)
    seen = model.seen_
    expected = history_rows(model.user_encoder_, seen) * np.float32(HISTORY_WEIGHT)
    n_features = model.user_encoder_.n_features
    np.testing.assert_array_equal(
        model.user_features_[:, :n_features].toarray(), expected.toarray()
    )
    assert model.user_features_.shape[1] == n_features + model.n_users_  # one identity each
    with pytest.raises(DataError, match="takes no user_features"):
        model.fit_partial(new, user_features=Features(pd.DataFrame({"g": ["a"]}, index=[1]), ["g"]))
