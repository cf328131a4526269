"""Side features of users and items: tables keyed by raw id, encoded as sparse matrices.

A :class:`Features` is a pandas table with one row per raw user or item id and a
declaration of how to read its columns:

* **categorical** columns give one feature per distinct value (``type=TV``);
* **multi-valued** columns hold several values in one cell, separated by a string
  (``"Action, Comedy"``) or as a list; one feature per distinct value (``genre=Action``);
* **numeric** columns are cut into quantile buckets learned at ``fit`` time
  (``members:q3``), so that a number becomes a few learnable embeddings instead of one
  scalar weight.

:class:`FeatureEncoder` learns the vocabulary (values seen, bucket edges) from the training
table and turns any table with the same columns into a CSR matrix aligned to an id map:
row ``i`` holds the features of the entity of index ``i``, each row's feature weights
summing to one (the mean of its feature embeddings). The model scales the rows by its
``feature_weight`` and adds one identity column per entity it was trained on (as LightFM
does), so a known entity is its own embedding plus ``feature_weight`` times the mean of
its feature embeddings, and a new one is represented by its features alone.

Documented defaults for incomplete input (never a silent misalignment; rows are matched by
id, not by position):

* a missing value (NaN, None, empty string) adds no feature for that column;
* a value not seen at ``fit`` time (a new genre in a new item) is ignored;
* an entity with no row in the table has no side features (identity only);
* rows for ids the model does not know are ignored by ``fit`` (add new items with
  ``TripletRecommender.add_items``).

Duplicate ids, undeclared or missing columns and non-numeric values in a numeric column
raise :class:`~tripletrec.exceptions.DataError`.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tripletrec._checks import positive_int
from tripletrec.data.interactions import IdMap
from tripletrec.exceptions import DataError

#: Quantile buckets of a numeric column unless the declaration says otherwise.
DEFAULT_BUCKETS = 4


@dataclass(frozen=True)
class Features:
    """A table of side features keyed by raw id, and how to encode its columns.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per entity. Ids are the index, or the column ``id_column``.
    categorical : iterable of str
        Columns with one value per cell.
    multi_valued : mapping of str to str
        Columns with several values per cell, to the separator between them (values that
        are already lists or tuples need no separator; give ``""``).
    numeric : mapping of str to int
        Numeric columns, to their number of quantile buckets.
    id_column : str, optional
        The column holding the raw ids; the index when None.

    Examples
    --------
    >>> features = Features(
    ...     items, categorical=["type"], multi_valued={"genre": ", "},
    ...     numeric={"episodes": 4, "members": 5},
    ... )  # doctest: +SKIP
    """

    table: pd.DataFrame
    categorical: tuple[str, ...] = ()
    multi_valued: Mapping[str, str] = field(default_factory=dict)
    numeric: Mapping[str, int] = field(default_factory=dict)
    id_column: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.table, pd.DataFrame):
            raise DataError(f"features must be a pandas DataFrame, got {type(self.table).__name__}")
        object.__setattr__(self, "categorical", tuple(self.categorical))
        object.__setattr__(self, "multi_valued", dict(self.multi_valued))
        object.__setattr__(self, "numeric", dict(self.numeric))
        declared = self.columns
        if not declared:
            raise DataError(
                "declare at least one feature column (categorical, multi_valued or numeric)"
            )
        if len(set(declared)) != len(declared):
            raise DataError(f"a feature column is declared twice: {declared}")
        needed = declared + ([self.id_column] if self.id_column is not None else [])
        missing = [c for c in needed if c not in self.table.columns]
        if missing:
            raise DataError(
                f"feature table has no column(s) {missing}; it has {list(self.table.columns)}"
            )
        for column, n_buckets in self.numeric.items():
            positive_int(f"the buckets of numeric column {column!r}", n_buckets)
        ids = self.ids
        if ids.isna().any():
            raise DataError("feature table has missing ids")
        if not ids.is_unique:
            duplicated = ids[ids.duplicated()].unique()[:5]
            raise DataError(
                f"feature table has duplicate ids, e.g. {list(duplicated)}: one row per id"
            )

    @property
    def columns(self) -> list[str]:
        """The declared feature columns."""
        return [*self.categorical, *self.multi_valued, *self.numeric]

    @property
    def ids(self) -> pd.Index:
        """The raw ids of the rows."""
        if self.id_column is None:
            return pd.Index(self.table.index)
        return pd.Index(self.table[self.id_column])

    def spec(self) -> dict[str, Any]:
        """The column declaration, JSON-serialisable."""
        return {
            "categorical": list(self.categorical),
            "multi_valued": dict(self.multi_valued),
            "numeric": {k: int(v) for k, v in self.numeric.items()},
        }

    def for_ids(self, ids: Iterable) -> Features:
        """The same declaration over the rows of ``ids`` only (unknown ids ignored)."""
        keep = self.ids.isin(pd.Index(list(ids)))
        return Features(
            self.table.loc[np.asarray(keep)], self.categorical, self.multi_valued,
            self.numeric, self.id_column,
        )  # fmt: skip


class FeatureEncoder:
    """Learns a feature vocabulary from a :class:`Features` and encodes tables with it.

    Attributes
    ----------
    feature_names_ : list of str
        One name per feature column of the encoded matrices (``"genre=Action"``,
        ``"members:q2"``).
    bucket_edges_ : dict of str to list of float
        Inner quantile edges of each numeric column.
    """

    def __init__(self, spec: Mapping[str, Any] | None = None) -> None:
        self.spec = dict(spec or {})

    def fit(self, features: Features) -> FeatureEncoder:
        """Learn the values and bucket edges of ``features``' table."""
        self.spec = features.spec()
        self.bucket_edges_: dict[str, list[float]] = {}
        for column, n_buckets in features.numeric.items():
            values = _numeric(features.table[column], column)
            finite = values[np.isfinite(values)]
            if len(finite) == 0:
                raise DataError(f"numeric column {column!r} has no value to learn buckets from")
            inner = np.quantile(finite, np.linspace(0, 1, n_buckets + 1)[1:-1])
            self.bucket_edges_[column] = [float(x) for x in np.unique(inner)]
        _, names = self._tokens(features)
        self.feature_names_ = sorted(set(names))
        return self

    @property
    def n_features(self) -> int:
        return len(self.feature_names_)

    def transform(self, features: Features, id_map: IdMap) -> sp.csr_matrix:
        """The ``(len(id_map), n_features)`` CSR matrix of ``features``, rows by id.

        Rows of ids not in ``id_map`` are ignored; entities without a row, or whose values
        were never seen at ``fit`` time, get empty rows. Each non-empty row sums to one.
        """
        self._check_fitted()
        if features.spec() != self.spec:
            raise DataError(
                f"feature columns {features.spec()} differ from those the model was trained "
                f"with {self.spec}"
            )
        row_of_table = id_map.to_index(features.ids.to_numpy(), strict=False)
        table_rows, names = self._tokens(features)
        rows = row_of_table[table_rows]
        columns = pd.Index(self.feature_names_).get_indexer(names)
        keep = (rows >= 0) & (columns >= 0)
        return _mean_rows(rows[keep], columns[keep], (len(id_map), self.n_features))

    def _tokens(self, features: Features) -> tuple[np.ndarray, np.ndarray]:
        """(table row position, feature name) for every feature present, all columns."""
        parts_rows, parts_names = [], []
        table = features.table.reset_index(drop=True)
        for column in features.categorical:
            values = table[column]
            present = values.notna() & (values.astype(str).str.strip() != "")
            parts_rows.append(np.flatnonzero(present))
            parts_names.append((column + "=" + values[present].astype(str).str.strip()).to_numpy())
        for column, separator in features.multi_valued.items():
            values = table[column]
            if separator:
                values = values.astype("string").str.split(separator, regex=False)
            exploded = values.explode().dropna()
            text = exploded.astype(str).str.strip()
            text = text[text != ""]
            parts_rows.append(text.index.to_numpy())
            parts_names.append((column + "=" + text).to_numpy())
        for column in features.numeric:
            values = _numeric(table[column], column)
            present = np.isfinite(values)
            edges = getattr(self, "bucket_edges_", {}).get(column, [])
            buckets = np.searchsorted(np.asarray(edges), values[present], side="right")
            parts_rows.append(np.flatnonzero(present))
            parts_names.append(np.char.add(f"{column}:q", buckets.astype(str)).astype(object))
        if not parts_rows:
            return np.empty(0, np.int64), np.empty(0, object)
        return (
            np.concatenate(parts_rows).astype(np.int64),
            np.concatenate([np.asarray(p, dtype=object) for p in parts_names]),
        )

    def to_dict(self) -> dict[str, Any]:
        """The fitted state, JSON-serialisable (see :meth:`from_dict`)."""
        self._check_fitted()
        return {
            "spec": self.spec,
            "feature_names": self.feature_names_,
            "bucket_edges": self.bucket_edges_,
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> FeatureEncoder:
        """An encoder restored from :meth:`to_dict`."""
        try:
            encoder = cls(state["spec"])
            encoder.feature_names_ = [str(n) for n in state["feature_names"]]
            encoder.bucket_edges_ = {
                str(k): [float(x) for x in v] for k, v in state["bucket_edges"].items()
            }
        except (KeyError, TypeError, AttributeError) as exc:
            raise DataError(f"malformed feature encoder state ({exc})") from exc
        return encoder

    def _check_fitted(self) -> None:
        if not hasattr(self, "feature_names_"):
            raise DataError("the feature encoder is not fitted")


def _numeric(values: pd.Series, column: str) -> np.ndarray:
    """``values`` as float64; missing values become NaN, anything else non-numeric fails."""
    converted = pd.to_numeric(values, errors="coerce")
    bad = converted.isna() & values.notna()
    if bad.any():
        example = values[bad].iloc[0]
        raise DataError(
            f"numeric feature column {column!r} has a non-numeric value {example!r} "
            f"(row {bad.idxmax()!r})"
        )
    return converted.to_numpy(dtype=np.float64, na_value=np.nan)


def with_identity(matrix: sp.csr_matrix, n_identity: int) -> sp.csr_matrix:
    """``matrix`` with ``n_identity`` identity columns appended, one per row ``< n_identity``.

    The first ``n_identity`` rows are the entities the model was trained on; each gets its
    own column after the feature columns. Later rows (entities added after training) get
    none, so they are represented by their side features alone.
    """
    n_rows = matrix.shape[0]
    if not 0 <= n_identity <= n_rows:
        raise DataError(f"{n_identity} identity columns for {n_rows} rows")
    identity = sp.csr_matrix(
        (np.ones(n_identity, np.float32), (np.arange(n_identity), np.arange(n_identity))),
        shape=(n_rows, n_identity),
    )
    return sp.hstack([matrix, identity], format="csr", dtype=np.float32)


#: The column of :func:`history_features`.
HISTORY_COLUMN = "history"


def history_features(rows: np.ndarray, items: np.ndarray, user_ids: Iterable) -> Features:
    """Users' histories as side features: one multi-valued column, :data:`HISTORY_COLUMN`,
    holding the indices of each user's items, so that a user's vector includes the mean of
    learned embeddings of the items they liked (the asymmetric-MF / FISM idea).

    Item *indices*, not raw ids, make the features' vocabulary, and so the model trained on
    them, independent of how the caller spells its ids.

    Parameters
    ----------
    rows, items : numpy.ndarray of int
        One entry per (user, item) of the histories: the user's position in ``user_ids``
        (ascending) and the item's index.
    user_ids : iterable
        Raw ids of the users, the table's index (a user without entries has no feature).
    """
    index = pd.Index(list(user_ids))
    bounds = np.searchsorted(rows, np.arange(1, len(index)))
    cells = np.split(np.asarray(items, dtype=np.int64), bounds)
    table = pd.DataFrame({HISTORY_COLUMN: pd.Series(cells, index=index, dtype=object)})
    return Features(table, multi_valued={HISTORY_COLUMN: ""})


def matrix_history_features(seen: sp.csr_matrix, user_ids: Iterable) -> Features:
    """:func:`history_features` of the users of ``seen`` (users x items, one row per id of
    ``user_ids``): each user's items are the columns of their row."""
    rows = np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr))
    return history_features(rows, seen.indices, user_ids)


