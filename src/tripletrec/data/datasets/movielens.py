"""Readers of MovieLens 100K (``ml-100k``; not bundled: the GroupLens terms forbid
redistribution)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from tripletrec.data._checks import numeric_column
from tripletrec.data.interactions import Interactions
from tripletrec.exceptions import DataError, first_line

#: The 19 genre flags of ``u.item``, in file order (the names of ``u.genre``).
MOVIELENS_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


def load_movielens_100k(path: str | Path) -> Interactions:
    """MovieLens 100K ratings from an unzipped ``ml-100k`` folder.

    Parameters
    ----------
    path : str or Path
        The folder holding ``u.data`` and ``u.item`` (or the ``u.data`` file itself).

    Returns
    -------
    Interactions
        Ratings 1-5 and Unix timestamps in ``u.data`` line order. ``item_metadata`` is
        indexed by movie id with ``name`` (the title), ``release_date``, ``imdb_url`` and
        ``genres`` (the set genre flags joined with ``|``).
    """
    folder = _movielens_folder(path)
    source = folder / "u.data"
    ratings = _read_fields(
        source, "\t", ("user_id", "item_id", "rating", "timestamp"), encoding="utf-8"
    )
    data = Interactions.from_dataframe(
        ratings, rating_col="rating", timestamp_col="timestamp", source=str(source)
    )
    items = _movielens_items(folder / "u.item")
    return replace(data, item_metadata=items.reindex(data.item_map.ids))


def load_movielens_100k_users(path: str | Path) -> pd.DataFrame:
    """MovieLens 100K user attributes from ``u.user``.

    Parameters
    ----------
    path : str or Path
        The ``ml-100k`` folder (or the ``u.data`` file in it).

    Returns
    -------
    pandas.DataFrame
        Indexed by user id, with ``age``, ``gender``, ``occupation`` and ``zip_code``
        (text: some codes are not numeric).
    """
    source = _movielens_folder(path) / "u.user"
    users = _read_fields(
        source,
        "|",
        ("user_id", "age", "gender", "occupation", "zip_code"),
        encoding="latin-1",
        dtype={3: str, 4: str},
    )
    for col in ("user_id", "age"):
        users[col] = numeric_column(users[col], col, str(source)).astype(np.int64)
    return users.set_index("user_id")


def _movielens_folder(path: str | Path) -> Path:
    folder = Path(path)
    if folder.is_file() and folder.name == "u.data":
        folder = folder.parent
    if not folder.is_dir():
        raise DataError(
            f"{folder}: no such folder; MovieLens 100K needs the unzipped ml-100k folder "
            "holding u.data, u.item and u.user"
        )
    return folder


def _read_fields(
    path: Path,
    sep: str,
    names: tuple[str, ...],
    *,
    encoding: str,
    dtype: dict | None = None,
) -> pd.DataFrame:
    """A headerless delimited file that must have exactly ``len(names)`` fields a line."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        df = pd.read_csv(path, sep=sep, header=None, encoding=encoding, dtype=dtype)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        reason = first_line(exc)
        raise DataError(f"{path}: cannot read as {sep!r}-separated text: {reason}") from exc
    if df.shape[1] != len(names):
        raise DataError(
            f"{path}: expected {len(names)} {sep!r}-separated fields a line "
            f"({', '.join(names)}), found {df.shape[1]}"
        )
    df.columns = list(names)
    return df


def _movielens_items(path: Path) -> pd.DataFrame:
    fields = ("item_id", "name", "release_date", "video_release_date", "imdb_url")
    items = _read_fields(
        path,
        "|",
        fields + MOVIELENS_GENRES,
        encoding="latin-1",
        dtype={i: str for i in range(1, 5)},
    )
    items["item_id"] = numeric_column(items["item_id"], "item_id", str(path)).astype(np.int64)
    flags = items[list(MOVIELENS_GENRES)].to_numpy() == 1
    labels = np.array([g + "|" for g in MOVIELENS_GENRES], dtype=object)
    # Summing an object array concatenates the strings, row by row in C.
    genres = pd.Series(np.where(flags, labels, "").sum(axis=1), index=items.index)
    return pd.DataFrame(
        {
            "name": items["name"].to_numpy(),
            "release_date": pd.to_datetime(
                items["release_date"], format="%d-%b-%Y", errors="coerce"
            ).to_numpy(),
            "imdb_url": items["imdb_url"].to_numpy(),
            "genres": genres.str.rstrip("|").to_numpy(),
        },
        index=pd.Index(items["item_id"].to_numpy(), name="item_id"),
    )
