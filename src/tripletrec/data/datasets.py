"""Ready-made datasets: the bundled anime ratings, and readers for public rating files.

The package ships a 5,000-user random subsample of the Kaggle "Anime Recommendations
Database" (CooperUnion, CC0; subsample by CaseRecommender) as three Parquet tables under
``tripletrec/data_files/anime-5k`` (built by ``scripts/build_bundled_data.py``). Three
datasets are cut from it:

``anime-tv`` (the default)
    The reference notebook's recipe scaled to the subsample: popularity is the number of
    rows per anime in the watch history (rated or not); keep the TV anime with popularity
    above 340 (= 5,000 x 5,000 / 73,515, the notebook's threshold scaled to 5,000 users)
    and their 1-10 ratings, in file order. 293 anime, 4,610 users, 163,416 ratings;
    114,512 of them are above 7.
``anime-5k``
    Every rating of the subsample, all anime types: 419,943 ratings.
``anime-5k-history``
    Every anime on every user's list, rated or not: 520,609 rows of implicit feedback. It
    has no ratings (``ratings`` is None) and every row is a positive.

MovieLens 100K is not bundled, because the GroupLens terms forbid redistribution; pass
the folder of an unzipped ``ml-100k`` to ``load_dataset("movielens-100k", path=...)`` or
to :func:`load_movielens_100k`. :func:`load_kaggle_anime` applies the notebook's recipe to
the full Kaggle ``anime.csv`` and ``rating.csv`` when you have them.
"""

from __future__ import annotations

import html
import json
import zipfile
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import IO, NamedTuple

import numpy as np
import pandas as pd

from tripletrec.data.features import Features
from tripletrec.data.interactions import DuplicatePolicy, Interactions, _numeric_column, _read_table
from tripletrec.exceptions import DataError, first_line

__all__ = [
    "DATASETS",
    "MOVIELENS_GENRES",
    "AnimeTables",
    "DatasetInfo",
    "anime_recipe",
    "dataset_info",
    "list_datasets",
    "load_anime_5k_tables",
    "load_dataset",
    "load_kaggle_anime",
    "load_movielens_100k",
    "load_movielens_100k_users",
    "read_anime_5k_zip",
]

#: Folder of the bundled anime-5k tables inside the installed package.
BUNDLED_ANIME_5K = Path(__file__).resolve().parents[1] / "data_files" / "anime-5k"

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

#: The 19 genre flags of ``u.item``, in file order (the names of ``u.genre``).
MOVIELENS_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip

_ANIME_LICENSE = (
    "CC0 1.0 (Kaggle 'Anime Recommendations Database', CooperUnion; "
    "5,000-user subsample by CaseRecommender)"
)
_MOVIELENS_LICENSE = (
    "GroupLens research-only terms: no redistribution, no commercial use (so not bundled)"
)


# ---------------------------------------------------------------------- registry
@dataclass(frozen=True)
class DatasetInfo:
    """What a named dataset is, and which ratings count as positives.

    Attributes
    ----------
    name : str
        The name :func:`load_dataset` takes.
    description : str
        One line for listings.
    license : str
        Terms of use of the data.
    positive_threshold : float or None
        Suggested positive rule: ``rating > positive_threshold`` (or ``>=`` when
        ``inclusive``). None means the data is implicit and every row is a positive.
    inclusive : bool
        Whether the threshold itself counts as positive.
    bundled : bool
        Whether the data ships with the package (otherwise ``path=`` is required).
    n_users, n_items, n_rows : int or None
        Size of the loaded data, checked by the test suite.
    """

    name: str
    description: str
    license: str
    positive_threshold: float | None
    inclusive: bool
    bundled: bool
    n_users: int | None = None
    n_items: int | None = None
    n_rows: int | None = None

    def positives(self, interactions: Interactions) -> Interactions:
        """Apply this dataset's positive rule (all rows when it has no threshold)."""
        if self.positive_threshold is None:
            return interactions
        return interactions.positives(self.positive_threshold, inclusive=self.inclusive)

    def to_dict(self) -> dict:
        """The fields as a plain dict, plus a readable ``positive_rule``."""
        info = asdict(self)
        if self.positive_threshold is None:
            info["positive_rule"] = "every row"
        else:
            op = ">=" if self.inclusive else ">"
            info["positive_rule"] = f"rating {op} {self.positive_threshold:g}"
        return info


