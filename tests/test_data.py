"""Interactions and IdMap: construction, maps, conversions, and every bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tripletrec.data.interactions import IdMap, Interactions
from tripletrec.exceptions import DataError, ParameterError, UnknownIdError


@pytest.fixture
def frame() -> pd.DataFrame:
    """Four ratings with string ids and custom column names."""
    return pd.DataFrame(
        {
            "who": ["bob", "amy", "bob", "cat"],
            "what": ["x", "y", "y", "z"],
            "stars": [5.0, 3.0, 4.0, 1.0],
            "when": [10, 20, 30, 40],
        }
    )


def build(df: pd.DataFrame, **kwargs) -> Interactions:
    return Interactions.from_dataframe(df, "who", "what", "stars", "when", **kwargs)


# ---------------------------------------------------------------------- construction
def test_from_dataframe_custom_columns_and_string_ids(frame):
    data = build(frame)
    assert len(data) == 4
    assert data.shape == (3, 3)
    # Maps follow the order of first appearance.
    assert data.user_map.to_list() == ["bob", "amy", "cat"]
    assert data.item_map.to_list() == ["x", "y", "z"]
    np.testing.assert_array_equal(data.users, [0, 1, 0, 2])
    np.testing.assert_array_equal(data.items, [0, 1, 1, 2])
    np.testing.assert_array_equal(data.ratings, [5, 3, 4, 1])
    assert data.ratings.dtype == np.float32
    np.testing.assert_array_equal(data.timestamps, [10, 20, 30, 40])
    assert "with ratings and timestamps" in repr(data)


def test_id_maps_both_ways(frame):
    data = build(frame)
    np.testing.assert_array_equal(data.user_map.to_index(["cat", "bob"]), [2, 0])
    np.testing.assert_array_equal(data.user_map.to_index("amy"), [1])
    np.testing.assert_array_equal(data.item_map.to_raw([2, 0]), ["z", "x"])
    assert "amy" in data.user_map and "dan" not in data.user_map
    raw = data.user_map.to_raw(data.users)
    np.testing.assert_array_equal(raw, frame["who"].to_numpy())
    np.testing.assert_array_equal(data.user_map.to_index(raw), data.users)
    np.testing.assert_array_equal(data.user_map.to_index(["bob", "dan"], strict=False), [0, -1])


def test_integer_ids_keep_their_values():
    df = pd.DataFrame({"user_id": [30, 10, 30], "item_id": [7, 7, 9]})
    data = Interactions.from_dataframe(df)
    assert data.ratings is None and data.timestamps is None
    assert data.user_map.to_list() == [30, 10]
    np.testing.assert_array_equal(data.user_map.to_index(np.int32(10)), [1])
    out = data.to_dataframe()
    pd.testing.assert_frame_equal(out, df.astype(np.int64))


def test_datetime_timestamps_become_unix_seconds(frame):
    frame["when"] = pd.to_datetime(["1970-01-01 00:00:10", "2001-09-09 01:46:40"] * 2)
    data = build(frame)
    np.testing.assert_array_equal(data.timestamps, [10, 1_000_000_000, 10, 1_000_000_000])


def test_to_csr_shape_and_values(frame):
    data = build(frame)
    binary = data.to_csr()
    assert binary.shape == (3, 3)
    np.testing.assert_array_equal(binary.toarray(), [[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    rated = data.to_csr("rating")
    np.testing.assert_array_equal(rated.toarray(), [[5, 4, 0], [0, 3, 0], [0, 0, 1]])
    # A subset keeps the full maps, so its matrix has the full shape.
    assert data.subset(np.array([3])).to_csr().shape == (3, 3)


def test_positives_strict_and_inclusive(frame):
    data = build(frame)
    assert data.positives(4).ratings.tolist() == [5]
    assert sorted(data.positives(4, inclusive=True).ratings.tolist()) == [4, 5]
    positives = data.positives(3, inclusive=True)
    assert positives.user_map is data.user_map and positives.item_map is data.item_map


def test_subset_shares_maps_and_metadata(frame):
    meta = pd.DataFrame({"name": ["X", "Y", "Z"]}, index=["x", "y", "z"])
    data = build(frame, item_metadata=meta)
    part = data.subset(np.array([True, False, True, False]))
    assert len(part) == 2 and part.user_map is data.user_map
    assert part.item_names(np.array(["z", "x"])).tolist() == ["Z", "X"]
    assert build(frame).item_names(np.array(["x"])) is None


def test_reusing_maps_of_another_part(frame):
    data = build(frame)
    other = Interactions.from_dataframe(
        frame.iloc[[3, 0]], "who", "what", user_map=data.user_map, item_map=data.item_map
    )
    np.testing.assert_array_equal(other.users, [2, 0])
    np.testing.assert_array_equal(other.items, [2, 0])


# ---------------------------------------------------------------------- duplicates
def test_duplicate_pairs_are_an_error_by_default(frame):
    dup = pd.concat([frame, frame.iloc[[1]]], ignore_index=True)
    with pytest.raises(DataError, match=r"2 rows repeat a \(who, what\) pair, first at row 1"):
        build(dup, duplicates="error")
    with pytest.raises(DataError, match="rows repeat"):
        build(dup)


@pytest.mark.parametrize(("policy", "kept"), [("first", 3.0), ("last", 2.0)])
def test_duplicate_policy_keeps_one_row(frame, policy, kept):
    extra = pd.DataFrame({"who": ["amy"], "what": ["y"], "stars": [2.0], "when": [50]})
    data = build(pd.concat([frame, extra], ignore_index=True), duplicates=policy)
    assert len(data) == 4
    amy_y = (data.users == data.user_map.to_index("amy")[0]) & (
        data.items == data.item_map.to_index("y")[0]
    )
    assert data.ratings[amy_y].tolist() == [kept]


def test_unknown_duplicate_policy(frame):
    with pytest.raises(ParameterError, match="duplicates must be"):
        build(frame, duplicates="mean")


# ---------------------------------------------------------------------- bad input
def test_missing_column_is_named(frame):
    with pytest.raises(DataError, match=r"missing column\(s\) 'rating'; columns are 'who'"):
        Interactions.from_dataframe(frame, "who", "what", "rating")


def test_not_a_dataframe():
    with pytest.raises(DataError, match="expected a pandas DataFrame, got list"):
        Interactions.from_dataframe([[1, 2]])


@pytest.mark.parametrize("column", ["who", "what", "stars"])
def test_missing_values_are_named(frame, column):
    frame.loc[2, column] = None
    with pytest.raises(
        DataError, match=rf"column '{column}' has 1 missing value\(s\), first at row 2"
    ):
        build(frame)


def test_empty_data(frame):
    with pytest.raises(DataError, match=r"no interactions \(the table is empty\)"):
        build(frame.iloc[:0])


def test_non_numeric_rating_is_named(frame):
    frame["stars"] = ["5", "3", "four", "1"]
    with pytest.raises(DataError, match=r"column 'stars' must be numeric.*row 2 holds 'four'"):
        build(frame)


def test_infinite_rating(frame):
    frame.loc[1, "stars"] = np.inf
    with pytest.raises(DataError, match="column 'stars' must be numeric and finite; row 1"):
        build(frame)


def test_unknown_ids_with_given_maps(frame):
    data = build(frame)
    new = pd.DataFrame({"who": ["bob", "dan"], "what": ["x", "x"]})
    with pytest.raises(UnknownIdError, match="unknown user id\\(s\\): 'dan'") as info:
        Interactions.from_dataframe(new, "who", "what", user_map=data.user_map)
    # KeyError subclasses normally quote their message; this one reads plainly.
    assert str(info.value) == "unknown user id(s): 'dan'"


def test_empty_given_map_is_honoured(frame):
    # Regression: an empty IdMap is falsy and used to be silently replaced by a fresh map.
    with pytest.raises(UnknownIdError, match="unknown item id"):
        build(frame, item_map=IdMap([], "item"))


def test_many_unknown_ids_are_summarised():
    id_map = IdMap([1, 2], "item")
    with pytest.raises(UnknownIdError, match=r"unknown item id\(s\): 10, 11, 12, 13, 14 \(and 2"):
        id_map.to_index(list(range(10, 17)))


def test_id_map_must_be_unique():
    with pytest.raises(DataError, match="user ids must be unique"):
        IdMap([1, 2, 1], "user")


def test_threshold_leaving_no_positives(frame):
    data = build(frame)
    with pytest.raises(DataError, match=r"no positives: no rating is > 5 \(ratings range from 1"):
        data.positives(5)
    with pytest.raises(DataError, match="no ratings to threshold"):
        Interactions.from_dataframe(frame, "who", "what").positives(3)
    with pytest.raises(DataError, match="no ratings"):
        Interactions.from_dataframe(frame, "who", "what").to_csr("rating")


def test_misaligned_arrays():
    users = np.array([0, 1])
    with pytest.raises(DataError, match="'items' has 1 rows, users 2"):
        Interactions(users, np.array([0]), None, None, IdMap([1, 2]), IdMap([3]))


# ---------------------------------------------------------------------- files
def test_csv_round_trip(tmp_path, frame):
    path = tmp_path / "ratings.csv"
    build(frame).to_dataframe().to_csv(path, index=False)
    data = Interactions.from_csv(path, rating_col="rating", timestamp_col="timestamp")
    pd.testing.assert_frame_equal(data.to_dataframe(), build(frame).to_dataframe())
    assert data.user_map == build(frame).user_map


def test_parquet_round_trip(tmp_path, frame):
    path = tmp_path / "ratings.parquet"
    build(frame).to_dataframe().to_parquet(path)
    data = Interactions.from_parquet(path, rating_col="rating")
    assert data.user_map.to_list() == ["bob", "amy", "cat"]
    np.testing.assert_array_equal(data.ratings, [5, 3, 4, 1])


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".pq", ".dat"])
def test_from_file_picks_reader_by_suffix(tmp_path, frame, suffix):
    path = tmp_path / f"ratings{suffix}"
    if suffix in (".parquet", ".pq"):
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False, sep="," if suffix == ".csv" else "\t")
    data = Interactions.from_file(path, user_col="who", item_col="what", rating_col="stars")
    pd.testing.assert_frame_equal(
        data.to_dataframe(), build(frame).to_dataframe().drop(columns="timestamp")
    )


def test_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(DataError, match=r"nope\.csv: no such file"):
        Interactions.from_csv(path)
    with pytest.raises(DataError, match=r"nope\.parquet: no such file"):
        Interactions.from_file(tmp_path / "nope.parquet")


def test_corrupt_parquet(tmp_path, frame):
    path = tmp_path / "broken.parquet"
    frame.to_parquet(path)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(DataError, match=r"broken\.parquet: cannot read as parquet"):
        Interactions.from_parquet(path)


def test_csv_that_is_not_parquet(tmp_path, frame):
    path = tmp_path / "ratings.parquet"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match="cannot read as parquet"):
        Interactions.from_file(path)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "No columns to parse"),
        (b"user_id,item_id\n1,2\n3,4,5,6\n", "Expected 2 fields"),
        (b"user_id,item_id\n\xff\xfe\x00\x81,2\n", "cannot read as csv"),
    ],
)
def test_corrupt_csv(tmp_path, content, problem):
    path = tmp_path / "broken.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=rf"broken\.csv: .*{problem}"):
        Interactions.from_csv(path)


def test_csv_with_only_a_header(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("user_id,item_id\n")
    with pytest.raises(DataError, match=r"header\.csv: no interactions"):
        Interactions.from_csv(path)


def test_csv_missing_column_names_file(tmp_path):
    path = Path(tmp_path) / "ratings.csv"
    path.write_text("user,item\n1,2\n")
    with pytest.raises(DataError, match=r"ratings\.csv: missing column\(s\) 'user_id', 'item_id'"):
        Interactions.from_csv(path)
