"""Evaluation protocols: per-user splits, leave-last-k-out, validation, sampled metrics."""

import warnings

import numpy as np
import pandas as pd
import pytest

import tripletrec as tr
from tripletrec.evaluation.ncf import load_ncf_negatives
from tripletrec.evaluation.protocols import evaluate_candidates
from tripletrec.exceptions import DataError, ParameterError


def _timed() -> tr.Interactions:
    # User 1: times 5, 3, 9, 9 (a tie: the later row counts as more recent); user 2: one row.
    frame = pd.DataFrame(
        {
            "user_id": [1, 1, 2, 1, 1, 3, 3, 3],
            "item_id": [10, 11, 10, 12, 13, 10, 11, 12],
            "ts": [5, 3, 1, 9, 9, 2, 1, 3],
        }
    )
    return tr.Interactions.from_dataframe(frame, timestamp_col="ts")


def _pairs(part: tr.Interactions) -> set:
    return set(
        zip(part.user_map.to_raw(part.users).tolist(), part.item_map.to_raw(part.items).tolist())
    )


def test_leave_last_k_out_takes_latest_rows_ties_by_row_order():
    data = _timed()
    train, test = tr.leave_last_k_out(data, k=1)
    assert _pairs(test) == {(1, 13), (3, 12)}  # user 2 keeps its only row in train
    assert _pairs(train) | _pairs(test) == _pairs(data) and not _pairs(train) & _pairs(test)
    assert test.user_map is data.user_map and train.item_map is data.item_map
    _, test2 = tr.leave_last_k_out(data, k=2)
    assert _pairs(test2) == {(1, 13), (1, 12), (3, 12), (3, 10)}
    _, test_all = tr.leave_last_k_out(data, k=10)
    assert len(test_all) == 3 + 2  # everybody keeps one training row


def test_leave_last_k_out_needs_timestamps_and_a_valid_k():
    data = _timed()
    no_time = tr.Interactions.from_dataframe(data.to_dataframe().drop(columns="timestamp"))
    with pytest.raises(DataError, match="needs timestamps"):
        tr.leave_last_k_out(no_time)
    with pytest.raises(ParameterError, match="k must be a positive integer"):
        tr.leave_last_k_out(data, k=0)


def test_fraction_per_user_split_holds_out_a_share_of_every_user(anime_tv):
    train, test = tr.fraction_per_user_split(anime_tv, test_fraction=0.2, random_state=1)
    assert len(train) + len(test) == len(anime_tv)
    counts = np.bincount(anime_tv.users, minlength=anime_tv.n_users)
    held = np.bincount(test.users, minlength=anime_tv.n_users)
    expected = np.minimum(np.floor(0.2 * counts + 0.5), np.maximum(counts - 1, 0))
    np.testing.assert_array_equal(held, expected)
    assert (np.bincount(train.users, minlength=anime_tv.n_users)[counts > 0] >= 1).all()
    again = tr.fraction_per_user_split(anime_tv, 0.2, random_state=1)[1]
    np.testing.assert_array_equal(again.items, test.items)
    other = tr.fraction_per_user_split(anime_tv, 0.2, random_state=2)[1]
    assert not np.array_equal(other.items, test.items)
    with pytest.raises(ParameterError, match=r"test_fraction must be in \(0, 1\), got 1.0"):
        tr.fraction_per_user_split(anime_tv, 1.0)


def test_validation_split_is_carved_from_train_only(anime_tv):
    train, test = tr.random_split(anime_tv, 0.2, 42)
    fit, validation = tr.validation_split(train, 0.25, random_state=0)
    assert len(fit) + len(validation) == len(train)
    assert len(validation) == int(np.ceil(0.25 * len(train)))
    keys = lambda part: set(part.users * anime_tv.n_items + part.items)  # noqa: E731
    assert keys(fit) | keys(validation) == keys(train)
    assert not keys(validation) & keys(test)
    with pytest.raises(ParameterError, match="validation fraction"):
        tr.validation_split(train, 0.0)


@pytest.fixture(scope="module")
def leave_one_out(anime_tv):
    # anime-tv has no timestamps: row order stands in for time via a synthetic clock.
    positives = anime_tv.positives(7)
    timed = tr.Interactions(
        positives.users, positives.items, positives.ratings,
        np.arange(len(positives)), positives.user_map, positives.item_map,
    )  # fmt: skip
    return tr.leave_last_k_out(timed, k=1)


