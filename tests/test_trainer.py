"""The one fit pipeline: settings checked once, callbacks that score, the scorer's mode,
and a refit that starts clean."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tripletrec as tr
from tripletrec.exceptions import DataError, NotFittedError, ParameterError
from tripletrec.models.triplet.distributed import fit_data_parallel
from tripletrec.models.triplet.fitted import FITTED_ATTRIBUTES
from tripletrec.models.triplet.settings import TrainingSettings
from tripletrec.testing import block_data


@pytest.fixture(scope="module")
def train(anime_tv):
    return tr.random_split(anime_tv, 0.2, 42)[0].positives(7)


@pytest.fixture(scope="module")
def item_features(anime_tv):
    from tripletrec.data.datasets import dataset_features

    return dataset_features("anime-tv", anime_tv)[1]


#: Models whose training depends on the module's mode or on the training-time bias:
#: dropout (deep), identity dropout (read by the fused step too), and a shrunk ranking
#: bias that the training loss must not see (autograd bilinear).
SCORING_SENSITIVE = {
    "default": dict(),
    "deep-dropout": dict(model="deep", hidden_layers=(32,), dropout=0.3, loss="margin",
                         negatives="uniform", learning_rate=0.005, max_norm=None),
    "identity-dropout": dict(identity_dropout=0.5),
    "shrunk-bias-sampled-softmax": dict(loss="softmax", negatives="popularity", n_negatives=4,
                                        ranking_bias_scale=0.5),
}  # fmt: skip


@pytest.mark.parametrize("name", list(SCORING_SENSITIVE))
def test_a_callback_that_scores_leaves_training_bitwise_unchanged(train, item_features, name):
    settings = dict(epochs=3, batch_size=2048, random_state=0, n_threads=1)
    settings |= SCORING_SENSITIVE[name]
    features = {"item_features": item_features} if "identity_dropout" in settings else {}
    plain = tr.TripletRecommender(**settings).fit(train, **features)

    model = tr.TripletRecommender(**settings)
    users, history = train.user_map.ids[:20], list(train.item_map.ids[:5])
    modes = []

    def score_everything(epoch: int, record: dict) -> None:
        model.recommend(users, k=5)
        model.score(users)
        model.similar_items(train.item_map.ids[:3], k=3)
        model.recommend_from_history([history], k=5)
        modes.append(model.module_.training)

    model.fit(train, on_epoch_end=score_everything, **features)
    assert modes == [True, True, True]  # training went on in training mode
    assert not model.module_.training  # the fitted model scores in eval mode
    for key, value in plain.module_.state_dict().items():
        torch.testing.assert_close(model.module_.state_dict()[key], value, rtol=0, atol=0)
    assert [r["loss"] for r in model.history_] == [r["loss"] for r in plain.history_]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (dict(loss="hinge"), "unknown loss 'hinge'"),
        (dict(loss="bpr", negatives="all"), "needs loss='softmax'"),
        (dict(margin=float("nan")), "margin must be a finite number"),
        (dict(n_negatives=0), "n_negatives must be a positive integer"),
        (dict(identity_dropout=1.0), r"identity_dropout must be in \[0, 1\)"),
        (dict(feature_weight=0), "feature_weight must be > 0"),
        (dict(ranking_bias_scale=-1), "ranking_bias_scale must be >= 0"),
        (dict(max_norm=0.0), "max_norm must be > 0"),
        (dict(patience=0), "patience must be a positive integer"),
        (dict(n_threads=0), "n_threads must be a positive integer"),
        (dict(epochs=0), "epochs must be a positive integer"),
        (dict(lr_schedule="step"), "lr_schedule must be one of"),
        (dict(device="tpu"), "device"),
    ],
)
def test_bad_training_settings_fail_before_any_work(params, message):
    model = tr.TripletRecommender(**params)
    with pytest.raises(ParameterError, match=message):
        TrainingSettings.of(model)
    with pytest.raises(ParameterError, match=message):
        model.fit(np.eye(3))  # no data is read: the settings fail first
    assert not hasattr(model, "user_map_")


def test_settings_resolve_the_loss_and_the_schedule_once():
    settings = TrainingSettings.of(tr.TripletRecommender(n_threads=2, max_norm=None))
    assert settings.loss.kind == "full_softmax" and settings.loss.n_items is None
    assert settings.schedule.batch_size == 3072 and settings.schedule.lr_schedule == "linear"
    assert (settings.n_threads, settings.max_norm, settings.device.type) == (2, None, "cpu")


def test_a_refit_forgets_what_the_earlier_fit_recorded():
    toy = block_data()
    fit_part, validation = tr.validation_split(toy.interactions, 0.2, random_state=0)
    small = dict(n_factors=8, epochs=3, batch_size=32, random_state=0, n_threads=1)
    fresh = tr.TripletRecommender(**small).fit(toy.interactions)

    model = tr.TripletRecommender(patience=1, **small).fit(fit_part, validation=validation)
    assert model.best_epoch_ >= 1
    fit_data_parallel(model, toy.interactions)
    assert "best_epoch_" not in vars(model) and model.data_parallel_["world_size"] == 1
    model.fit_partial(toy.interactions, epochs=1)
    # fit_partial continues the data-parallel fit: its record stays, with the partial one.
    assert model.partial_fit_["epochs"] == 1 and "data_parallel_" in vars(model)
    assert fitted_names(model) <= set(FITTED_ATTRIBUTES)  # all of them forgotten by a refit
    model.fit(toy.interactions)
    assert fitted_names(model) == fitted_names(fresh)
    np.testing.assert_array_equal(model.score(toy.user_ids), fresh.score(toy.user_ids))

    with pytest.raises(DataError):  # a refit that fails leaves nothing of the last one
        model.fit(toy.interactions, item_features="not features")
    with pytest.raises(NotFittedError):
        model.score(toy.user_ids)
    assert fitted_names(model) == set()


def fitted_names(model: tr.TripletRecommender) -> set[str]:
    """The fitted (trailing-underscore) attributes set on ``model``."""
    return {name for name in vars(model) if name.endswith("_") and not name.startswith("_")}
