"""The built-in side features of the named datasets."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tripletrec.data.datasets.movielens import load_movielens_100k_users
from tripletrec.data.features import Features
from tripletrec.data.interactions import Interactions
from tripletrec.exceptions import DataError


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
