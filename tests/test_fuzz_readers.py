"""Property-based tests of the interaction readers and the splits.

``Interactions.from_dataframe``, ``from_csv`` and ``from_parquet`` get tables of mixed,
missing, huge, repeated and wrongly typed values, and the splits get generated interactions
and arguments of every type. Each call must give well-formed interactions or raise a
TripletrecError with a one-line message (``_fuzz.result_or_error``). The plain tests at the
end pin each bug these found.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _fuzz import (
    any_id,
    any_k,
    any_seed,
    anything,
    assert_one_line,
    huge_ints,
    mostly,
    rarely,
    result_or_error,
    scalar_ids,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tripletrec import (
    DataError,
    Interactions,
    ParameterError,
    TripletrecError,
    fraction_per_user_split,
    leave_last_k_out,
    random_split,
    validation_split,
)

pytestmark = pytest.mark.filterwarnings("ignore")

POLICIES = ("error", "first", "last")

rating_values = st.one_of(
    st.integers(-5, 5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "1", "2.5", "x", "nan", "inf", None, True, False]),
    st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2100, 1, 1)),
    st.just(1e300),
    st.just(-1e300),
    st.just(complex(1, 2)),
    st.just([1]),
)
# The ways a column can be typed: as built (object, or what pandas infers), or converted;
# mostly as built, so that many tables are valid and the readers' results get checked too.
DTYPES = ("as-is",) * 5 + ("object", "category", "string", "float", "int", "bool", "datetime")
# Ids of one kind per column most of the time (what real files hold), of every kind mixed
# the rest of the time.
ID_KINDS = {
    "ints": st.integers(-3, 8),
    "strings": st.one_of(st.text(max_size=4), scalar_ids.filter(lambda v: isinstance(v, str))),
    "floats": st.floats(allow_nan=True, allow_infinity=True, width=64),
    "huge": st.one_of(huge_ints, st.integers(-3, 8)),
    "mixed": any_id,
}
RATING_KINDS = {
    "ints": st.integers(-5, 5),
    "floats": st.floats(-1e6, 1e6),
    "mixed": rating_values,
}


def _typed(values: list, dtype: str) -> pd.Series:
    """``values`` as a Series of ``dtype``; the raw values when pandas cannot convert."""
    series = pd.Series(values, dtype=object if dtype == "object" else None)
    conversions = {
        "category": lambda s: s.astype("category"),
        "string": lambda s: s.astype("string"),
        "float": lambda s: s.astype("float64"),
        "int": lambda s: s.astype("int64"),
        "bool": lambda s: s.astype(bool),
        "datetime": lambda s: pd.to_datetime(s),
    }
    if dtype in conversions:
        # When pandas cannot convert, the table (not the reader) failed: keep it raw.
        with contextlib.suppress(Exception):
            series = conversions[dtype](series)
    return series


@st.composite
def frames(draw: st.DrawFn) -> tuple[pd.DataFrame, dict]:
    """A DataFrame of interactions and the reader arguments for it, both possibly wrong."""
    n = draw(st.integers(0, 6))
    columns: dict[str, pd.Series] = {}
    for name in ("user_id", "item_id"):
        kind = ID_KINDS[draw(st.sampled_from(list(ID_KINDS)), label=f"{name} kind")]
        # Few distinct ids, so that repeated pairs (and each duplicates policy) are common.
        pool = draw(st.lists(kind, min_size=1, max_size=4))
        values = draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n))
        columns[name] = _typed(values, draw(st.sampled_from(DTYPES)))
    kwargs: dict = {"duplicates": draw(st.sampled_from(POLICIES))}
    for name in ("rating", "timestamp"):
        if draw(st.booleans()):
            kind = RATING_KINDS[draw(st.sampled_from(list(RATING_KINDS)), label=f"{name} kind")]
            values = draw(st.lists(kind, min_size=n, max_size=n))
            columns[name] = _typed(values, draw(st.sampled_from(DTYPES)))
            kwargs[f"{name}_col"] = name
    frame = pd.DataFrame(columns, index=pd.RangeIndex(n))
    change = draw(st.sampled_from(["none"] * 6 + ["drop", "extra", "rename", "repeat"]))
    if change == "drop" and len(frame.columns):
        frame = frame.drop(columns=draw(st.sampled_from(list(frame.columns))))
    elif change == "extra":
        frame["extra"] = draw(st.lists(any_id, min_size=n, max_size=n))
    elif change == "rename":
        frame.columns = [
            draw(st.sampled_from([c, c.upper(), f" {c}", "é", "a\nb"])) for c in frame.columns
        ]
    elif change == "repeat":  # a column name twice
        frame = pd.concat([frame, frame[["item_id"]]], axis=1)
    if draw(rarely):  # and now and then an argument of the wrong kind
        key = draw(st.sampled_from(["user_col", "item_col", "rating_col", "duplicates"]))
        kwargs[key] = draw(anything)
    return frame, kwargs


def check_interactions(data: Interactions, n_rows: int | None = None) -> None:
    """``data`` is well formed: int64 indices inside the maps, finite ratings, int64 times."""
    assert isinstance(data, Interactions)
    assert data.users.dtype == np.int64 and data.items.dtype == np.int64
    assert len(data) > 0 and (n_rows is None or len(data) <= n_rows)
    assert data.users.min() >= 0 and data.users.max() < data.n_users
    assert data.items.min() >= 0 and data.items.max() < data.n_items
    # Every id in a map built from the data has a row.
    assert data.n_users == len(np.unique(data.users)) and data.n_items == len(np.unique(data.items))
    if data.ratings is not None:
        assert data.ratings.dtype == np.float32 and np.isfinite(data.ratings).all()
    if data.timestamps is not None:
        assert data.timestamps.dtype == np.int64
    pairs = data.users * data.n_items + data.items
    assert len(np.unique(pairs)) == len(pairs), "a repeated (user, item) pair was kept"


@pytest.fixture(scope="module")
def scratch() -> Path:
    # Module-scoped: hypothesis runs many examples per test, and a per-test tmp_path would
    # be shared by all of them anyway.
    with tempfile.TemporaryDirectory(prefix="tripletrec-fuzz-") as folder:
        yield Path(folder)


@given(frames())
def test_from_dataframe_gives_interactions_or_a_one_line_error(case):
    frame, kwargs = case
    result = result_or_error(lambda: Interactions.from_dataframe(frame, **kwargs))
    if isinstance(result, Interactions):
        check_interactions(result, len(frame))


@given(frames())
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_from_csv_gives_interactions_or_a_one_line_error(scratch, case):
    frame, kwargs = case
    path = scratch / "frame.csv"
    frame.to_csv(path, index=False)
    result = result_or_error(lambda: Interactions.from_csv(path, **kwargs))
    if isinstance(result, Interactions):
        check_interactions(result, len(frame))


csv_cells = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.text(alphabet=st.sampled_from('ab1,"\n\r\t é\x00'), max_size=4),
    st.sampled_from(["", "nan", "inf", "-inf", "1e400", "NULL", "2020-01-01"]),
)


@given(
    header=st.lists(
        st.sampled_from(["user_id", "item_id", "rating", "timestamp", "", "user_id"]),
        max_size=4,
    ),
    rows=st.lists(st.lists(csv_cells, max_size=5), max_size=5),
    tail=st.binary(max_size=8),
    sep=st.sampled_from([",", ";", "\t"]),
    options=st.sampled_from(
        [{}, {"rating_col": "rating"}, {"timestamp_col": "timestamp"}, {"duplicates": "last"}]
    ),
)
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_from_csv_on_raw_text_and_bytes(scratch, header, rows, tail, sep, options):
    text = "\n".join(sep.join(row) for row in [header, *rows])
    path = scratch / "raw.csv"
    path.write_bytes(text.encode("utf-8") + tail)
    result = result_or_error(lambda: Interactions.from_csv(path, sep=sep, **options))
    if isinstance(result, Interactions):
        check_interactions(result)


def _write_parquet(frame: pd.DataFrame, path: Path) -> bool:
    """Write ``frame`` to ``path``; False when Arrow cannot store it at all (a mixed-type
    object column, a name twice): there is then no file to read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    except (pa.ArrowException, ValueError, TypeError, OverflowError):
        return False
    return True