def history_encoder(seen: sp.csr_matrix) -> FeatureEncoder:
    """The encoder that ``FeatureEncoder().fit(matrix_history_features(seen, ids))`` learns:
    one feature per item with a training positive, in the encoder's (string) order, built
    from the item indices rather than one string per positive."""
    items = np.flatnonzero(np.bincount(seen.indices, minlength=seen.shape[1]))
    names = np.char.add(f"{HISTORY_COLUMN}=", items.astype(str))
    return FeatureEncoder.from_dict(
        {
            "spec": {"categorical": [], "multi_valued": {HISTORY_COLUMN: ""}, "numeric": {}},
            "feature_names": np.sort(names).tolist(),
            "bucket_edges": {},
        }
    )


#: Each history encoder's item index per column, parsed from its feature names once: a new
#: user's request would otherwise parse a name per item of the catalogue (12 ms at 41k).
_HISTORY_ITEMS: weakref.WeakKeyDictionary[FeatureEncoder, tuple[list, np.ndarray]] = (
    weakref.WeakKeyDictionary()
)


def _history_items(encoder: FeatureEncoder) -> np.ndarray:
    """The item index of each of ``encoder``'s columns (cached while its names stand)."""
    cached = _HISTORY_ITEMS.get(encoder)
    if cached is not None and cached[0] is encoder.feature_names_:
        return cached[1]
    prefix = f"{HISTORY_COLUMN}="
    names = np.asarray(encoder.feature_names_, dtype=str)
    if encoder.spec.get("multi_valued") != {HISTORY_COLUMN: ""} or not bool(
        np.char.startswith(names, prefix).all()
    ):
        raise DataError("the user features are not histories of item indices")
    items = np.char.replace(names, prefix, "").astype(np.int64)
    _HISTORY_ITEMS[encoder] = (encoder.feature_names_, items)
    return items


