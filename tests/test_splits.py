"""Train/test splits: sklearn-identical random split, first-n-per-user (MovieLens ``ua``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from tripletrec.data.datasets import load_movielens_100k
from tripletrec.data.interactions import Interactions
from tripletrec.data.splits import first_n_per_user_split, movielens_ua_split, random_split
from tripletrec.exceptions import DataError, ParameterError


def make_data(n_rows: int, n_users: int = 7, seed: int = 0) -> Interactions:
    """Random rows with unique (user, item) pairs and a rating each."""
    rng = np.random.default_rng(seed)
    n_items = max(3 * n_rows // n_users + 1, 2)
    pairs = rng.choice(n_users * n_items, size=n_rows, replace=False)
    df = pd.DataFrame(
        {
            "user_id": pairs // n_items,
            "item_id": pairs % n_items,
            "rating": rng.integers(1, 6, size=n_rows),
        }
    )
    return Interactions.from_dataframe(df, rating_col="rating")


def row_ids(part: Interactions) -> np.ndarray:
    """A row's identity: its (user, item) pair as one integer."""
    return part.users * part.n_items + part.items


# ---------------------------------------------------------------------- random_split
@pytest.mark.parametrize(
    ("n_rows", "test_size", "seed"), [(10, 0.2, 42), (101, 0.25, 0), (997, 0.5, 7), (50, 0.01, 3)]
)
def test_random_split_selects_the_rows_sklearn_does(n_rows, test_size, seed):
    data = make_data(n_rows)
    train, test = random_split(data, test_size, seed)
    rows_train, rows_test = train_test_split(
        np.arange(n_rows), test_size=test_size, random_state=seed
    )
    np.testing.assert_array_equal(row_ids(train), row_ids(data)[rows_train])
    np.testing.assert_array_equal(row_ids(test), row_ids(data)[rows_test])
    np.testing.assert_array_equal(test.ratings, data.ratings[rows_test])
    assert train.user_map is data.user_map and test.item_map is data.item_map


def test_random_split_on_anime_tv_matches_sklearn_and_the_notebook(anime_tv):
    train, test = random_split(anime_tv, 0.2, 42)
    assert (len(train), len(test)) == (130_732, 32_684)
    assert len(train.positives(7)) == 91_591
    assert len(test.positives(7)) == 22_921
    rows_train, rows_test = train_test_split(
        np.arange(len(anime_tv)), test_size=0.2, random_state=42
    )
    np.testing.assert_array_equal(train.users, anime_tv.users[rows_train])
    np.testing.assert_array_equal(train.items, anime_tv.items[rows_train])
    np.testing.assert_array_equal(test.users, anime_tv.users[rows_test])
    np.testing.assert_array_equal(test.items, anime_tv.items[rows_test])


@pytest.mark.parametrize("test_size", [0.0, 1.0, -0.1, 1.5])
def test_random_split_rejects_bad_sizes(test_size):
    with pytest.raises(ParameterError, match=r"test_size must be in \(0, 1\)"):
        random_split(make_data(10), test_size)


def test_random_split_of_one_row():
    with pytest.raises(DataError, match=r"cannot split 1 row\(s\) with test_size=0.5"):
        random_split(make_data(1, n_users=1), 0.5)


# ---------------------------------------------------------------------- first n per user
def test_first_n_per_user_by_hand():
    df = pd.DataFrame(
        {
            "user_id": ["a", "b", "a", "a", "b", "c", "a"],
            "item_id": [1, 1, 2, 3, 2, 1, 4],
        }
    )
    data = Interactions.from_dataframe(df)
    train, test = first_n_per_user_split(data, n=2)
    # Row order is kept in both parts.
    assert test.to_dataframe().values.tolist() == [["a", 1], ["b", 1], ["a", 2], ["b", 2], ["c", 1]]
    assert train.to_dataframe().values.tolist() == [["a", 3], ["a", 4]]
    assert train.user_map is data.user_map


def test_first_n_per_user_matches_a_groupby_reference():
    data = make_data(2_000, n_users=40, seed=5)
    # Shuffle so users interleave: the split must follow row order, not sorted order.
    order = np.random.default_rng(1).permutation(len(data))
    data = data.subset(order)
    frame = pd.DataFrame({"user": data.users})
    expected_test = (frame.groupby("user").cumcount() < 3).to_numpy()
    train, test = first_n_per_user_split(data, n=3)
    np.testing.assert_array_equal(row_ids(test), row_ids(data)[expected_test])
    np.testing.assert_array_equal(row_ids(train), row_ids(data)[~expected_test])
    assert np.bincount(test.users).max() == 3


@pytest.mark.parametrize("n", [0, -1, 2.5, True, "10"])
def test_first_n_per_user_rejects_bad_n(n):
    with pytest.raises(ParameterError, match="n must be a positive integer"):
        first_n_per_user_split(make_data(10), n=n)


def test_first_n_per_user_with_too_few_rows():
    with pytest.raises(DataError, match=r"no user has more than 20 row\(s\), so train is empty"):
        first_n_per_user_split(make_data(20, n_users=5), n=20)
    empty = make_data(5).subset(np.zeros(5, dtype=bool))
    with pytest.raises(DataError, match="interactions are empty"):
        first_n_per_user_split(empty)


# ---------------------------------------------------------------------- MovieLens ua
def test_movielens_ua_split_reproduces_ua_test(movielens_100k_dir):
    data = load_movielens_100k(movielens_100k_dir)
    train, test = movielens_ua_split(data)
    assert (len(train), len(test)) == (90_570, 9_430)
    official = pd.read_csv(
        movielens_100k_dir / "ua.test",
        sep="\t",
        header=None,
        names=["user_id", "item_id", "rating", "timestamp"],
    )
    # ua.test is sorted by user then item (mku.sh sorts it); compare as sorted tables.
    ours = test.to_dataframe().astype(np.int64)
    key = ["user_id", "item_id"]
    pd.testing.assert_frame_equal(
        ours.sort_values(key).reset_index(drop=True),
        official.astype(np.int64).sort_values(key).reset_index(drop=True),
    )
    assert len(train.positives(4, inclusive=True)) == 49_906
    assert len(test.positives(4, inclusive=True)) == 5_469
