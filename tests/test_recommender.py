"""TripletRecommender on the real bundled data: quality, settings, losses, ranking bias.

The estimator contract (scoring, recommending, similar items, ids, errors, persistence) is
checked for every estimator in tests/test_contract.py.
"""

import time

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.metrics import roc_auc_score

import tripletrec as tr
from tripletrec.exceptions import (
    DataError,
    NotFittedError,
    ParameterError,
    TripletrecError,
    UnknownIdError,
)

FAST = dict(epochs=4, batch_size=2048, learning_rate=0.02)


@pytest.fixture(scope="module")
def split(anime_tv):
    train, test = tr.random_split(anime_tv, 0.2, 42)
    return anime_tv, train.positives(7), test.positives(7)


@pytest.fixture(scope="module", params=["bilinear", "deep"])
def fitted(request, split):
    _, train, _ = split
    model = tr.TripletRecommender.from_preset(request.param, random_state=0)
    return model.fit(train)


#: AUC floors a couple of points below what each preset reaches on this split: a
#: regression of a few points fails, float rounding across torch versions does not.
PRESET_AUC_FLOORS = {"bilinear": 0.80, "deep": 0.81}


def test_fit_reaches_the_notebook_quality_floor(fitted, split):
    _, train, test = split
    assert tr.evaluate(fitted, train, test)["auc"] > PRESET_AUC_FLOORS[fitted.model]


def test_fit_returns_self_and_sets_trailing_underscore_state(split):
    _, train, _ = split
    model = tr.TripletRecommender(random_state=0, **FAST)
    start = time.perf_counter()
    assert model.fit(train) is model
    elapsed = time.perf_counter() - start
    assert model.n_users_ == 4610 and model.n_items_ == 293
    # The wall time of this fit, in seconds (not a total since import, nor milliseconds).
    assert len(model.history_) == 4 and 0 < model.fit_seconds_ <= elapsed
    assert model.seen_.nnz == len(train)


def test_same_seed_same_model_different_seed_different_model(split):
    _, train, _ = split
    for preset in ("bilinear", "deep"):
        a = tr.TripletRecommender.from_preset(preset, random_state=3, **FAST).fit(train)
        b = tr.TripletRecommender.from_preset(preset, random_state=3, **FAST).fit(train)
        c = tr.TripletRecommender.from_preset(preset, random_state=4, **FAST).fit(train)
        users = train.user_map.ids[:50]
        np.testing.assert_array_equal(a.score(users), b.score(users))
        assert not np.array_equal(a.score(users), c.score(users))


def test_fit_does_not_touch_the_global_torch_seed(split):
    import torch

    _, train, _ = split
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tr.TripletRecommender.from_preset("deep", random_state=0, epochs=1).fit(train)
    torch.testing.assert_close(torch.rand(3), expected)


def test_similar_items_are_cosines_and_have_names(fitted, split):
    # Shapes, order and leaving out the query: tests/test_contract.py.
    data, _, _ = split
    items, sims = fitted.similar_items(data.item_map.ids[:3], k=5)
    assert np.all(sims <= 1.0 + 1e-6) and np.all(sims >= -1.0 - 1e-6)
    names = fitted.item_names(items[0])
    assert names is not None and all(isinstance(n, str) for n in names)


def test_unknown_ids_and_bad_k_raise_clear_errors(fitted):
    with pytest.raises(UnknownIdError, match="unknown user id"):
        fitted.recommend([-12345])
    with pytest.raises(UnknownIdError, match="unknown item id"):
        fitted.similar_items(["no such anime"])
    with pytest.raises(ParameterError, match="k must be a positive integer"):
        fitted.recommend([fitted.user_map_.ids[0]], k=0)


