"""The reference notebook's cut of the full Kaggle anime data (not bundled)."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from tripletrec.data._checks import check_columns, numeric_column, read_table
from tripletrec.data.datasets._tables import clean_items
from tripletrec.data.datasets.anime import anime_recipe
from tripletrec.data.interactions import DuplicatePolicy, Interactions
from tripletrec.exceptions import DataError


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
    anime = read_table(anime_csv, "csv")
    check_columns(("anime_id", "name", "type"), anime.columns, str(anime_csv))
    items = clean_items(
        anime.rename(columns={"anime_id": "item_id", "rating": "mean_rating"}), str(anime_csv)
    )
    suffix = Path(rating_csv).suffix.lower()
    ratings = read_table(rating_csv, "parquet" if suffix in (".parquet", ".pq") else "csv")
    check_columns(("user_id", "anime_id", "rating"), ratings.columns, str(rating_csv))
    ratings = ratings.rename(columns={"anime_id": "item_id"})

    # anime_id is unique in anime.csv, so the inner join is a row filter on rating.csv.
    joined = ratings.loc[ratings["item_id"].isin(items["item_id"]).to_numpy()]
    if len(joined) == 0:
        raise DataError(f"{rating_csv}: no anime_id of it appears in {anime_csv}")
    rated = joined
    if max_user_id is not None:
        user_ids = numeric_column(joined["user_id"], "user_id", str(rating_csv))
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