def history_rows(encoder: FeatureEncoder, seen: sp.csr_matrix) -> sp.csr_matrix:
    """What ``encoder.transform`` makes of the histories of ``seen`` (users x items, one
    row per user): each user's items among the encoder's features, the row summing to
    one; items the encoder never saw are left out. Equal to the transform of
    :func:`matrix_history_features`, without its one string per positive.

    Raises
    ------
    DataError
        If ``encoder`` does not encode histories (:func:`history_features`).
    """
    items = _history_items(encoder)
    n_items = max(seen.shape[1], int(items.max()) + 1 if len(items) else 0)
    column_of = np.full(n_items, -1, dtype=np.int64)
    column_of[items] = np.arange(len(items))
    columns = column_of[seen.indices]
    rows = np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr))
    keep = columns >= 0
    return _mean_rows(rows[keep], columns[keep], (seen.shape[0], len(items)))


def _mean_rows(rows: np.ndarray, columns: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """The float32 CSR matrix with a cell at each (row, column), a cell listed twice counted
    once, each non-empty row summing to one: every encoded feature matrix."""
    matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, columns)), shape=shape)
    matrix.sum_duplicates()
    matrix.data[:] = 1.0  # a value repeated in one cell counts once
    counts = np.diff(matrix.indptr)
    matrix.data /= np.repeat(counts, counts).astype(np.float32)
    return matrix