@given(frames(), st.integers(1, 4))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_from_parquet_gives_interactions_or_a_one_line_error(scratch, case, batch_rows):
    frame, kwargs = case
    path = scratch / "frame.parquet"
    if not _write_parquet(frame, path):
        return
    result = result_or_error(
        lambda: Interactions.from_parquet(path, batch_rows=batch_rows, **kwargs)
    )
    if isinstance(result, Interactions):
        check_interactions(result, len(frame))


@given(st.binary(max_size=64), st.sampled_from(["csv", "parquet"]))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_files_of_random_bytes(scratch, payload, kind):
    path = scratch / f"bytes.{kind}"
    path.write_bytes(payload)
    reader = Interactions.from_csv if kind == "csv" else Interactions.from_parquet
    result = result_or_error(lambda: reader(path))
    if isinstance(result, Interactions):
        check_interactions(result)


@given(st.one_of(st.text(max_size=20), st.text(min_size=250, max_size=300)))
def test_readers_of_any_path(scratch, name):
    for reader in (Interactions.from_csv, Interactions.from_parquet, Interactions.from_file):
        # One name under a folder that does not exist: never a real file ("/" would make
        # the name absolute, or climb out with "..").
        with pytest.raises(DataError) as caught:
            reader(scratch / "none" / name.replace("/", "_"))
        assert_one_line(caught.value)