def test_sampled_protocol_warns_and_matches_a_direct_computation(leave_one_out):
    train, test = leave_one_out
    model = tr.PopularityRecommender().fit(train)
    with pytest.warns(UserWarning, match="Krichene"):
        result = tr.evaluate_sampled(model, train, test, n_negatives=99, k=10, random_state=0)
    assert result["n_cases"] == len(test) == result["n_users"]
    assert 0.0 < result["ndcg@10"] < result["hit_rate@10"] < 1.0
    with pytest.warns(UserWarning):
        same = tr.evaluate_sampled(model, train, test, random_state=0)
    assert same == result

    # Recompute the same negatives' ranks with a plain loop, on a few hundred cases.
    test = test.subset(np.arange(300))
    with pytest.warns(UserWarning):
        result = tr.evaluate_sampled(model, train, test, random_state=0)
    from tripletrec.evaluation.protocols import _sample_negatives, interactions_matrix

    forbidden = interactions_matrix(model, train) + interactions_matrix(model, test)
    relevant = interactions_matrix(model, test).tocoo()
    rng = np.random.default_rng(0)
    negatives = _sample_negatives(relevant.row.astype(np.int64), forbidden.tocsr(), 99, rng)
    popularity = model.popularity_
    dense_forbidden = forbidden.toarray() > 0
    hits = []
    for user, positive, row in zip(relevant.row, relevant.col, negatives):
        assert len(set(row)) == 99 and not dense_forbidden[user, row].any()
        ahead = (popularity[row] > popularity[positive]) | (
            (popularity[row] == popularity[positive]) & (row < positive)
        )
        hits.append(ahead.sum() < 10)
    assert np.mean(hits) == pytest.approx(result["hit_rate@10"])


def test_sampled_protocol_rejects_too_many_negatives(leave_one_out):
    train, test = leave_one_out
    model = tr.RandomRecommender(0).fit(train)
    with pytest.raises(DataError, match="fewer than n_negatives"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tr.evaluate_sampled(model, train, test, n_negatives=290)


def test_candidates_rank_known_scores():
    frame = pd.DataFrame({"user_id": [0, 0, 1], "item_id": [0, 1, 2]})
    train = tr.Interactions.from_dataframe(frame)
    model = tr.PopularityRecommender().fit(train)  # scores: item 0 -> 1, 1 -> 1, 2 -> 1
    with pytest.warns(UserWarning):
        result = evaluate_candidates(model, [0, 1], [2, 0], [[0, 1], [1, 2]], k=1)
    # Equal scores order by item index: item 2 ranks third, item 0 first.
    assert result["hit_rate@1"] == 0.5 and result["ndcg@1"] == 0.5


def test_ncf_negative_file_loader(shared_data):
    path = shared_data / "movielens-1m-ncf" / "ml-1m.test.negative"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    users, positives, negatives = load_ncf_negatives(path)
    assert len(users) == len(positives) == len(negatives) == 6040
    assert negatives.shape == (6040, 99)
    assert users.tolist() == list(range(6040))
    assert (users[0], positives[0], negatives[0, 0]) == (0, 25, 1064)
    assert len(np.unique(negatives[0])) == 99


def test_ncf_loader_rejects_other_files(tmp_path):
    bad = tmp_path / "bad.negative"
    bad.write_text("0,25\t1\t2\n")
    with pytest.raises(DataError, match="must start with"):
        load_ncf_negatives(bad)
    with pytest.raises(DataError, match="no such file"):
        load_ncf_negatives(tmp_path / "missing")


@pytest.mark.parametrize("n_items", [150, 5000], ids=["small-catalogue", "large-catalogue"])
def test_negative_sampler_draws_distinct_allowed_items(n_items):
    import scipy.sparse as sp

    from tripletrec.evaluation.protocols import _sample_negatives

    rng = np.random.default_rng(0)
    dense = sp.random(300, n_items, density=0.3, random_state=rng).toarray() > 0
    dense[0] = np.arange(n_items) < n_items - 40  # user 0 has exactly 40 allowed items left
    forbidden = sp.csr_matrix(dense.astype(np.float32))
    users = np.repeat(np.arange(300), 2)
    negatives = _sample_negatives(users, forbidden, 40, np.random.default_rng(1))
    assert not dense[users[:, None], negatives].any()
    assert all(len(np.unique(row)) == 40 for row in negatives)
    assert sorted(negatives[0]) == list(range(n_items - 40, n_items))
    again = _sample_negatives(users, forbidden, 40, np.random.default_rng(1))
    np.testing.assert_array_equal(again, negatives)


def test_evaluation_blocks_shrink_with_the_catalogue_and_give_the_same_metrics(
    anime_tv, monkeypatch
):
    from tripletrec.evaluation import protocols

    assert protocols.users_per_block(293) == protocols.EVAL_CHUNK_USERS
    assert protocols.users_per_block(40_981) == 409
    assert protocols.users_per_block(10**9) == 1
    train, test = tr.random_split(anime_tv.positives(7), test_size=0.2, random_state=0)
    model = tr.PopularityRecommender().fit(train)
    metrics = ["auc", "ndcg@10", "recall@20"]
    whole = tr.evaluate(model, train, test, metrics)
    monkeypatch.setattr(protocols, "EVAL_BLOCK_SCORES", 293 * 7)  # blocks of 7 users
    assert tr.evaluate(model, train, test, metrics) == whole
