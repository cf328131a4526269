"""Checks and readers shared by the interaction readers and the dataset loaders.

The DataFrame reader (:meth:`tripletrec.data.interactions.Interactions.from_dataframe`),
the batched Parquet reader (:mod:`tripletrec.data.parquet`) and the dataset loaders
(:mod:`tripletrec.data.datasets`) fail the same way, with the same message, on the same
bad table, because they share these functions.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from tripletrec._checks import one_of, printable
from tripletrec.exceptions import DataError, ParameterError, first_line

#: What the readers do with repeated (user, item) pairs.
DUPLICATE_POLICIES = ("error", "first", "last")

#: Ratings are stored as float32: a larger magnitude would become infinite.
FLOAT32_MAX = float(np.finfo(np.float32).max)
#: Timestamps are stored as int64 seconds: a magnitude from here on does not fit.
INT64_LIMIT = 2.0**63


def wanted_columns(
    user_col: object, item_col: object, rating_col: object, timestamp_col: object
) -> list:
    """The columns a reader needs, in order; :class:`~tripletrec.exceptions.ParameterError`
    when the id columns are not named (``user_col=None``) or a name is not a column name
    (a list or an array: unhashable)."""
    for name, value in (("user_col", user_col), ("item_col", item_col)):
        if value is None:
            raise ParameterError(f"{name} must name the column of the ids, got None")
    names = ("user_col", "item_col", "rating_col", "timestamp_col")
    for name, value in zip(names, (user_col, item_col, rating_col, timestamp_col)):
        if not is_hashable(value):
            raise ParameterError(f"{name} must be a column name, got a {type(value).__name__}")
    return [c for c in (user_col, item_col, rating_col, timestamp_col) if c is not None]


def check_columns(wanted: Collection[str], columns: Collection, source: str) -> None:
    """Raise :class:`DataError` naming the ``wanted`` columns absent from ``columns``, or
    present more than once (which one would be read is a guess)."""
    columns = list(columns)
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(map(repr, missing))}; "
            f"columns are {', '.join(map(repr, map(str, columns)))}"
        )
    for name in wanted:
        count = sum(1 for c in columns if c == name)
        if count > 1:
            raise DataError(f"{source}: column {name!r} appears {count} times; rename the copies")


def is_hashable(value: object) -> bool:
    """Whether ``value`` can be an id (or a column name): pandas looks ids up by hash."""
    try:
        hash(value)
    except TypeError:
        return False
    return True


def id_array(raw_ids: object, name: str) -> np.ndarray:
    """Raw ids (one id, or a flat list or array of them) as a 1-d array, object dtype when
    any is text (so that ``["1", 1]`` stay a string and an int);
    :class:`~tripletrec.exceptions.ParameterError` for nested lists."""
    text = isinstance(raw_ids, str) or (
        isinstance(raw_ids, (list, tuple)) and any(isinstance(v, str) for v in raw_ids)
    )
    try:
        values = np.asarray(raw_ids, dtype=object if text else None)
    except (ValueError, TypeError):  # ragged nesting, such as [[1], [2, 3]]
        values = None
    if values is None or values.ndim > 1:
        raise ParameterError(
            f"{name} ids must be one id or a flat list of ids, got a nested "
            f"{type(raw_ids).__name__}"
        )
    return np.atleast_1d(values)


def unhashable_ids_error(
    frame: pd.DataFrame, columns: Collection[str], source: str, cause: Exception
) -> DataError:
    """The error for id columns that pandas cannot hash (cells holding lists, dicts,
    arrays): names the first such cell. Only called once hashing failed, so the loop over
    the rows runs on the error path alone."""
    for name in columns:
        for row, value in enumerate(frame[name].array):
            if not is_hashable(value):
                return DataError(
                    f"{source}: column {name!r} holds a {type(value).__name__} at row {row}; "
                    "ids must be numbers or strings"
                )
    return DataError(f"{source}: ids cannot be compared ({first_line(cause)})")


def check_duplicate_policy(duplicates: str) -> None:
    """Raise :class:`~tripletrec.exceptions.ParameterError` unless ``duplicates`` is one of
    :data:`DUPLICATE_POLICIES`."""
    one_of("duplicates", duplicates, DUPLICATE_POLICIES)


def not_numeric_error(source: str, name: str, row: int, value: object) -> DataError:
    """The error for a non-numeric or non-finite ``value`` at ``row`` of column ``name``."""
    return DataError(
        f"{source}: column {name!r} must be numeric and finite; row {row} holds {value!r}"
    )


def numeric_column(
    column: pd.Series,
    name: str,
    source: str,
    *,
    limit: float | None = None,
    offset: int = 0,
) -> np.ndarray:
    """``column`` as float64; :func:`not_numeric_error` at the first value that is not a
    finite number (or whose magnitude is ``limit`` or more).

    Datetimes, durations, periods and complex numbers are refused whole: pandas would turn
    them into nanoseconds or drop the imaginary part, numbers that mean nothing as ratings.
    ``offset`` is the row number of the column's first value, for the message.
    """
    dtype = column.dtype
    if (
        pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
        or isinstance(dtype, pd.PeriodDtype)
        or pd.api.types.is_complex_dtype(dtype)
    ):
        raise DataError(
            f"{source}: column {name!r} must be numeric and finite; it holds {dtype} values"
        )
    numbers = pd.to_numeric(column, errors="coerce")
    if pd.api.types.is_complex_dtype(numbers.dtype):  # complex numbers in an object column
        complex_values = numbers.to_numpy()
        values = np.where(complex_values.imag == 0, complex_values.real, np.nan)
    else:  # na_value: nullable dtypes (Int64, string) hold pd.NA, which float64 cannot
        values = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    too_large = np.zeros_like(bad)
    if limit is not None:
        with np.errstate(invalid="ignore"):
            too_large = np.abs(values) >= limit
    if bad.any() or too_large.any():
        first = int(np.flatnonzero(bad | too_large)[0])
        if not bad[first]:  # finite, but too large
            raise DataError(
                f"{source}: column {name!r} at row {offset + first} holds "
                f"{column.iloc[first]!r}, which is too large to store (limit {limit:.4g})"
            )
        raise not_numeric_error(source, name, offset + first, column.iloc[first])
    return values


def rating_column(column: pd.Series, name: str, source: str) -> np.ndarray:
    """Ratings as float32: :func:`numeric_column` within the float32 range."""
    return numeric_column(column, name, source, limit=FLOAT32_MAX).astype(np.float32)


def timestamp_column(column: pd.Series, name: str, source: str) -> np.ndarray:
    """Timestamps as int64 seconds: datetimes converted, numbers checked as numbers (and
    as fitting int64)."""
    if pd.api.types.is_datetime64_any_dtype(column):
        return column.to_numpy(dtype="datetime64[s]").astype(np.int64)
    return numeric_column(column, name, source, limit=INT64_LIMIT).astype(np.int64)


def check_file(path: str | Path) -> Path:
    """``path`` as a Path; :class:`DataError` when it is not a file (or cannot even be
    looked at: a name too long for the file system)."""
    path = Path(path)
    try:
        is_file = path.is_file()
    except OSError as exc:
        raise DataError(f"{printable(path)}: cannot read ({first_line(exc)})") from exc
    if not is_file:
        raise DataError(f"{printable(path)}: no such file")
    return path


def read_table(path: str | Path, kind: Literal["csv", "parquet"], sep: str = ",") -> pd.DataFrame:
    """A whole CSV or Parquet file as a DataFrame; :class:`DataError` naming the file when it
    is missing or unreadable."""
    path = check_file(path)
    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, sep=sep)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"{printable(path)}: cannot read as {kind}: {first_line(exc)}") from exc