def test_not_fitted_and_bad_hyper_parameters():
    with pytest.raises(NotFittedError, match="not fitted"):
        tr.TripletRecommender().recommend([1])
    positives = sp.csr_matrix(np.eye(4, dtype=np.float32))
    with pytest.raises(TripletrecError, match="unknown model"):
        tr.TripletRecommender(model="wide").fit(positives)
    with pytest.raises(TripletrecError, match="unknown loss"):
        tr.TripletRecommender(loss="hinge").fit(positives)
    with pytest.raises(ValueError, match="batch_size"):
        tr.TripletRecommender(batch_size=0).fit(positives)
    with pytest.raises(TripletrecError, match="unknown preset"):
        tr.TripletRecommender.from_preset("fastest")


def test_fit_on_a_sparse_matrix_uses_indices_as_ids():
    matrix = sp.random(30, 12, 0.3, random_state=0, format="csr", dtype=np.float32)
    model = tr.TripletRecommender(epochs=2, batch_size=16, random_state=0).fit(matrix)
    np.testing.assert_array_equal(model.user_map_.ids, np.arange(30))
    np.testing.assert_array_equal(model.item_map_.ids, np.arange(12))
    items, _ = model.recommend([0, 29], k=3)
    # The ids returned are column indices, and the columns of unseen items.
    for user, row in zip([0, 29], items):
        assert set(row) <= set(np.flatnonzero(matrix[user].toarray()[0] == 0))


def test_fit_rejects_empty_data():
    with pytest.raises(DataError, match="empty"):
        tr.TripletRecommender().fit(sp.csr_matrix((3, 3), dtype=np.float32))


def test_get_and_set_params_follow_scikit_learn():
    model = tr.TripletRecommender(n_factors=16)
    params = model.get_params()
    assert params["n_factors"] == 16 and "random_state" in params
    assert tr.TripletRecommender(**params).get_params() == params
    assert model.set_params(epochs=3) is model and model.epochs == 3
    with pytest.raises(ValueError, match="no parameter 'colour'"):
        model.set_params(colour="red")


def test_string_ids_round_trip():
    df = pd.DataFrame(
        {"who": ["ann", "ann", "bob", "bob", "cy", "cy"], "what": ["x", "y", "y", "z", "x", "z"]}
    )
    data = tr.Interactions.from_dataframe(df, "who", "what")
    model = tr.TripletRecommender(epochs=2, batch_size=4, random_state=0).fit(data)
    items, _ = model.recommend(["ann"], k=1)
    assert items[0, 0] == "z"  # the only item ann has not seen


def test_evaluate_auc_equals_sklearn_per_user(fitted, split):
    _, train, test = split
    result = tr.evaluate(fitted, train, test, per_user=True)
    auc = result["per_user"]["auc"]
    users = fitted.user_map_.to_index(result["users"])
    scores = fitted.score_indices(users)
    train_m, test_m = train.to_csr().toarray() > 0, test.to_csr().toarray() > 0
    for row in range(0, len(users), 97):  # a spread of users
        u = users[row]
        keep = ~train_m[u]
        expected = roc_auc_score(test_m[u][keep], scores[row][keep])
        assert abs(auc[row] - expected) < 1e-9
    assert result["n_users"] == 3839
    assert result["auc"] == pytest.approx(np.mean(auc))


#: Each loss and sampler, with an AUC floor a couple of points below what its short fit
#: reaches on this split (each far above popularity's).
LOSS_CASES = [
    (dict(loss="bpr", negatives="uniform", similarity="dot", item_bias=True), 0.81),
    (dict(loss="warp", negatives="uniform", n_negatives=5), 0.81),
    (dict(loss="adaptive_hinge", negatives="exclude_positives", n_negatives=3), 0.80),
    (dict(loss="softmax", n_negatives=10, negatives="popularity", similarity="dot"), 0.84),
    (dict(loss="softmax", negatives="all", similarity="dot", item_bias=True), 0.84),
    (dict(loss="softmax", negatives="in_batch", similarity="dot", batch_size=512), 0.84),
    (
        dict(model="deep", loss="warp", negatives="uniform", n_negatives=4, hidden_layers=(32,)),
        0.76,
    ),
    (dict(model="deep", loss="softmax", negatives="uniform", n_negatives=4, dot_factors=16), 0.81),
]


