"""Interactions from large Parquet files, read in record batches; peak memory reporting.

:func:`read_parquet_interactions` (behind :meth:`Interactions.from_parquet
<tripletrec.data.interactions.Interactions.from_parquet>`)
reads only the columns it needs, one record
batch at a time, and keeps per row nothing but integer codes: each batch's id columns are
dictionary-encoded by Arrow (``int32`` codes plus the batch's distinct ids), and at the end
the batches' dictionaries are unified in one more Arrow dictionary encoding, which maps
every batch code to a global index in order of first appearance. No Python object is
created per row, no DataFrame of the whole file exists at any time, and the result is the
same :class:`~tripletrec.data.interactions.Interactions` that :meth:`Interactions.from_dataframe
<tripletrec.data.interactions.Interactions.from_dataframe>`
builds from the whole table (same maps, same
rows, same errors).

Memory: 16 bytes per interaction for the user and item indices (plus 4 for ratings, 8 for
timestamps) and one record batch of the file; the duplicate check sorts one 8-byte key per
row. :func:`tripletrec._system.peak_rss_bytes` reports the process's peak resident memory.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tripletrec._checks import positive_int, printable
from tripletrec.data._checks import (
    FLOAT32_MAX,
    INT64_LIMIT,
    check_columns,
    check_duplicate_policy,
    check_file,
    numeric_column,
    wanted_columns,
)
from tripletrec.data.interactions import DuplicatePolicy, IdMap, Interactions
from tripletrec.exceptions import DataError, first_line

#: Rows per record batch: large enough for vectorised work, small next to the index arrays.
DEFAULT_BATCH_ROWS = 1 << 20


def read_parquet_interactions(
    path: str | Path,
    user_col: str = "user_id",
    item_col: str = "item_id",
    rating_col: str | None = None,
    timestamp_col: str | None = None,
    *,
    user_map: IdMap | None = None,
    item_map: IdMap | None = None,
    item_metadata: pd.DataFrame | None = None,
    duplicates: DuplicatePolicy = "error",
    source: str | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> Interactions:
    """Interactions from a Parquet file, read in record batches of ``batch_rows`` rows.

    Parameters
    ----------
    path : str or Path
        The Parquet file.
    user_col, item_col, rating_col, timestamp_col, user_map, item_map, item_metadata, \