#: Every named dataset, by name.
DATASETS: Mapping[str, DatasetInfo] = MappingProxyType(
    {
        info.name: info
        for info in (
            DatasetInfo(
                name="anime-tv",
                description=(
                    "Anime 5k subsample, TV anime with more than 340 list entries, "
                    "ratings 1-10 (bundled; the default)"
                ),
                license=_ANIME_LICENSE,
                positive_threshold=7.0,
                inclusive=False,
                bundled=True,
                n_users=4_610,
                n_items=293,
                n_rows=163_416,
            ),
            DatasetInfo(
                name="anime-5k",
                description="Anime 5k subsample, every rating 1-10, all anime types (bundled)",
                license=_ANIME_LICENSE,
                positive_threshold=7.0,
                inclusive=False,
                bundled=True,
                n_users=4_714,
                n_items=7_157,
                n_rows=419_943,
            ),
            DatasetInfo(
                name="anime-5k-history",
                description=(
                    "Anime 5k subsample, every anime on a user's list, rated or not; "
                    "implicit, no ratings (bundled)"
                ),
                license=_ANIME_LICENSE,
                positive_threshold=None,
                inclusive=False,
                bundled=True,
                n_users=5_000,
                n_items=7_390,
                n_rows=520_609,
            ),
            DatasetInfo(
                name="movielens-100k",
                description="MovieLens 100K ratings 1-5 (not bundled: pass path= to ml-100k)",
                license=_MOVIELENS_LICENSE,
                positive_threshold=4.0,
                inclusive=True,
                bundled=False,
                n_users=943,
                n_items=1_682,
                n_rows=100_000,
            ),
        )
    }
)


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry of ``name``; :class:`DataError` naming the choices if unknown."""
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise DataError(
            f"unknown dataset {name!r}; choose one of {', '.join(map(repr, DATASETS))}"
        ) from None


def list_datasets() -> list[dict]:
    """Every named dataset as a dict (name, description, sizes, license, positive rule)."""
    return [info.to_dict() for info in DATASETS.values()]


def load_dataset(name: str = "anime-tv", *, path: str | Path | None = None) -> Interactions:
    """Load a named dataset.

    Parameters
    ----------
    name : str, default "anime-tv"
        One of the names in :data:`DATASETS` (see :func:`list_datasets`).
    path : str or Path, optional
        For ``movielens-100k`` (required): the ``ml-100k`` folder holding ``u.data`` and
        ``u.item``. For the anime datasets (optional): ``anime-5k.zip`` as published, or a
        folder of tables built by ``scripts/build_bundled_data.py``, instead of the
        bundled copy.

    Returns
    -------
    Interactions
        Raw ids are the dataset's own ids; ``item_metadata`` is indexed by raw item id, in
        item-index order, with a ``name`` column.
    """
    info = dataset_info(name)
    return _LOADERS[info.name](path)


# ---------------------------------------------------------------------- anime tables
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
                ratings = _read_tsv(f, f"{path}:anime_ratings.dat")
            with open_member("anime_history.dat") as f:
                history = _read_tsv(f, f"{path}:anime_history.dat")
            with open_member("anime_info.dat") as f:
                info = _read_tsv(f, f"{path}:anime_info.dat", text=True)
    except zipfile.BadZipFile as exc:
        raise DataError(f"{path}: not a readable zip file: {exc}") from exc

    feedback = {"User_ID": "user_id", "Anime_ID": "item_id", "Feedback": "rating"}
    ratings = _rename(ratings, feedback, f"{path}:anime_ratings.dat")
    history = _rename(history, feedback, f"{path}:anime_history.dat")
    items = _rename(
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
        _clean_feedback(ratings, ANIME_COLUMNS["ratings"], f"{path}:anime_ratings.dat"),
        _clean_feedback(history, ANIME_COLUMNS["history"], f"{path}:anime_history.dat"),
        _clean_items(items, f"{path}:anime_info.dat"),
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
        table = _read_table(folder / filename, "parquet")
        source = str(folder / filename)
        _require_columns(table, ANIME_COLUMNS[key], source)
        if key in expected_rows and len(table) != expected_rows[key]:
            raise DataError(
                f"{source}: {len(table)} rows but manifest.json says {expected_rows[key]}; "
                "the file is damaged or stale: rebuild it with scripts/build_bundled_data.py"
            )
        tables[key] = table
    sources = {key: str(folder / filename) for key, filename in ANIME_5K_FILES.items()}
    return AnimeTables(
        _clean_feedback(tables["ratings"], ANIME_COLUMNS["ratings"], sources["ratings"]),
        _clean_feedback(tables["history"], ANIME_COLUMNS["history"], sources["history"]),
        _clean_items(tables["items"], sources["items"]),
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
    _require_columns(ratings, ("user_id", "item_id", "rating"), f"{source} (ratings)")
    _require_columns(
        items, ("item_id", "type") if item_type is not None else ("item_id",), f"{source} (items)"
    )
    if history is not None:
        _require_columns(history, ("item_id",), f"{source} (history)")
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

    keep = _numeric_column(ratings["rating"], "rating", f"{source} (ratings)") > -1
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


def load_kaggle_anime(
    anime_csv: str | Path,
    rating_csv: str | Path,
    *,
    min_popularity: int | None = 5000,
    max_user_id: int | None = 10000,
    item_type: str | Collection[str] | None = "TV",
    duplicates: DuplicatePolicy = "error",
) -> Interactions:
    """The reference notebook's subset of the full Kaggle anime data.

    Inner-joins ``rating.csv`` with ``anime.csv`` on ``anime_id`` (keeping ``rating.csv``
    row order), counts popularity as rows per anime in the joined table *including* the
    ``-1`` ("watched, not rated") rows, keeps ``type == item_type`` and popularity above
    ``min_popularity``, then keeps ``rating > -1`` and ``user_id < max_user_id``. On the
    full data the defaults should give 331,474 ratings, 9,220 users and 303 anime (the
    notebook's counts; not checked here, as the full file is not available to the tests).

    Parameters
    ----------
    anime_csv : str or Path
        Kaggle ``anime.csv`` (``anime_id,name,genre,type,episodes,rating,members``).
    rating_csv : str or Path
        Kaggle ``rating.csv`` (header ``user_id,anime_id,rating``), or the same columns as
        a ``.parquet`` file.
    min_popularity : int or None, default 5000
        Keep anime with strictly more joined rows than this; None keeps all.
    max_user_id : int or None, default 10000
        Keep users whose id is strictly below this; None keeps all.
    item_type : str or collection of str or None, default "TV"
        Anime type(s) to keep; None keeps every type.
    duplicates : {"error", "first", "last"}, default "error"
        What to do with repeated (user, anime) pairs among the kept rows.

    Returns
    -------
    Interactions
        Raw ids are the Kaggle ``user_id`` and ``anime_id``; ``item_metadata`` holds the
        ``anime.csv`` columns (its ``rating`` as ``mean_rating``) and ``popularity``.
    """
    anime = _read_table(anime_csv, "csv")
    _require_columns(anime, ("anime_id", "name", "type"), str(anime_csv))
    items = _clean_items(
        anime.rename(columns={"anime_id": "item_id", "rating": "mean_rating"}), str(anime_csv)
    )
    suffix = Path(rating_csv).suffix.lower()
    ratings = _read_table(rating_csv, "parquet" if suffix in (".parquet", ".pq") else "csv")
    _require_columns(ratings, ("user_id", "anime_id", "rating"), str(rating_csv))
    ratings = ratings.rename(columns={"anime_id": "item_id"})

    # anime_id is unique in anime.csv, so the inner join is a row filter on rating.csv.
    joined = ratings.loc[ratings["item_id"].isin(items["item_id"]).to_numpy()]
    if len(joined) == 0:
        raise DataError(f"{rating_csv}: no anime_id of it appears in {anime_csv}")
    rated = joined
    if max_user_id is not None:
        user_ids = _numeric_column(joined["user_id"], "user_id", str(rating_csv))
        rated = joined.loc[user_ids < max_user_id]
        if len(rated) == 0:
            raise DataError(
                f"{rating_csv}: no rows with user_id < {max_user_id} "
                f"(user ids range from {user_ids.min():g} to {user_ids.max():g})"
            )
    return anime_recipe(
        rated,
        joined,
        items,
        item_type=item_type,
        min_popularity=min_popularity,
        duplicates=duplicates,
        source=str(rating_csv),
    )


# ---------------------------------------------------------------------- movielens
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
        users[col] = _numeric_column(users[col], col, str(source)).astype(np.int64)
    return users.set_index("user_id")


# ---------------------------------------------------------------------- helpers
def _load_anime_tv(path: str | Path | None) -> Interactions:
    tables = load_anime_5k_tables(path)
    return anime_recipe(*tables, item_type="TV", min_popularity=340, source="anime-tv")


def _load_anime_5k(path: str | Path | None) -> Interactions:
    tables = load_anime_5k_tables(path)
    return anime_recipe(*tables, item_type=None, min_popularity=None, source="anime-5k")


def _load_anime_5k_history(path: str | Path | None) -> Interactions:
    tables = load_anime_5k_tables(path)
    data = Interactions.from_dataframe(tables.history, source="anime-5k-history")
    popularity = tables.history["item_id"].value_counts()
    metadata = tables.items.set_index("item_id")
    metadata = metadata.assign(
        popularity=popularity.reindex(metadata.index, fill_value=0).to_numpy(np.int64)
    )
    return replace(data, item_metadata=metadata.reindex(data.item_map.ids))


def _load_movielens_100k(path: str | Path | None) -> Interactions:
    if path is None:
        raise DataError(
            "movielens-100k is not bundled (the GroupLens terms forbid redistribution); "
            "pass path= to an unzipped ml-100k folder holding u.data and u.item"
        )
    return load_movielens_100k(path)


_LOADERS: dict[str, Callable[[str | Path | None], Interactions]] = {
    "anime-tv": _load_anime_tv,
    "anime-5k": _load_anime_5k,
    "anime-5k-history": _load_anime_5k_history,
    "movielens-100k": _load_movielens_100k,
}


def _require_columns(df: pd.DataFrame, columns: Collection[str], source: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(map(repr, missing))}; "
            f"columns are {', '.join(map(repr, map(str, df.columns)))}"
        )


def _rename(df: pd.DataFrame, names: dict[str, str], source: str) -> pd.DataFrame:
    _require_columns(df, names, source)
    return df[list(names)].rename(columns=names)


def _read_tsv(handle: IO[bytes], source: str, *, text: bool = False) -> pd.DataFrame:
    try:
        if text:
            # Read every field as text so a name such as "NA" stays a name.
            return pd.read_csv(handle, sep="\t", dtype=str, keep_default_na=False)
        return pd.read_csv(handle, sep="\t")
    except (ValueError, OSError, pd.errors.ParserError, zipfile.BadZipFile) as exc:
        raise DataError(f"{source}: cannot read as tab-separated text: {exc}") from exc


def _clean_feedback(df: pd.DataFrame, columns: tuple[str, ...], source: str) -> pd.DataFrame:
    """Integer ids (and ratings), checked, as int64 in memory whatever the storage type."""
    out = {}
    for col in columns:
        values = _numeric_column(df[col], col, source)
        if not np.array_equal(values, np.round(values)):
            raise DataError(f"{source}: column {col!r} must hold whole numbers")
        out[col] = values.astype(np.int64)
    return pd.DataFrame(out)


def _clean_items(items: pd.DataFrame, source: str) -> pd.DataFrame:
    """Item table with typed columns and HTML entities in names decoded."""
    items = items.copy()
    items["item_id"] = _numeric_column(items["item_id"], "item_id", source).astype(np.int64)
    if not items["item_id"].is_unique:
        dup = items["item_id"][items["item_id"].duplicated()].iloc[0]
        raise DataError(f"{source}: item id {dup} appears more than once")
    names = items["name"].astype(str)
    # html.unescape has no vectorised form; only the few names with an entity go through it.
    has_entity = names.str.contains("&", regex=False).to_numpy()
    names[has_entity] = names[has_entity].map(html.unescape)
    items["name"] = names
    for col in ("genre", "type"):
        if col in items.columns:
            # Empty text fields are missing values (they are read as text to protect names).
            items[col] = items[col].replace("", np.nan)
    if "episodes" in items.columns:
        # Kaggle writes "Unknown" for running series.
        items["episodes"] = pd.to_numeric(items["episodes"], errors="coerce").astype("Int32")
    if "mean_rating" in items.columns:
        items["mean_rating"] = pd.to_numeric(items["mean_rating"], errors="coerce")
    if "members" in items.columns:
        items["members"] = pd.to_numeric(items["members"], errors="coerce").astype("Int64")
    return items.reset_index(drop=True)


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
    items["item_id"] = _numeric_column(items["item_id"], "item_id", str(path)).astype(np.int64)
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


# ---------------------------------------------------------------------- side features
def dataset_features(
    name: str, data: Interactions, *, path: str | Path | None = None
) -> tuple[Features | None, Features | None]:
    """The built-in user and item side features of a named dataset.

    * ``anime-tv``, ``anime-5k``, ``anime-5k-history`` items: ``genre`` (multi-valued),
      ``type``, ``episodes`` (4 quantile buckets) and ``members`` (5 buckets, the
      community size on MyAnimeList). No user features.
    * ``movielens-100k`` items: ``genres`` (multi-valued) and the release year (4
      buckets); users (from ``u.user`` in ``path``): ``age`` (5 buckets), ``gender`` and
      ``occupation``.

    Parameters
    ----------
    name : str
        A dataset name, as given to :func:`load_dataset`.
    data : Interactions
        The loaded dataset (its ``item_metadata`` holds the item attributes).
    path : str or Path, optional
        The MovieLens folder (for ``u.user``).

    Returns
    -------
    (Features or None, Features or None)
        User features and item features.
    """
    metadata = data.item_metadata
    if metadata is None:
        raise DataError(f"{name}: the data has no item metadata to build features from")
    if name.startswith("anime"):
        items = Features(
            metadata, categorical=["type"], multi_valued={"genre": ","},
            numeric={"episodes": 4, "members": 5},
        )  # fmt: skip
        return None, items
    if name == "movielens-100k":
        table = pd.DataFrame(
            {"genres": metadata["genres"], "year": metadata["release_date"].dt.year},
            index=metadata.index,
        )
        items = Features(table, multi_valued={"genres": "|"}, numeric={"year": 4})
        users = None
        if path is not None:
            users = Features(
                load_movielens_100k_users(path), categorical=["gender", "occupation"],
                numeric={"age": 5},
            )  # fmt: skip
        return users, items
    raise DataError(f"no built-in features for dataset {name!r}")