@pytest.mark.parametrize(
    ("options", "floor"),
    LOSS_CASES,
    ids=["-".join(f"{v}" for v in options.values()) for options, _ in LOSS_CASES],
)
def test_every_loss_and_sampler_learns(split, options, floor):
    _, train, test = split
    # Fixed short-fit settings, independent of the default preset's tuning.
    settings = dict(
        random_state=0, epochs=3, batch_size=2048, learning_rate=0.01, init_scale=0.05,
        max_norm=None, lr_schedule="constant",
    ) | options  # fmt: skip
    model = tr.TripletRecommender(**settings).fit(train)
    assert tr.evaluate(model, train, test)["auc"] > floor


def test_full_softmax_needs_the_softmax_loss(split):
    _, train, _ = split
    with pytest.raises(TripletrecError, match="needs loss='softmax'"):
        tr.TripletRecommender(negatives="all", loss="margin").fit(train)


def test_constructor_defaults_are_the_default_preset():
    params = tr.TripletRecommender().get_params()
    assert {k: params[k] for k in tr.PRESETS["default"]} == tr.PRESETS["default"]


def test_validation_history_and_early_stopping_keep_the_best_epoch(split):
    _, train, _ = split
    fit_part, validation = tr.random_split(train, 0.1, 0)
    model = tr.TripletRecommender(
        random_state=0, epochs=6, learning_rate=0.05, patience=1, n_threads=1
    ).fit(fit_part, validation=validation)
    values = [r["validation_ndcg@10"] for r in model.history_]
    assert all(0.0 < v < 1.0 for v in values)
    best = int(np.argmax(values)) + 1
    assert model.best_epoch_ == best
    # stopped one epoch after the best one (or ran out of epochs)
    assert len(values) == min(6, best + 1)
    # the kept weights are the best epoch's: re-evaluating gives its value
    again = tr.evaluate(model, fit_part, validation, ["ndcg@10"])["ndcg@10"]
    assert again == pytest.approx(values[best - 1], abs=1e-9)


def test_deep_model_trains_with_the_full_softmax():
    # The autograd path of the full softmax (the bilinear one is fused): loss goes down.
    matrix = sp.random(40, 15, 0.3, random_state=0, format="csr", dtype=np.float32)
    model = tr.TripletRecommender(
        model="deep", hidden_layers=(8,), epochs=15, batch_size=64, random_state=0
    ).fit(matrix)
    losses = [r["loss"] for r in model.history_]
    assert losses[-1] < losses[0]


def test_presets_pin_the_settings_their_results_were_measured_with():
    # A preset must not silently change when the constructor's defaults change.
    for name in ("notebook-bilinear", "bilinear"):
        preset = tr.PRESETS[name]
        assert preset["item_bias"] is False and preset["l2"] == 0.0
        assert preset["loss"] == "margin" and preset["negatives"] == "uniform"
    for name in ("notebook-deep", "deep"):
        assert tr.PRESETS[name]["l2"] == 0.0 and tr.PRESETS[name]["dot_factors"] == 0


def test_max_norm_bounds_every_embedding_row(split):
    _, train, _ = split
    model = tr.TripletRecommender(
        similarity="dot", max_norm=0.5, epochs=2, learning_rate=0.05, random_state=0
    ).fit(train)
    for table in (model.module_.user_embedding.weight, model.module_.item_embedding.weight):
        assert table.norm(dim=1).max().item() <= 0.5 + 1e-5
    free = tr.TripletRecommender(similarity="dot", epochs=2, learning_rate=0.05, random_state=0)
    assert free.fit(train).module_.item_embedding.weight.norm(dim=1).max().item() > 0.5


