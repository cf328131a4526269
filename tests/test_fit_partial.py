"""fit_partial: new users and items extend the model; training goes on from its state."""

from __future__ import annotations

import copy
import json
from functools import cache

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

import tripletrec as tr
from tripletrec.cli import main
from tripletrec.data.features import Features
from tripletrec.data.synthetic import generate_synthetic
from tripletrec.exceptions import DataError, NotFittedError, ParameterError
from tripletrec.models.foldin import FoldInSettings, fold_in
from tripletrec.models.triplet.growth import grow
from tripletrec.models.triplet.incremental import fit_partial_triplet_model
from tripletrec.testing.data import block_data

SETTINGS = dict(epochs=4, batch_size=256, random_state=0, n_threads=1)


@cache
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Old rows, and new rows that bring new users (ids 1000+) and new items (500+)."""
    frame = generate_synthetic(300, 80, 4000, random_state=0)
    old = frame.sample(frac=0.8, random_state=0)
    new = frame.drop(old.index)
    new = new.assign(
        user_id=np.where(new.user_id % 7 == 0, new.user_id + 1000, new.user_id),
        item_id=np.where(new.item_id % 11 == 0, new.item_id + 500, new.item_id),
    )
    return old, new


def interactions(frame: pd.DataFrame) -> tr.Interactions:
    return tr.Interactions.from_dataframe(frame)


@cache
def fitted() -> tr.TripletRecommender:
    return tr.TripletRecommender(**SETTINGS).fit(interactions(frames()[0]))


def test_new_ids_extend_the_maps_and_seen_becomes_the_union():
    model = copy.deepcopy(fitted())
    old_users, old_items = model.user_map_.ids.copy(), model.item_map_.ids.copy()
    new = interactions(frames()[1])
    model.fit_partial(new, epochs=2)
    assert np.array_equal(model.user_map_.ids[: len(old_users)], old_users)
    assert np.array_equal(model.item_map_.ids[: len(old_items)], old_items)
    raw_new_users = set(frames()[1].user_id) - set(old_users)
    assert set(model.user_map_.ids[len(old_users) :]) == raw_new_users
    assert model.partial_fit_["n_new_users"] == len(raw_new_users) > 0
    assert model.partial_fit_["n_new_items"] > 0
    expected = pd.concat(frames())
    seen = model.seen_.tocoo()
    pairs = set(zip(model.user_map_.ids[seen.row], model.item_map_.ids[seen.col], strict=True))
    assert pairs == set(zip(expected.user_id, expected.item_id, strict=True))
    recommended, _ = model.recommend(list(raw_new_users)[:3], k=5)  # new users are served
    assert recommended.shape == (3, 5)
    assert model.history_[-1]["epoch"] == SETTINGS["epochs"] + 2
    assert [r.get("partial_fit") for r in model.history_[-2:]] == [1, 1]
    assert all(np.isfinite(r["loss"]) for r in model.history_)


def test_growth_keeps_known_rows_and_folds_in_new_users():
    model = fitted()
    new = interactions(frames()[1])
    growth = grow(model, new, user_features=None, item_features=None, seed=3)
    grown, before = growth.scorer.state_dict(), model.module_.state_dict()
    for key, value in before.items():
        assert torch.equal(grown[key][: len(value)], value), key
    assert grown["item_bias.weight"][model.n_items_ :].abs().max() == 0  # as a fresh fit
    assert grown["item_embedding.weight"][model.n_items_ :].abs().max() <= model.init_scale
    # A new user's row is its fold-in from its positives among the known items.
    user = growth.user_map.ids[model.n_users_]
    new_rows = frames()[1]
    known = new_rows[(new_rows.user_id == user) & new_rows.item_id.isin(model.item_map_.ids)]
    items = model.item_map_.to_index(known.item_id.to_numpy())
    vector = fold_in(
        model.module_, np.zeros(len(items), np.int64), items, 1, loss=model._loss(),
        init_scale=model.init_scale, settings=FoldInSettings(random_state=3),
    )  # fmt: skip
    torch.testing.assert_close(grown["user_embedding.weight"][model.n_users_], vector[0])
    assert (model.n_users_, model.n_items_) == (len(fitted().user_map_), len(fitted().item_map_))


def test_fit_partial_is_deterministic_and_continues_the_optimiser(tmp_path):
    new = interactions(frames()[1])
    a = copy.deepcopy(fitted()).fit_partial(new, epochs=2)
    b = copy.deepcopy(fitted()).fit_partial(new, epochs=2)
    assert np.array_equal(a.score(a.user_map_.ids), b.score(b.user_map_.ids))
    steps = a.optimizer_state_.tensors["optimizer.user_embedding.weight.exp_avg"]
    assert steps.shape[0] == a.n_users_  # moments grew with the table

    # A saved model with its run's final checkpoint goes on exactly as the one in memory.
    model = tr.TripletRecommender(**SETTINGS).fit(
        interactions(frames()[0]), checkpoint_dir=tmp_path / "ckpt"
    )
    model.save(tmp_path / "model")
    in_memory = copy.deepcopy(model).fit_partial(new, epochs=2)
    loaded = tr.TripletRecommender.load(tmp_path / "model")
    from_disk = loaded.fit_partial(new, epochs=2, checkpoint_dir=tmp_path / "ckpt")
    assert np.array_equal(
        in_memory.score(in_memory.user_map_.ids), from_disk.score(from_disk.user_map_.ids)
    )
    # Without the optimiser state, Adam starts afresh: another model.
    fresh = tr.TripletRecommender.load(tmp_path / "model").fit_partial(new, epochs=2)
    assert not np.array_equal(
        fresh.score(fresh.user_map_.ids), from_disk.score(from_disk.user_map_.ids)
    )
    # The new final checkpoint continues the chain.
    latest = json.loads((tmp_path / "ckpt" / "latest.json").read_text())
    assert latest["epoch"] == SETTINGS["epochs"] + 2


def test_training_on_the_new_positives_alone_is_an_option():
    new = interactions(frames()[1])
    alone = fit_partial_triplet_model(copy.deepcopy(fitted()), new, epochs=1, train_on="new")
    union = copy.deepcopy(fitted()).fit_partial(new, epochs=1)
    assert alone.seen_.nnz == union.seen_.nnz  # seen_ is the union either way
    assert not np.array_equal(alone.score(alone.user_map_.ids), union.score(union.user_map_.ids))
    with pytest.raises(ParameterError, match="train_on must be one of"):
        fit_partial_triplet_model(copy.deepcopy(fitted()), new, train_on="old")


def test_new_items_of_a_model_with_features_start_from_their_features():
    blocks = block_data()
    features = blocks.block_features(blocks.item_ids)
    model = tr.TripletRecommender(**SETTINGS | dict(batch_size=64)).fit(
        blocks.interactions, item_features=features
    )
    new_items = [5000, 5001]
    frame = pd.DataFrame({"user_id": [blocks.user_ids[0]] * 2, "item_id": new_items})
    new_features = Features(
        pd.DataFrame({"block": ["block-0", "block-2"]}, index=new_items), categorical=["block"]
    )
    growth = grow(model, interactions(frame), user_features=None, item_features=new_features,
                  seed=0)  # fmt: skip
    matrix, before = growth.item_features, model.item_features_
    assert matrix.shape == (before.shape[0] + 2, before.shape[1] + 2)  # an identity column each
    n_features = model.item_encoder_.n_features
    rows = matrix[before.shape[0] :].toarray()
    assert rows[:, n_features : before.shape[1]].sum() == 0  # no known identity
    assert np.array_equal(rows[:, before.shape[1] :], np.eye(2))
    block_column = model.item_encoder_.feature_names_.index("block=block-2")
    assert rows[1, block_column] == pytest.approx(model.feature_weight)
    model.fit_partial(interactions(frame), item_features=new_features, epochs=1)
    assert model.item_features_.shape == matrix.shape
    assert model.recommend(blocks.user_ids[:1], k=3)[0].shape == (1, 3)


def test_a_model_fitted_on_a_matrix_grows_to_a_larger_matrix():
    matrix = interactions(frames()[0]).to_csr()
    model = tr.TripletRecommender(**SETTINGS).fit(matrix)
    bigger = sp.csr_matrix(
        ([1.0, 1.0], ([matrix.shape[0] + 1, 0], [matrix.shape[1], 0])),
        shape=(matrix.shape[0] + 2, matrix.shape[1] + 1),
    )
    model.fit_partial(bigger, epochs=1)
    assert np.array_equal(model.user_map_.ids, np.arange(matrix.shape[0] + 2))
    assert np.array_equal(model.item_map_.ids, np.arange(matrix.shape[1] + 1))


def test_bad_calls_fail_clearly(tmp_path):
    new = interactions(frames()[1])
    with pytest.raises(NotFittedError):
        tr.TripletRecommender(**SETTINGS).fit_partial(new)
    model = copy.deepcopy(fitted())
    with pytest.raises(DataError, match="fitted without item features"):
        model.fit_partial(new, item_features=block_data().block_features(block_data().item_ids))
    with pytest.raises(DataError, match="Interactions or a scipy sparse matrix"):
        model.fit_partial(frames()[1])
    with pytest.raises(DataError, match="give Interactions"):
        model.fit_partial(sp.csr_matrix(np.ones((2, 2))))
    with pytest.raises(ParameterError, match="epochs must be a positive integer"):
        model.fit_partial(new, epochs=0)
    assert model.n_users_ == fitted().n_users_  # nothing changed by a refused call

    # A checkpoint directory whose latest checkpoint is an unfinished fit's is refused.
    def fail_in_epoch_2(epoch: int, record: dict) -> None:
        if epoch == 2:
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        tr.TripletRecommender(**SETTINGS).fit(
            interactions(frames()[0]), checkpoint_dir=tmp_path, on_epoch_end=fail_in_epoch_2
        )
    loaded = tr.TripletRecommender.load(model.save(tmp_path / "model"))
    with pytest.raises(ParameterError, match="unfinished fit"):
        loaded.fit_partial(new, checkpoint_dir=tmp_path)


def test_the_command_line_trains_a_finished_run_on_new_data(tmp_path, capsys):
    old, new = frames()
    old.to_csv(tmp_path / "old.csv", index=False)
    new.to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "run"
    flags = [
        "--estimator",
        "triplet",
        "--epochs",
        "3",
        "--n-threads",
        "1",
        "--quiet",
        "--checkpoint-every",
        "2",
    ]
    assert main(["train", str(tmp_path / "old.csv"), *flags, "--out", str(out)]) == 0
    before = tr.load_model(out)
    argv = ["train", "--resume", str(out), "--data", str(tmp_path / "new.csv"), "--quiet"]
    assert main([*argv, "--epochs", "2"]) == 0
    assert "new users" in capsys.readouterr().out
    after = tr.load_model(out)
    assert after.n_users_ > before.n_users_ and after.n_items_ > before.n_items_
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["partial_fits"][0]["epochs"] == 2
    assert metrics["auc"] == before.metrics_["auc"]
    latest = json.loads((out / "checkpoints" / "latest.json").read_text())
    assert latest["epoch"] == 5  # 3 epochs, then 2 more: the chain goes on
    assert json.loads((out / "config.json").read_text())["data"]["source"].endswith("old.csv")


@pytest.mark.slow
def test_fit_partial_on_the_rest_of_anime_tv_nears_a_fit_on_all(anime_tv):
    train, test = tr.random_split(anime_tv, 0.2, 42)
    train, test = train.positives(7), test.positives(7)
    order = np.random.default_rng(0).permutation(len(train))
    cut = int(0.8 * len(train))
    first = train.subset(np.sort(order[:cut])).compact()
    rest = train.subset(np.sort(order[cut:]))
    full = tr.TripletRecommender(random_state=0, n_threads=1).fit(train.compact())
    partial = tr.TripletRecommender(random_state=0, n_threads=1).fit(first).fit_partial(rest)
    auc_full = tr.evaluate(full, train, test, ["auc"])["auc"]
    auc_partial = tr.evaluate(partial, train, test, ["auc"])["auc"]
    assert auc_partial > auc_full - 0.01
    assert partial.history_[-1]["partial_fit"] == 1 and len(partial.history_) == 14