@given(st.one_of(anything, st.just(pd.Series([1, 2])), st.just(np.zeros((2, 2)))))
def test_from_dataframe_of_something_else(value):
    result = result_or_error(lambda: Interactions.from_dataframe(value))
    if isinstance(result, Interactions):
        check_interactions(result)


# ---------------------------------------------------------------------- splits
@st.composite
def interactions(draw: st.DrawFn) -> Interactions:
    """Small valid interactions: users and items 0..5, optional timestamps with ties."""
    pairs = draw(
        st.lists(
            st.tuples(st.integers(0, 3), st.integers(0, 7)), min_size=1, max_size=32, unique=True
        )
    )
    frame = pd.DataFrame(pairs, columns=["user_id", "item_id"])
    timestamp_col = None
    if draw(st.booleans()):
        frame["timestamp"] = draw(
            st.lists(st.integers(0, 3), min_size=len(frame), max_size=len(frame))
        )
        timestamp_col = "timestamp"
    data = Interactions.from_dataframe(frame, timestamp_col=timestamp_col)
    if draw(rarely):
        data = data.subset(np.zeros(len(data), bool))  # no rows, maps kept
    return data


fractions = mostly(
    st.one_of(st.floats(0.01, 0.99), st.just(np.float32(0.3))),
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([0, 1, 0.0, 1.0, -0.5, 2, True, "0.2", None, [0.2]]),
    ),
)


def check_split(data: Interactions, parts: tuple) -> None:
    """Two parts with the input's maps whose rows are together exactly the input's rows."""
    train, test = parts
    assert train.user_map is data.user_map and test.item_map is data.item_map
    assert len(train) + len(test) == len(data) and len(test) > 0
    pairs = lambda d: set(zip(d.users.tolist(), d.items.tolist()))  # noqa: E731
    assert pairs(train) | pairs(test) == pairs(data) and not pairs(train) & pairs(test)


@given(interactions(), fractions, any_seed)
def test_random_and_validation_splits(data, fraction, seed):
    for split in (random_split, validation_split):
        result = result_or_error(lambda: split(data, fraction, seed))  # noqa: B023
        if not isinstance(result, TripletrecError):
            check_split(data, result)


@given(interactions(), fractions, any_seed)
def test_fraction_per_user_split(data, fraction, seed):
    result = result_or_error(lambda: fraction_per_user_split(data, fraction, seed))
    if not isinstance(result, TripletrecError):
        check_split(data, result)
        # Every user keeps a training row.
        assert set(result[1].users.tolist()) <= set(result[0].users.tolist())


@given(interactions(), any_k)
def test_leave_last_k_out(data, k):
    result = result_or_error(lambda: leave_last_k_out(data, k))
    if not isinstance(result, TripletrecError):
        check_split(data, result)
        train, test = result
        assert set(test.users.tolist()) <= set(train.users.tolist())
        for user in np.unique(test.users):  # held-out rows are each user's latest
            assert (
                test.timestamps[test.users == user].min()
                >= train.timestamps[train.users == user].max()
            )


@given(anything, fractions)
def test_splits_of_something_else(value, fraction):
    for split in (random_split, validation_split, fraction_per_user_split, leave_last_k_out):
        result_or_error(lambda: split(value))  # noqa: B023


# ---------------------------------------------------------------------- the bugs found
def test_unhashable_ids_are_a_data_error_naming_the_row():
    frame = pd.DataFrame({"user_id": [1, [2, 3]], "item_id": [1, 2]})
    with pytest.raises(DataError, match=r"'user_id' holds a list at row 1"):
        Interactions.from_dataframe(frame)


def test_a_column_name_given_twice_is_a_data_error():
    frame = pd.DataFrame([[1, 2, 3]], columns=["user_id", "item_id", "item_id"])
    with pytest.raises(DataError, match=r"'item_id' appears 2 times"):
        Interactions.from_dataframe(frame)


def test_user_col_none_is_a_parameter_error():
    frame = pd.DataFrame({"user_id": [1], "item_id": [1]})
    with pytest.raises(ParameterError, match="user_col"):
        Interactions.from_dataframe(frame, user_col=None)


