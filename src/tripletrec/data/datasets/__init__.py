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
to :func:`load_movielens_100k`. Gowalla as split by LightGCN is not bundled either (SNAP's
research data, read from the caller's folder): ``load_dataset("gowalla", path=...)``
returns all its interactions, :func:`load_gowalla` its train, valid and test parts with
shared id maps, which the benchmark's protocol needs. :func:`load_kaggle_anime` applies
the notebook's recipe to the full Kaggle ``anime.csv`` and ``rating.csv`` when you have
them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType

from tripletrec.data.datasets.anime import (
    ANIME_5K_FILES,
    ANIME_COLUMNS,
    BUNDLED_ANIME_5K,
    AnimeTables,
    anime_5k_history,
    anime_recipe,
    load_anime_5k_tables,
    read_anime_5k_zip,
)
from tripletrec.data.datasets.features import dataset_features
from tripletrec.data.datasets.gowalla import GOWALLA_FILES, GowallaSplit, load_gowalla
from tripletrec.data.datasets.kaggle import load_kaggle_anime
from tripletrec.data.datasets.movielens import (
    MOVIELENS_GENRES,
    load_movielens_100k,
    load_movielens_100k_users,
)
from tripletrec.data.interactions import Interactions
from tripletrec.exceptions import DataError

__all__ = [
    "ANIME_5K_FILES",
    "ANIME_COLUMNS",
    "BUNDLED_ANIME_5K",
    "DATASETS",
    "GOWALLA_FILES",
    "MOVIELENS_GENRES",
    "AnimeTables",
    "DatasetInfo",
    "GowallaSplit",
    "anime_recipe",
    "dataset_features",
    "dataset_info",
    "list_datasets",
    "load_anime_5k_tables",
    "load_dataset",
    "load_gowalla",
    "load_kaggle_anime",
    "load_movielens_100k",
    "load_movielens_100k_users",
    "read_anime_5k_zip",
]

_ANIME_LICENSE = (
    "CC0 1.0 (Kaggle 'Anime Recommendations Database', CooperUnion; "
    "5,000-user subsample by CaseRecommender)"
)
_MOVIELENS_LICENSE = (
    "GroupLens research-only terms: no redistribution, no commercial use (so not bundled)"
)
_GOWALLA_LICENSE = (
    "SNAP Gowalla check-ins, free for research use: cite Cho, Myers and Leskovec (KDD 2011) "
    "and LightGCN (He et al., SIGIR 2020); not bundled"
)


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
            DatasetInfo(
                name="gowalla",
                description=(
                    "Gowalla check-ins, LightGCN's split: train + valid + test together, "
                    "implicit (not bundled: pass path= to the folder; load_gowalla for the "
                    "three parts)"
                ),
                license=_GOWALLA_LICENSE,
                positive_threshold=None,
                inclusive=False,
                bundled=False,
                n_users=29_858,
                n_items=40_981,
                n_rows=1_027_370,
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
        bundled copy. For ``gowalla`` (required): the folder holding ``train.txt``,
        ``valid.txt`` and ``test.txt``.

    Returns
    -------
    Interactions
        Raw ids are the dataset's own ids; ``item_metadata`` is indexed by raw item id, in
        item-index order, with a ``name`` column. ``gowalla`` has no metadata and no
        ratings; it returns every interaction of its three parts, which suits describing
        the data: to reproduce the published tables use :func:`load_gowalla`, fit on
        ``train_valid`` and score ``test``.
    """
    info = dataset_info(name)
    return _LOADERS[info.name](path)


# ---------------------------------------------------------------------- loaders
def _load_anime_tv(path: str | Path | None) -> Interactions:
    tables = load_anime_5k_tables(path)
    return anime_recipe(*tables, item_type="TV", min_popularity=340, source="anime-tv")


def _load_anime_5k(path: str | Path | None) -> Interactions:
    tables = load_anime_5k_tables(path)
    return anime_recipe(*tables, item_type=None, min_popularity=None, source="anime-5k")


def _load_anime_5k_history(path: str | Path | None) -> Interactions:
    return anime_5k_history(load_anime_5k_tables(path))


def _load_movielens_100k(path: str | Path | None) -> Interactions:
    if path is None:
        raise DataError(
            "movielens-100k is not bundled (the GroupLens terms forbid redistribution); "
            "pass path= to an unzipped ml-100k folder holding u.data and u.item"
        )
    return load_movielens_100k(path)


def _load_gowalla(path: str | Path | None) -> Interactions:
    if path is None:
        raise DataError(
            "gowalla is not bundled; pass path= to the folder holding train.txt, valid.txt "
            "and test.txt (LightGCN's split)"
        )
    return load_gowalla(path).all


_LOADERS: dict[str, Callable[[str | Path | None], Interactions]] = {
    "anime-tv": _load_anime_tv,
    "anime-5k": _load_anime_5k,
    "anime-5k-history": _load_anime_5k_history,
    "movielens-100k": _load_movielens_100k,
    "gowalla": _load_gowalla,
}
