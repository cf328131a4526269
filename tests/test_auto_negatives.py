"""negatives="auto" (the default): the full softmax while positives x items fits the budget,
the in-batch softmax beyond; resolved once per fit, kept as ``negatives_`` and saved."""

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tripletrec import TripletRecommender
from tripletrec.cli import main
from tripletrec.models.triplet.presets import PRESETS
from tripletrec.persistence import load_model
from tripletrec.training import losses
from tripletrec.training.losses import FULL_SOFTMAX_PAIR_BUDGET, resolve_negatives

SMALL = dict(n_factors=4, epochs=2, batch_size=64, random_state=3)


@pytest.fixture(scope="module")
def data(small_positives) -> sp.csr_matrix:
    return small_positives


def _pairs(data: sp.csr_matrix) -> int:
    return data.nnz * data.shape[1]


def _weights(model: TripletRecommender) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in model.module_.state_dict().items()}


def _assert_same_weights(a: TripletRecommender, b: TripletRecommender) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        np.testing.assert_array_equal(wa[key], wb[key], err_msg=key)


def test_auto_is_the_default_everywhere():
    assert TripletRecommender().negatives == "auto"
    assert PRESETS["default"]["negatives"] == "auto"
    assert PRESETS["cold-start"]["negatives"] == "auto"


@pytest.mark.parametrize(
    ("n_positives", "n_items", "expected"),
    [
        (91_591, 293, "all"),  # anime-tv
        (44_000, 1_682, "all"),  # MovieLens-100k, about
        (203_702, 7_157, "all"),  # the bundled anime-5k
        (1_000_000, 100_000, "in_batch"),  # a 100k-item catalogue
    ],
)
def test_the_rule_on_the_benchmark_shapes(n_positives, n_items, expected):
    assert resolve_negatives("auto", "softmax", n_positives, n_items) == expected


def test_the_rule_on_both_sides_of_the_budget():
    budget = FULL_SOFTMAX_PAIR_BUDGET
    assert resolve_negatives("auto", "softmax", budget, 1) == "all"
    assert resolve_negatives("auto", "softmax", budget + 1, 1) == "in_batch"
    # Pairwise losses cannot use implicit negatives: "auto" is the uniform sampler.
    assert resolve_negatives("auto", "bpr", budget + 1, 1) == "uniform"
    for given in ("uniform", "popularity", "all", "in_batch"):
        assert resolve_negatives(given, "softmax", budget + 1, 1) == given


def test_auto_within_the_budget_trains_exactly_the_full_softmax(data):
    auto = TripletRecommender(**SMALL).fit(data)
    full = TripletRecommender(**SMALL, negatives="all").fit(data)
    assert auto.negatives == "auto" and auto.negatives_ == "all"
    assert auto._loss().kind == "full_softmax"
    assert auto.module_.ranking_bias_scale == 0.75  # the "auto" bias rule of the full softmax
    _assert_same_weights(auto, full)


def test_auto_above_the_budget_trains_exactly_the_in_batch_softmax(data, monkeypatch):
    monkeypatch.setattr(losses, "FULL_SOFTMAX_PAIR_BUDGET", _pairs(data))
    assert TripletRecommender(**SMALL).fit(data).negatives_ == "all"  # at the budget
    monkeypatch.setattr(losses, "FULL_SOFTMAX_PAIR_BUDGET", _pairs(data) - 1)
    auto = TripletRecommender(**SMALL).fit(data)
    in_batch = TripletRecommender(**SMALL, negatives="in_batch").fit(data)
    assert auto.negatives_ == "in_batch" and auto.get_params()["negatives"] == "auto"
    assert auto._loss().kind == "in_batch_softmax"
    assert auto.module_.ranking_bias_scale == 1.0
    _assert_same_weights(auto, in_batch)
    # Fold-in of new users follows the resolved loss too.
    histories = [[0, 3, 5], [7], [2, 11, 19]]
    np.testing.assert_array_equal(
        auto.recommend_from_history(histories, k=5), in_batch.recommend_from_history(histories, k=5)
    )


def test_explicit_negatives_are_kept_whatever_the_shape(data, monkeypatch):
    monkeypatch.setattr(losses, "FULL_SOFTMAX_PAIR_BUDGET", 1)
    assert TripletRecommender(**SMALL, negatives="all").fit(data).negatives_ == "all"
    model = TripletRecommender(**SMALL, loss="bpr").fit(data)
    assert model.negatives_ == "uniform" and model._loss().kind == "pairwise"


def test_save_load_keeps_the_resolved_negatives(data, monkeypatch, tmp_path):
    monkeypatch.setattr(losses, "FULL_SOFTMAX_PAIR_BUDGET", 1)
    model = TripletRecommender(**SMALL).fit(data)
    model.save(tmp_path / "m")
    monkeypatch.undo()  # the data is now within the budget: loading must not re-resolve
    loaded = load_model(tmp_path / "m")
    assert loaded.negatives == "auto" and loaded.negatives_ == "in_batch"
    assert loaded._loss().kind == "in_batch_softmax"
    assert loaded.module_.ranking_bias_scale == 1.0
    np.testing.assert_array_equal(loaded.score([0, 1], [2, 3]), model.score([0, 1], [2, 3]))


def test_fit_partial_keeps_the_resolved_negatives(data, monkeypatch):
    monkeypatch.setattr(losses, "FULL_SOFTMAX_PAIR_BUDGET", 1)
    model = TripletRecommender(**SMALL).fit(data)
    monkeypatch.undo()
    model.fit_partial(data, epochs=1)
    assert model.negatives_ == "in_batch"


def test_a_model_saved_before_auto_loads_as_it_was(data, tmp_path):
    model = TripletRecommender(**SMALL, negatives="all").fit(data)
    model.save(tmp_path / "old")
    manifest_path = tmp_path / "old" / "model.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["fit"]["negatives"]  # what a file written before negatives_ holds
    assert manifest["params"]["negatives"] == "all"
    manifest_path.write_text(json.dumps(manifest))
    loaded = load_model(tmp_path / "old")
    assert loaded.negatives == "all" and loaded.negatives_ == "all"
    assert loaded._loss().kind == "full_softmax"
    assert loaded.module_.ranking_bias_scale == 0.75
    np.testing.assert_array_equal(loaded.score([0, 1], [2, 3]), model.score([0, 1], [2, 3]))


def test_train_records_the_negatives_in_metrics_json(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"u": rng.integers(0, 40, 600), "i": rng.integers(0, 25, 600)})
    csv = tmp_path / "small.csv"
    df.drop_duplicates().to_csv(csv, index=False)
    out = tmp_path / "run"
    argv = [
        "train",
        "--estimator",
        "triplet",
        str(csv),
        "--user-col",
        "u",
        "--item-col",
        "i",
        "--quiet",
    ]
    assert main([*argv, "--epochs", "1", "--n-factors", "4", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training"] == {
        "negatives": "all", "loss_kind": "full_softmax", "batch_by": "positive",
        "user_history": False,
    }  # fmt: skip