duplicates
        As :meth:`Interactions.from_dataframe
        <tripletrec.data.interactions.Interactions.from_dataframe>`.
    source : str, optional
        Where the data came from, for error messages (default: the path).
    batch_rows : int
        Rows per record batch.

    Returns
    -------
    Interactions

    Raises
    ------
    DataError
        Missing or unreadable file, missing column, missing ids, non-numeric ratings,
        repeated (user, item) pairs (with ``duplicates="error"``), or no rows.
    """
    import pyarrow as pa

    path = Path(path)
    source = printable(path if source is None else source)
    check_duplicate_policy(duplicates)
    batch_rows = positive_int("batch_rows", batch_rows)
    wanted = wanted_columns(user_col, item_col, rating_col, timestamp_col)
    parquet = _open(path)
    check_columns(wanted, parquet.schema_arrow.names, source)
    n_rows = parquet.metadata.num_rows
    if n_rows == 0:
        raise DataError(f"{source}: no interactions (the table is empty)")

    reader = _BatchColumns(wanted, source)
    ratings = None if rating_col is None else np.empty(n_rows, np.float32)
    timestamps = None if timestamp_col is None else np.empty(n_rows, np.int64)
    # from_dataframe reports repeated pairs before bad ratings: hold the first such error.
    value_error: DataError | None = None
    offset = 0
    try:
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=wanted):
            reader.check_nulls(batch, offset)
            if not reader.any_nulls:
                reader.encode(batch.column(user_col), user_col)
                reader.encode(batch.column(item_col), item_col)
                end = offset + batch.num_rows
                try:
                    if ratings is not None:
                        ratings[offset:end] = _numeric(
                            batch.column(rating_col), rating_col, source, offset, FLOAT32_MAX
                        )
                    if timestamps is not None:
                        timestamps[offset:end] = _timestamps(
                            batch.column(timestamp_col), timestamp_col, source, offset
                        )
                except DataError as exc:
                    value_error = value_error or exc
            offset += batch.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{source}: cannot read as parquet: {first_line(exc)}") from exc
    reader.raise_nulls()
    pa.default_memory_pool().release_unused()  # the batches' buffers, kept by the allocator

    users, user_ids = reader.indices(user_col, user_map, n_rows)
    items, item_ids = reader.indices(item_col, item_map, n_rows)
    keep = _unique_pairs(users, items, len(item_ids), duplicates, source, (user_col, item_col))
    if value_error is not None:
        raise value_error
    if keep is not None:
        users, items = users[keep], items[keep]
        ratings = None if ratings is None else ratings[keep]
        timestamps = None if timestamps is None else timestamps[keep]
        # Dropping a user's first row can move the user later in first-appearance order:
        # rebuild the maps that came from the data, as from_dataframe does after dropping.
        if user_map is None:
            users, user_ids = _refactorize(users, user_ids)
        if item_map is None:
            items, item_ids = _refactorize(items, item_ids)
    return Interactions(
        users,
        items,
        ratings,
        timestamps,
        IdMap(user_ids, "user") if user_map is None else user_map,
        IdMap(item_ids, "item") if item_map is None else item_map,
        item_metadata,
    )


def _open(path: Path) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    check_file(path)
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(f"{printable(path)}: cannot read as parquet: {first_line(exc)}") from exc


class _BatchColumns:
    """Per-batch dictionary codes of the id columns, and the missing values found."""

    def __init__(self, columns: list[str], source: str) -> None:
        self.source = source
        self.codes: dict[str, list[np.ndarray]] = {}
        self.dictionaries: dict[str, list[Any]] = {}
        self.nulls = {name: 0 for name in columns}
        self.first_null = {name: -1 for name in columns}
        self.columns = columns

    def check_nulls(self, batch: Any, offset: int) -> None:
        """Count the batch's missing values (NaN included), remembering the first row."""
        import pyarrow.compute as pc

        for name in self.columns:
            column = batch.column(name)
            missing = column.is_null(nan_is_null=True)
            count = pc.sum(missing).as_py() or 0
            if count and self.first_null[name] < 0:
                first = int(np.flatnonzero(missing.to_numpy(zero_copy_only=False))[0])
                self.first_null[name] = offset + first
            self.nulls[name] += count

    @property
    def any_nulls(self) -> bool:
        return any(self.nulls.values())

    def raise_nulls(self) -> None:
        for name in self.columns:
            if self.nulls[name]:
                raise DataError(
                    f"{self.source}: column {name!r} has {self.nulls[name]} missing value(s), "
                    f"first at row {self.first_null[name]}"
                )

    def encode(self, column: Any, name: str) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        if pa.types.is_dictionary(column.type):  # a categorical: its codes are not ours
            column = column.dictionary_decode()
        if pa.types.is_nested(column.type):  # lists, structs, maps: no kernel encodes them
            raise DataError(
                f"{self.source}: column {name!r} holds {column.type} values; "
                "ids must be numbers or strings"
            )
        encoded = pc.dictionary_encode(column)
        self.codes.setdefault(name, []).append(encoded.indices.to_numpy())
        self.dictionaries.setdefault(name, []).append(encoded.dictionary)

    def indices(
        self, name: str, id_map: IdMap | None, n_rows: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Global int64 indices of column ``name`` and the raw ids, index order.

        The batch dictionaries are encoded once more as one chunked array: Arrow then
        shares one dictionary across the chunks, in order of first appearance, and each
        chunk's codes say where each batch id went.
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        dictionaries = self.dictionaries.pop(name)
        if id_map is None:
            unified = pc.dictionary_encode(pa.chunked_array(dictionaries))
            ids = unified.chunk(0).dictionary.to_numpy(zero_copy_only=False)
            lookups = [chunk.indices.to_numpy().astype(np.int64) for chunk in unified.chunks]
        else:
            values = [d.to_numpy(zero_copy_only=False) for d in dictionaries]
            positions = id_map.to_index(np.concatenate(values))  # unknown ids raise
            bounds = np.cumsum([0, *map(len, values)])
            lookups = [positions[a:b] for a, b in pairwise(bounds)]
            ids = id_map.ids
        out = np.empty(n_rows, np.int64)
        offset = 0
        batches = self.codes.pop(name)
        for lookup in lookups:
            codes = batches.pop(0)  # freed as soon as copied: the peak is one copy
            out[offset : offset + len(codes)] = lookup[codes]
            offset += len(codes)
        return out, ids


def _numeric(column: Any, name: str, source: str, offset: int, limit: float) -> np.ndarray:
    """A batch's column as finite float64 of magnitude below ``limit``, or the same error
    as ``from_dataframe``."""
    import pyarrow as pa

    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        values = column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        with np.errstate(invalid="ignore"):
            if np.isfinite(values).all() and (np.abs(values) < limit).all():
                return values
    # Other types, and every error: the check (and message) from_dataframe uses.
    return numeric_column(column.to_pandas(), name, source, limit=limit, offset=offset)


def _timestamps(column: Any, name: str, source: str, offset: int) -> np.ndarray:
    """Seconds since the epoch: datetimes converted, numbers truncated to int64."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type):
        seconds = pc.cast(column, pa.timestamp("s", getattr(column.type, "tz", None)))
        return seconds.cast(pa.int64()).to_numpy(zero_copy_only=False)
    return _numeric(column, name, source, offset, INT64_LIMIT).astype(np.int64)


def _unique_pairs(
    users: np.ndarray,
    items: np.ndarray,
    n_items: int,
    duplicates: DuplicatePolicy,
    source: str,
    names: tuple[str, str],
) -> np.ndarray | None:
    """Rows to keep under ``duplicates`` (None: no repeated pair, keep every row)."""
    keys = users * n_items + items
    # The usual case, no repeats, is decided by an in-place sort: no permutation array.
    keys.sort()
    if not (keys[1:] == keys[:-1]).any():
        return None
    keys = users * n_items + items
    order = np.argsort(keys, kind="stable")  # stable: equal keys stay in row order
    repeat = keys[order[1:]] == keys[order[:-1]]
    del keys
    if duplicates == "error":
        involved = np.zeros(len(order), bool)
        involved[1:] |= repeat
        involved[:-1] |= repeat
        rows = order[involved]
        raise DataError(
            f"{source}: {len(rows)} rows repeat a ({printable(names[0])}, "
            f"{printable(names[1])}) pair, first at row {int(rows.min())}; "
            "pass duplicates='first' or 'last' to keep one"
        )
    keep_sorted = np.ones(len(order), bool)
    if duplicates == "first":
        keep_sorted[1:] = ~repeat
    else:
        keep_sorted[:-1] = ~repeat
    keep = np.zeros(len(order), bool)
    keep[order[keep_sorted]] = True
    return keep


def _refactorize(codes: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``codes`` renumbered in order of first appearance, and the ids in that order."""
    new_codes, first_seen = pd.factorize(codes)
    return new_codes.astype(np.int64), ids[first_seen]
