"""Parquet read in record batches: the same Interactions as from_dataframe, same errors."""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tripletrec._system import peak_rss_bytes
from tripletrec.data.interactions import IdMap, Interactions
from tripletrec.data.parquet import read_parquet_interactions
from tripletrec.exceptions import DataError, UnknownIdError


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    """String users, integer items, ratings, datetimes; about 8% repeated pairs."""
    rng = np.random.default_rng(0)
    n = 3_000
    return pd.DataFrame(
        {
            "who": rng.choice([f"u{i}" for i in range(200)], n),
            "what": rng.integers(0, 150, n),
            "stars": rng.integers(1, 6, n).astype(float),
            "when": pd.to_datetime(rng.integers(10**9, 17 * 10**8, n), unit="s"),
        }
    )


def assert_same(a: Interactions, b: Interactions) -> None:
    assert a.user_map == b.user_map and a.item_map == b.item_map
    assert a.user_map.to_list() == b.user_map.to_list()
    for name in ("users", "items", "ratings", "timestamps"):
        left, right = getattr(a, name), getattr(b, name)
        assert (left is None) == (right is None), name
        if left is not None:
            assert left.dtype == right.dtype, name
            np.testing.assert_array_equal(left, right, err_msg=name)


@pytest.mark.parametrize("batch_rows", [7, 97, 1_000_000])
@pytest.mark.parametrize("duplicates", ["first", "last"])
def test_batches_build_what_from_dataframe_builds(tmp_path, ratings, batch_rows, duplicates):
    path = tmp_path / "r.parquet"
    ratings.to_parquet(path)
    columns = ("who", "what", "stars", "when")
    streamed = read_parquet_interactions(
        path, *columns, duplicates=duplicates, batch_rows=batch_rows
    )
    assert_same(streamed, Interactions.from_dataframe(ratings, *columns, duplicates=duplicates))


def test_from_parquet_streams_and_accepts_a_batch_size(tmp_path, ratings):
    path = tmp_path / "r.parquet"
    unique = ratings.drop_duplicates(["who", "what"]).reset_index(drop=True)
    unique.to_parquet(path)
    data = Interactions.from_parquet(path, user_col="who", item_col="what", batch_rows=50)
    assert_same(data, Interactions.from_dataframe(unique, "who", "what"))


def test_categorical_ids_and_existing_maps(tmp_path, ratings):
    unique = ratings.drop_duplicates(["who", "what"]).reset_index(drop=True)
    path = tmp_path / "r.parquet"
    unique.assign(who=unique["who"].astype("category")).to_parquet(path)
    expected = Interactions.from_dataframe(unique, "who", "what")
    assert_same(read_parquet_interactions(path, "who", "what", batch_rows=64), expected)
    users = IdMap(sorted(unique["who"].unique()), "user")
    mapped = read_parquet_interactions(path, "who", "what", user_map=users, batch_rows=64)
    assert mapped.user_map is users
    np.testing.assert_array_equal(users.to_raw(mapped.users), unique["who"].to_numpy())
    with pytest.raises(UnknownIdError, match="unknown user id"):
        read_parquet_interactions(path, "who", "what", user_map=IdMap(["u1"], "user"))


def error_of(call) -> str:
    with pytest.raises(DataError) as caught:
        call()
    return str(caught.value)


@pytest.mark.parametrize("problem", ["repeats", "missing id", "bad rating", "no column", "empty"])
def test_errors_match_from_dataframe(tmp_path, ratings, problem):
    frame = ratings.copy()
    columns = ["who", "what", "stars"]
    if problem == "missing id":
        frame = frame.drop_duplicates(["who", "what"]).reset_index(drop=True)
        frame.loc[[700, 900], "what"] = np.nan
    elif problem == "bad rating":
        frame = frame.drop_duplicates(["who", "what"]).reset_index(drop=True)
        frame["stars"] = frame["stars"].astype(str)
        frame.loc[1_500, "stars"] = "five"
    elif problem == "no column":
        columns[2] = "rating"
    elif problem == "empty":
        frame = frame.iloc[:0]
    path = tmp_path / "r.parquet"
    frame.to_parquet(path)
    streamed = error_of(lambda: read_parquet_interactions(path, *columns, batch_rows=128))
    expected = error_of(lambda: Interactions.from_dataframe(frame, *columns, source=str(path)))
    assert streamed == expected


def test_unreadable_files_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match=r"nope\.parquet: no such file"):
        read_parquet_interactions(tmp_path / "nope.parquet")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"user_id,item_id\n1,2\n")
    with pytest.raises(DataError, match=r"broken\.parquet: cannot read as parquet"):
        read_parquet_interactions(broken)


def test_peak_rss_is_reported_and_grows_with_allocations():
    statm = Path("/proc/self/statm")
    if not statm.exists():
        pytest.skip("needs /proc/self/statm (Linux) to read the current resident memory")
    before = peak_rss_bytes()
    assert before > 10 * 2**20  # bytes, not KiB: any process with numpy is past 10 MiB
    resident = int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    # Allocate enough to pass the peak so far by `above`: the peak must follow.
    above = 128 * 2**20
    size = max(before - resident, 0) + above
    if size > 2**30:
        pytest.skip("the peak so far is far above the current use; passing it costs too much")
    # Fresh pages from the kernel, written so that every one is resident: memory this
    # process freed earlier and its allocator kept (``reuse_freed_memory``, which the
    # training command's tests set) would not raise the resident size.
    with mmap.mmap(-1, size) as block:
        pages = np.frombuffer(block, dtype=np.uint8)
        pages[:: mmap.PAGESIZE] = 1
        assert int(pages[:: mmap.PAGESIZE].sum()) == -(-size // mmap.PAGESIZE)
        assert peak_rss_bytes() - before >= 0.75 * above
        del pages  # the map cannot close while an array views it
