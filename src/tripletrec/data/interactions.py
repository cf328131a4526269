"""Interaction data: who interacted with what, and the maps between raw ids and indices.

An :class:`Interactions` object holds one row per (user, item) interaction as contiguous
integer indices, with optional ratings and timestamps, plus two :class:`IdMap` objects that
translate between the caller's raw ids (ints or strings) and those indices. Every subset
(positives, train/test splits) shares the maps of the data it came from, so indices stay
comparable between the parts of a split and the models trained on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tripletrec._checks import printable
from tripletrec.data._checks import (
    check_columns,
    check_duplicate_policy,
    id_array,
    is_hashable,
    rating_column,
    read_table,
    timestamp_column,
    unhashable_ids_error,
    wanted_columns,
)
from tripletrec.exceptions import DataError, ParameterError, UnknownIdError

DuplicatePolicy = Literal["error", "first", "last"]


class IdMap:
    """A bijection between raw ids and the contiguous indices ``0 .. n - 1``.

    Parameters
    ----------
    ids : array-like
        The raw ids, in index order. They must be unique.
    name : str
        What the ids are ("user", "item"); used in error messages.
    """

    def __init__(self, ids: Sequence | np.ndarray | pd.Index, name: str = "id") -> None:
        index = pd.Index(ids)
        if not index.is_unique:
            raise DataError(f"{name} ids must be unique to build an id map")
        self._index = index
        self.name = name

    @property
    def ids(self) -> np.ndarray:
        """The raw ids, position ``i`` holding the id of index ``i``."""
        return self._index.to_numpy()

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, raw_id: object) -> bool:
        return raw_id in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self._index.equals(other._index)

    def __hash__(self) -> int:  # maps are mutable-free but compared by value
        return hash((self.name, len(self)))

    def __repr__(self) -> str:
        return f"IdMap({self.name}, n={len(self)})"

    def to_index(self, raw_ids: object, *, strict: bool = True) -> np.ndarray:
        """Translate raw ids to indices.

        Parameters
        ----------
        raw_ids : scalar or array-like
            Raw ids to look up.
        strict : bool, default True
            Raise :class:`UnknownIdError` for ids that are not in the map. When False,
            unknown ids map to ``-1``.

        Returns
        -------
        numpy.ndarray of int64
        """
        values = id_array(raw_ids, self.name)
        try:
            positions = self._index.get_indexer(values).astype(np.int64)
        except TypeError:  # an id that cannot be hashed: a list, dict or set in the list
            kind = next(type(v).__name__ for v in values if not is_hashable(v))
            raise ParameterError(
                f"{self.name} ids must be numbers or strings, got a {kind}"
            ) from None
        if strict and (positions < 0).any():
            unknown = values[positions < 0]
            shown = ", ".join(repr(_plain(v)) for v in unknown[:5])
            more = f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""
            raise UnknownIdError(f"unknown {self.name} id(s): {shown}{more}")
        return positions

    def to_raw(self, indices: np.ndarray | Sequence[int]) -> np.ndarray:
        """Translate indices back to raw ids (same shape as ``indices``)."""
        indices = np.asarray(indices, dtype=np.int64)
        return self.ids[indices]

    def to_list(self) -> list:
        """The raw ids as plain Python values (JSON-serialisable)."""
        return [_plain(v) for v in self.ids]


def _plain(value: object) -> object:
    """A NumPy scalar as the matching Python scalar, for messages and JSON."""
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True, eq=False)
class Interactions:
    """User-item interactions as index arrays plus the id maps.

    Build it with :meth:`from_dataframe`, :meth:`from_csv` or :meth:`from_parquet`
    rather than by hand.

    Attributes
    ----------
    users, items : numpy.ndarray of int64
        Row-aligned user and item indices.
    ratings : numpy.ndarray of float32 or None
        Explicit ratings, when the data has them.
    timestamps : numpy.ndarray of int64 or None
        Interaction times, when the data has them.
    user_map, item_map : IdMap
        Raw id <-> index maps; shared by every subset of these interactions.
    item_metadata : pandas.DataFrame or None
        Optional item attributes (for example a ``name`` column), indexed by raw item id.
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray | None
    timestamps: np.ndarray | None
    user_map: IdMap
    item_map: IdMap
    item_metadata: pd.DataFrame | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = len(self.users)
        for name in ("items", "ratings", "timestamps"):
            values = getattr(self, name)
            if values is not None and len(values) != n:
                raise DataError(f"interactions: '{name}' has {len(values)} rows, users {n}")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dataframe(
        cls,
        df: pd.DataFrame,
        user_col: str = "user_id",
        item_col: str = "item_id",
        rating_col: str | None = None,
        timestamp_col: str | None = None,
        *,
        user_map: IdMap | None = None,
        item_map: IdMap | None = None,
        item_metadata: pd.DataFrame | None = None,
        duplicates: DuplicatePolicy = "error",
        source: str = "data frame",
    ) -> Interactions:
        """Build interactions from a DataFrame with one row per interaction.

        Parameters
        ----------
        df : pandas.DataFrame
            The interactions.
        user_col, item_col : str
            Columns holding the raw user and item ids.
        rating_col, timestamp_col : str, optional
            Columns holding ratings (numeric) and timestamps (numeric or datetime).
        user_map, item_map : IdMap, optional
            Existing maps to reuse (for example the maps of a training set); ids outside
            them raise :class:`UnknownIdError`. By default the maps are built from the
            data, in order of first appearance.
        item_metadata : pandas.DataFrame, optional
            Item attributes indexed by raw item id.
        duplicates : {"error", "first", "last"}, default "error"
            What to do with repeated (user, item) pairs: raise, or keep the first or the
            last occurrence.
        source : str
            Where the data came from, for error messages.

        Returns
        -------
        Interactions
        """
        source = printable(source)
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"{source}: expected a pandas DataFrame, got {type(df).__name__}")
        wanted = wanted_columns(user_col, item_col, rating_col, timestamp_col)
        check_columns(wanted, list(df.columns), source)
        if len(df) == 0:
            raise DataError(f"{source}: no interactions (the table is empty)")
        for col in wanted:
            null = df[col].isna().to_numpy()
            if null.any():
                first = int(np.flatnonzero(null)[0])
                raise DataError(
                    f"{source}: column {col!r} has {int(null.sum())} missing value(s), "
                    f"first at row {first}"
                )
        check_duplicate_policy(duplicates)
        try:
            dup = df.duplicated(
                [user_col, item_col], keep=False if duplicates == "error" else duplicates
            )
        except TypeError as exc:  # cells that are lists, dicts, arrays
            raise unhashable_ids_error(df, (user_col, item_col), source, exc) from exc
        if dup.any():
            if duplicates == "error":
                first = int(np.flatnonzero(dup.to_numpy())[0])
                raise DataError(
                    f"{source}: {int(dup.sum())} rows repeat a "
                    f"({printable(user_col)}, {printable(item_col)}) pair, "
                    f"first at row {first}; pass duplicates='first' or 'last' to keep one"
                )
            df = df.loc[~dup.to_numpy()]

        ratings = None
        if rating_col is not None:
            ratings = rating_column(df[rating_col], rating_col, source)
        timestamps = None
        if timestamp_col is not None:
            timestamps = timestamp_column(df[timestamp_col], timestamp_col, source)

        # "is None", not "or": an empty IdMap is falsy and must still be honoured.
        if user_map is None:
            user_map = IdMap(pd.unique(df[user_col].to_numpy()), "user")
        if item_map is None:
            item_map = IdMap(pd.unique(df[item_col].to_numpy()), "item")
        users = user_map.to_index(df[user_col].to_numpy())
        items = item_map.to_index(df[item_col].to_numpy())
        return cls(users, items, ratings, timestamps, user_map, item_map, item_metadata)

    @classmethod
    def from_csv(cls, path: str | Path, *, sep: str = ",", **kwargs) -> Interactions:
        """Read interactions from a CSV file; keyword arguments go to :meth:`from_dataframe`."""
        return cls.from_dataframe(read_table(path, "csv", sep=sep), source=str(path), **kwargs)

    @classmethod
    def from_parquet(cls, path: str | Path, **kwargs) -> Interactions:
        """Read interactions from a Parquet file; keyword arguments as :meth:`from_dataframe`.

        The file is read in record batches, only the named columns, without building a
        DataFrame of it: see :func:`tripletrec.data.parquet.read_parquet_interactions`
        (``batch_rows=`` sets the batch size).
        """
        from tripletrec.data.parquet import read_parquet_interactions  # it imports this module

        return read_parquet_interactions(path, **kwargs)

    @classmethod
    def from_adjacency_file(cls, path: str | Path, **kwargs) -> Interactions:
        """Read a ``user item item ...`` file (LightGCN's format), one line per user.

        Keyword arguments (``user_map``, ``item_map``, ``duplicates``) and errors: see
        :func:`tripletrec.data.adjacency.read_adjacency_file`.
        """
        from tripletrec.data.adjacency import read_adjacency_file  # it imports this module

        return read_adjacency_file(path, **kwargs)

    @classmethod
    def from_file(cls, path: str | Path, **kwargs) -> Interactions:
        """Read a ``.csv``/``.tsv``/``.parquet`` file, choosing the reader by its suffix."""
        suffix = Path(path).suffix.lower()
        if suffix in (".parquet", ".pq"):
            return cls.from_parquet(path, **kwargs)
        if suffix in (".tsv", ".dat", ".tab"):
            return cls.from_csv(path, sep="\t", **kwargs)
        return cls.from_csv(path, **kwargs)

    # ------------------------------------------------------------------ shape
    @property
    def n_users(self) -> int:
        """Number of users in the id map (not only those with rows here)."""
        return len(self.user_map)

    @property
    def n_items(self) -> int:
        """Number of items in the id map (not only those with rows here)."""
        return len(self.item_map)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_users, self.n_items)

    def __len__(self) -> int:
        return len(self.users)

    def __repr__(self) -> str:
        extras = [n for n in ("ratings", "timestamps") if getattr(self, n) is not None]
        return (
            f"Interactions({len(self)} rows, {self.n_users} users x {self.n_items} items"
            + (f", with {' and '.join(extras)}" if extras else "")
            + ")"
        )

    # ------------------------------------------------------------------ subsets
    def subset(self, rows: np.ndarray) -> Interactions:
        """The interactions at ``rows`` (a boolean mask or integer positions), same maps."""
        rows = np.asarray(rows)

        def take(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else values[rows]

        return Interactions(
            self.users[rows],
            self.items[rows],
            take(self.ratings),
            take(self.timestamps),
            self.user_map,
            self.item_map,
            self.item_metadata,
        )

    def compact(self) -> Interactions:
        """The same rows with the id maps restricted to users and items that have one.

        Subsets share their parent's maps, so an item held out entirely (a cold item)
        would still be in the maps; a model fitted on the compacted rows does not know it.
        """
        user_ids, users = np.unique(self.users, return_inverse=True)
        item_ids, items = np.unique(self.items, return_inverse=True)
        item_map = IdMap(self.item_map.to_raw(item_ids), self.item_map.name)
        metadata = None if self.item_metadata is None else self.item_metadata.reindex(item_map.ids)
        return Interactions(
            users.astype(np.int64),
            items.astype(np.int64),
            self.ratings,
            self.timestamps,
            IdMap(self.user_map.to_raw(user_ids), self.user_map.name),
            item_map,
            metadata,
        )

    def positives(self, threshold: float, *, inclusive: bool = False) -> Interactions:
        """The interactions whose rating is above ``threshold``.

        Parameters
        ----------
        threshold : float
            Rating cut-off.
        inclusive : bool, default False
            Keep ``rating >= threshold`` instead of ``rating > threshold``.

        Raises
        ------
        DataError
            When there are no ratings, or no rating passes the threshold.
        """
        if self.ratings is None:
            raise DataError("these interactions have no ratings to threshold")
        keep = self.ratings >= threshold if inclusive else self.ratings > threshold
        if not keep.any():
            op = ">=" if inclusive else ">"
            raise DataError(
                f"no positives: no rating is {op} {threshold:g} "
                f"(ratings range from {self.ratings.min():g} to {self.ratings.max():g})"
            )
        return self.subset(keep)

    # ------------------------------------------------------------------ conversions
    def to_csr(self, values: Literal["binary", "rating"] = "binary") -> sp.csr_matrix:
        """The user x item matrix over the full id maps.

        Parameters
        ----------
        values : {"binary", "rating"}
            Store ones, or the ratings.
        """
        if values == "rating":
            if self.ratings is None:
                raise DataError("these interactions have no ratings")
            data = self.ratings
        else:
            data = np.ones(len(self), dtype=np.float32)
        matrix = sp.csr_matrix((data, (self.users, self.items)), shape=self.shape)
        matrix.sum_duplicates()
        return matrix

    def to_dataframe(self) -> pd.DataFrame:
        """The interactions as a DataFrame of raw ids (``user_id``, ``item_id``, ...)."""
        columns = {
            "user_id": self.user_map.to_raw(self.users),
            "item_id": self.item_map.to_raw(self.items),
        }
        if self.ratings is not None:
            columns["rating"] = self.ratings
        if self.timestamps is not None:
            columns["timestamp"] = self.timestamps
        return pd.DataFrame(columns)

    def item_names(self, item_ids: np.ndarray) -> np.ndarray | None:
        """Names of raw ``item_ids`` from the metadata's ``name`` column, if there is one."""
        if self.item_metadata is None or "name" not in self.item_metadata.columns:
            return None
        return self.item_metadata["name"].reindex(item_ids).to_numpy()