def test_cosine_with_a_learned_temperature_moves_the_scale(split):
    _, train, test = split
    model = tr.TripletRecommender(
        similarity="cosine", item_bias=False, learn_temperature=True, epochs=3,
        batch_size=2048, learning_rate=0.02, random_state=0,
    ).fit(train)  # fmt: skip
    scale = model.module_.log_scale.exp().item()
    assert scale > 1.5  # the softmax pulls cosines apart; a fixed scale would stay at 1
    assert np.abs(model.score([train.user_map.ids[0]])).max() <= scale + 1e-4
    assert tr.evaluate(model, train, test)["auc"] > 0.78  # a couple of points below its value
    with pytest.raises(ValueError, match="cosine"):
        tr.TripletRecommender(similarity="dot", learn_temperature=True, epochs=1).fit(train)


def test_ranking_bias_scale_shrinks_the_bias_when_ranking_and_nowhere_else(split, tmp_path):
    _, train, _ = split
    full = tr.TripletRecommender(ranking_bias_scale=1.0, epochs=2, random_state=0).fit(train)
    shrunk = tr.TripletRecommender(ranking_bias_scale=0.5, epochs=2, random_state=0).fit(train)
    # Training never sees the scale: the weights are identical.
    weights = shrunk.module_.state_dict()
    for name, value in full.module_.state_dict().items():
        torch.testing.assert_close(value, weights[name], rtol=0, atol=0, msg=name)
    half_bias = 0.5 * full.module_.item_bias.weight.detach().numpy()[:, 0]
    assert np.ptp(half_bias) > 0.1  # a bias worth shrinking
    users = train.user_map.ids[:5]
    difference = full.score(users) - shrunk.score(users)
    np.testing.assert_allclose(difference, np.tile(half_bias, (len(users), 1)), atol=1e-5)
    # A new user is folded in against the trained bias, then ranked with the shrunk one.
    history = {"new": list(train.item_map.ids[:5])}
    np.testing.assert_allclose(
        full.score_from_history(history) - shrunk.score_from_history(history),
        half_bias[None, :],
        atol=1e-4,
    )
    loaded = tr.load_model(shrunk.save(tmp_path / "shrunk"))
    assert loaded.ranking_bias_scale == 0.5
    np.testing.assert_array_equal(loaded.score(users), shrunk.score(users))
    for bad in (-0.5, float("nan"), "high"):
        with pytest.raises(TripletrecError, match="ranking_bias_scale"):
            tr.TripletRecommender(ranking_bias_scale=bad, epochs=1).fit(train)


def test_auto_ranking_bias_scale_shrinks_the_full_softmax_bias_only(split):
    _, train, _ = split
    quick = dict(epochs=1, random_state=0)
    assert tr.TripletRecommender().ranking_bias_scale == "auto"
    softmax = tr.TripletRecommender(**quick).fit(train)
    assert softmax.module_.ranking_bias_scale == 0.75
    bpr = tr.TripletRecommender(loss="bpr", negatives="uniform", **quick).fit(train)
    assert bpr.module_.ranking_bias_scale == 1.0


def test_default_preset_ranks_well_and_its_bias_shrink_helps(split):
    _, train, test = split
    settings = dict(random_state=0, n_threads=1)
    # Training never sees ranking_bias_scale (see above): with the same seed both models
    # have the same weights and differ only in how much of the item bias they rank with.
    model = tr.TripletRecommender(**settings).fit(train)  # "auto": shrunk for the softmax
    whole_bias = tr.TripletRecommender(ranking_bias_scale=1.0, **settings).fit(train)
    shrunk = tr.evaluate(model, train, test, ["auc", "ndcg@10"])
    # Wide floors, not the benchmark's figures (benchmarks/perf/compare.py pins those): a
    # regression of a few points fails, BLAS and torch versions do not.
    assert shrunk["auc"] > 0.86 and shrunk["ndcg@10"] > 0.33
    whole = tr.evaluate(whole_bias, train, test, ["auc", "ndcg@10"])
    assert shrunk["auc"] > whole["auc"] + 0.002 and shrunk["ndcg@10"] > whole["ndcg@10"]