@pytest.mark.parametrize("reader", ["dataframe", "parquet"])
def test_timestamps_beyond_int64_seconds_are_a_data_error(tmp_path, reader):
    frame = pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2], "t": [1.0, 1e300]})
    with pytest.raises(DataError, match=r"'t'.*row 1"):
        if reader == "parquet":
            frame.to_parquet(tmp_path / "t.parquet")
            Interactions.from_parquet(tmp_path / "t.parquet", timestamp_col="t")
        else:
            Interactions.from_dataframe(frame, timestamp_col="t")


@pytest.mark.parametrize("reader", ["dataframe", "parquet"])
def test_datetime_ratings_are_a_data_error(tmp_path, reader):
    frame = pd.DataFrame(
        {"user_id": [1, 2], "item_id": [1, 2], "r": pd.to_datetime(["2020-01-01", "2021-01-01"])}
    )
    with pytest.raises(DataError, match=r"'r' must be numeric.*datetime"):
        if reader == "parquet":
            frame.to_parquet(tmp_path / "r.parquet")
            Interactions.from_parquet(tmp_path / "r.parquet", rating_col="r")
        else:
            Interactions.from_dataframe(frame, rating_col="r")


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "0", np.random.RandomState(0)])
def test_split_seeds_out_of_range_are_parameter_errors(seed):
    data = Interactions.from_dataframe(pd.DataFrame({"user_id": [1, 1, 2], "item_id": [1, 2, 1]}))
    for split in (random_split, validation_split, fraction_per_user_split):
        with pytest.raises(ParameterError, match="random_state"):
            split(data, 0.5, seed)


def test_leave_last_k_out_with_a_huge_k_holds_out_all_but_one_row():
    frame = pd.DataFrame({"user_id": [1, 1, 1], "item_id": [1, 2, 3], "t": [1, 2, 3]})
    data = Interactions.from_dataframe(frame, timestamp_col="t")
    train, test = leave_last_k_out(data, 2**70)
    assert len(train) == 1 and len(test) == 2


@pytest.mark.parametrize("value", [None, "data.csv", [1, 2], pd.DataFrame({"a": [1]})])
def test_splits_of_something_else_name_the_type(value):
    for split in (random_split, validation_split, fraction_per_user_split, leave_last_k_out):
        with pytest.raises(DataError, match=f"expected Interactions, got {type(value).__name__}"):
            split(value)


def test_one_line_check_rejects_multi_line_messages():
    with pytest.raises(AssertionError, match="not one line"):
        assert_one_line(DataError("first\nsecond"))
    with pytest.raises(AssertionError, match="not a TripletrecError"):
        assert_one_line(ValueError("one line"))
    assert_one_line(DataError("one line"))


@pytest.mark.parametrize("name", [["user_id"], np.array([0, 1])])
def test_a_column_name_that_is_a_list_is_a_parameter_error(tmp_path, name):
    frame = pd.DataFrame({"user_id": [1], "item_id": [1]})
    frame.to_parquet(tmp_path / "f.parquet")
    with pytest.raises(ParameterError, match="user_col must be a column name"):
        Interactions.from_dataframe(frame, user_col=name)
    with pytest.raises(ParameterError, match="user_col must be a column name"):
        Interactions.from_parquet(tmp_path / "f.parquet", user_col=name)


def test_file_and_column_names_with_newlines_are_quoted_in_messages(tmp_path):
    for reader in (Interactions.from_csv, Interactions.from_parquet):
        with pytest.raises(DataError, match="no such file") as caught:
            reader(tmp_path / "a\nb.csv")
        assert_one_line(caught.value)
    frame = pd.DataFrame({"who\n": [1, 1], "item_id": [2, 2]})
    frame.to_parquet(tmp_path / "f.parquet")
    for call in (
        lambda: Interactions.from_dataframe(frame, user_col="who\n"),
        lambda: Interactions.from_parquet(tmp_path / "f.parquet", user_col="who\n"),
    ):
        with pytest.raises(DataError, match=r"rows repeat a \('who\\n', item_id\) pair") as caught:
            call()
        assert_one_line(caught.value)


def test_an_array_as_the_duplicates_policy_is_a_parameter_error():
    frame = pd.DataFrame({"user_id": [1], "item_id": [1]})
    with pytest.raises(ParameterError, match="duplicates must be one of"):
        Interactions.from_dataframe(frame, duplicates=np.array([0, 1]))


def test_a_file_name_too_long_is_a_data_error(tmp_path):
    for reader in (Interactions.from_csv, Interactions.from_parquet):
        with pytest.raises(DataError, match="cannot read"):
            reader(tmp_path / ("a" * 300))
