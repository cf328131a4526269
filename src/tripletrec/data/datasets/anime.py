"""The anime tables (bundled anime-5k, or the published zip) and the recipe that cuts
interactions from them."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Collection
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import IO, NamedTuple

import numpy as np
import pandas as pd

from tripletrec.data._checks import check_columns, numeric_column, read_table
from tripletrec.data.datasets._tables import (
    clean_feedback,
    clean_items,
    read_tsv,
    select_renamed,
)
from tripletrec.data.interactions import DuplicatePolicy, Interactions
from tripletrec.exceptions import DataError

#: Folder of the bundled anime-5k tables inside the installed package.
BUNDLED_ANIME_5K = Path(__file__).resolve().parents[2] / "data_files" / "anime-5k"

#: File name of each bundled table.
ANIME_5K_FILES = {
    "ratings": "ratings.parquet",
    "history": "history.parquet",
    "items": "items.parquet",
}

#: Columns of each anime table, in the order the bundled files store them.
ANIME_COLUMNS = {
    "ratings": ("user_id", "item_id", "rating"),
    "history": ("user_id", "item_id"),
    "items": ("item_id", "name", "genre", "type", "episodes", "mean_rating", "members"),
}


class AnimeTables(NamedTuple):
    """The three anime-5k tables, with the columns of :data:`ANIME_COLUMNS`."""

    ratings: pd.DataFrame
    history: pd.DataFrame
    items: pd.DataFrame


def read_anime_5k_zip(path: str | Path) -> AnimeTables:
    """Read ``anime-5k.zip`` as published (CaseRecommender's ``anime.zip``).

    The zip holds tab-separated ``anime_ratings.dat`` and ``anime_history.dat``
    (``User_ID, Anime_ID, Feedback``) and ``anime_info.dat``
    (``anime_ids, name, genre, type, episodes, rating, members``). Rows keep file order,
    HTML entities in names are decoded (``Gintama&#039;`` becomes ``Gintama'``) and the
    anime's mean rating is renamed ``mean_rating``.

    Parameters
    ----------
    path : str or Path
        The zip file.

    Returns
    -------
    AnimeTables
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file (expected the anime-5k zip)")
    try:
        with zipfile.ZipFile(path) as archive:
            members = {PurePosixPath(n).name: n for n in archive.namelist()}

            def open_member(basename: str) -> IO[bytes]:
                if basename not in members:
                    raise DataError(
                        f"{path}: no {basename} in the zip (it holds "
                        f"{', '.join(sorted(members)) or 'nothing'})"
                    )
                return archive.open(members[basename])

            with open_member("anime_ratings.dat") as f:
                ratings = read_tsv(f, f"{path}:anime_ratings.dat")
            with open_member("anime_history.dat") as f:
                history = read_tsv(f, f"{path}:anime_history.dat")
            with open_member("anime_info.dat") as f:
                info = read_tsv(f, f"{path}:anime_info.dat", text=True)
    except zipfile.BadZipFile as exc:
        raise DataError(f"{path}: not a readable zip file: {exc}") from exc

    feedback = {"User_ID": "user_id", "Anime_ID": "item_id", "Feedback": "rating"}
    ratings = select_renamed(ratings, feedback, f"{path}:anime_ratings.dat")
    history = select_renamed(history, feedback, f"{path}:anime_history.dat")
    items = select_renamed(
        info,
        {
            "anime_ids": "item_id",
            "name": "name",
            "genre": "genre",
            "type": "type",
            "episodes": "episodes",
            "rating": "mean_rating",
            "members": "members",
        },
        f"{path}:anime_info.dat",
    )
    return AnimeTables(
        clean_feedback(ratings, ANIME_COLUMNS["ratings"], f"{path}:anime_ratings.dat"),
        clean_feedback(history, ANIME_COLUMNS["history"], f"{path}:anime_history.dat"),
        clean_items(items, f"{path}:anime_info.dat"),
    )


def load_anime_5k_tables(path: str | Path | None = None) -> AnimeTables:
    """The anime-5k tables: bundled, or from ``anime-5k.zip``, or from a built folder.

    Use them with :func:`anime_recipe` to try other cuts of the data, for example
    ``anime_recipe(*load_anime_5k_tables(), item_type="Movie", min_popularity=100)``.

    Parameters
    ----------
    path : str or Path, optional
        None for the bundled copy; a ``.zip`` for the published archive; or a folder with
        ``ratings.parquet``, ``history.parquet`` and ``items.parquet``.

    Returns
    -------
    AnimeTables
    """
    if path is not None and Path(path).suffix.lower() == ".zip":
        return read_anime_5k_zip(path)
    folder = BUNDLED_ANIME_5K if path is None else Path(path)
    if not folder.is_dir():
        if path is None:
            raise DataError(
                f"{folder}: the bundled anime-5k data is missing; reinstall tripletrec or "
                "rebuild it with scripts/build_bundled_data.py"
            )
        raise DataError(f"{folder}: no such folder (expected anime-5k tables or a .zip)")
    expected_rows = _manifest_rows(folder)
    tables = {}
    for key, filename in ANIME_5K_FILES.items():
        table = read_table(folder / filename, "parquet")
        source = str(folder / filename)
        check_columns(ANIME_COLUMNS[key], table.columns, source)
        if key in expected_rows and len(table) != expected_rows[key]:
            raise DataError(
                f"{source}: {len(table)} rows but manifest.json says {expected_rows[key]}; "
                "the file is damaged or stale: rebuild it with scripts/build_bundled_data.py"
            )
        tables[key] = table
    sources = {key: str(folder / filename) for key, filename in ANIME_5K_FILES.items()}
    return AnimeTables(
        clean_feedback(tables["ratings"], ANIME_COLUMNS["ratings"], sources["ratings"]),
        clean_feedback(tables["history"], ANIME_COLUMNS["history"], sources["history"]),
        clean_items(tables["items"], sources["items"]),
    )


def anime_recipe(
    ratings: pd.DataFrame,
    history: pd.DataFrame | None,
    items: pd.DataFrame,
    *,
    item_type: str | Collection[str] | None = "TV",
    min_popularity: int | None = 340,
    duplicates: DuplicatePolicy = "error",
    source: str = "anime recipe",
) -> Interactions:
    """Cut interactions from anime tables with the reference notebook's recipe.

    Popularity is the number of ``history`` rows per anime (rated or not). The result
    keeps, in ``ratings`` row order, the ratings above -1 (``-1`` marks "watched, not
    rated" in the Kaggle files) of the anime whose ``type`` is ``item_type`` and whose
    popularity is above ``min_popularity``. The id maps are in order of first appearance
    in the kept rows.

    Parameters
    ----------
    ratings : pandas.DataFrame
        Columns ``user_id``, ``item_id``, ``rating``.
    history : pandas.DataFrame or None
        Column ``item_id``: the rows popularity is counted on. May be None only when
        ``min_popularity`` is None.
    items : pandas.DataFrame
        Column ``item_id`` (unique), ``type`` when ``item_type`` is given, and any other
        attributes (``name``, ...); becomes ``item_metadata``, with a ``popularity``
        column added when ``history`` is given.
    item_type : str or collection of str or None, default "TV"
        Anime type(s) to keep; None keeps every type.
    min_popularity : int or None, default 340
        Keep anime with strictly more history rows than this; None keeps all.
    duplicates : {"error", "first", "last"}, default "error"
        Passed to :meth:`Interactions.from_dataframe`.
    source : str
        Where the tables came from, for error messages.

    Returns
    -------
    Interactions
    """
    if min_popularity is not None and history is None:
        raise DataError(f"{source}: min_popularity needs the history table to count on")
    check_columns(("user_id", "item_id", "rating"), ratings.columns, f"{source} (ratings)")
    item_columns = ("item_id", "type") if item_type is not None else ("item_id",)
    check_columns(item_columns, items.columns, f"{source} (items)")
    if history is not None:
        check_columns(("item_id",), history.columns, f"{source} (history)")
    metadata = items.set_index("item_id")
    if not metadata.index.is_unique:
        dup = metadata.index[metadata.index.duplicated()][0]
        dup = dup.item() if isinstance(dup, np.generic) else dup
        raise DataError(f"{source} (items): item_id {dup!r} appears more than once")

    # Decide per anime first, then filter the rows with one isin: the tables can be the
    # full Kaggle data (7.8M rows).
    kept_items = metadata.index
    if item_type is not None:
        types = {item_type} if isinstance(item_type, str) else set(item_type)
        kept_items = kept_items[metadata["type"].isin(types).to_numpy()]
    popularity = None
    if history is not None:
        popularity = history["item_id"].value_counts()
        metadata = metadata.assign(
            popularity=popularity.reindex(metadata.index, fill_value=0).to_numpy(np.int64)
        )
    if min_popularity is not None:
        kept_items = kept_items.intersection(popularity.index[popularity > min_popularity])

    keep = numeric_column(ratings["rating"], "rating", f"{source} (ratings)") > -1
    if item_type is not None or min_popularity is not None:
        keep &= ratings["item_id"].isin(kept_items).to_numpy()
    if not keep.any():
        rule = []
        if item_type is not None:
            rule.append(f"type in {sorted(types)}")
        if min_popularity is not None:
            rule.append(f"popularity > {min_popularity}")
        rule.append("rating > -1")
        raise DataError(f"{source}: no ratings left after keeping {' and '.join(rule)}")
    data = Interactions.from_dataframe(
        ratings.loc[keep], rating_col="rating", duplicates=duplicates, source=source
    )
    # Metadata rows in item-index order, so row i describes item index i.
    return replace(data, item_metadata=metadata.reindex(data.item_map.ids))


def anime_5k_history(tables: AnimeTables) -> Interactions:
    """Every row of the history table as a positive, with the items' popularity (their
    number of history rows) in ``item_metadata``: the ``anime-5k-history`` dataset."""
    data = Interactions.from_dataframe(tables.history, source="anime-5k-history")
    popularity = tables.history["item_id"].value_counts()
    metadata = tables.items.set_index("item_id")
    metadata = metadata.assign(
        popularity=popularity.reindex(metadata.index, fill_value=0).to_numpy(np.int64)
    )
    return replace(data, item_metadata=metadata.reindex(data.item_map.ids))


def _manifest_rows(folder: Path) -> dict[str, int]:
    """Row counts that ``manifest.json`` promises, by table; empty when there is none."""
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return {}
    try:
        files = json.loads(manifest.read_text(encoding="utf-8"))["files"]
        return {key: int(files[name]["rows"]) for key, name in ANIME_5K_FILES.items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{manifest}: unreadable manifest ({exc!r})") from exc
