"""Named datasets, the bundled anime tables, the Kaggle and MovieLens loaders."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tripletrec.data.datasets import (
    ANIME_5K_FILES,
    BUNDLED_ANIME_5K,
    DATASETS,
    anime_recipe,
    dataset_info,
    list_datasets,
    load_anime_5k_tables,
    load_dataset,
    load_kaggle_anime,
    load_movielens_100k,
    load_movielens_100k_users,
    read_anime_5k_zip,
)
from tripletrec.data.interactions import Interactions
from tripletrec.exceptions import DataError

ROOT = Path(__file__).resolve().parents[1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def bundled_tables():
    return load_anime_5k_tables()


@pytest.fixture(scope="module")
def zip_tables(anime_5k_zip):
    return read_anime_5k_zip(anime_5k_zip)


# ---------------------------------------------------------------------- registry
def test_list_datasets_describes_every_dataset():
    entries = list_datasets()
    assert [e["name"] for e in entries] == list(DATASETS)
    assert {"anime-tv", "anime-5k", "anime-5k-history", "movielens-100k", "gowalla"} <= set(
        DATASETS
    )
    for entry in entries:
        for key in ("description", "license", "positive_rule", "n_users", "n_items", "n_rows"):
            assert entry[key], (entry["name"], key)
    rules = {e["name"]: e["positive_rule"] for e in entries}
    assert rules == {
        "anime-tv": "rating > 7",
        "anime-5k": "rating > 7",
        "anime-5k-history": "every row",
        "movielens-100k": "rating >= 4",
        "gowalla": "every row",
    }
    json.dumps(entries)  # the CLI may print it as JSON


def test_registry_fields_pick_the_positive_rule(anime_tv):
    info = DATASETS["anime-tv"]
    assert (info.positive_threshold, info.inclusive, info.bundled) == (7.0, False, True)
    movielens = DATASETS["movielens-100k"]
    assert (movielens.positive_threshold, movielens.inclusive, movielens.bundled) == (
        4.0,
        True,
        False,
    )
    assert len(info.positives(anime_tv)) == 114_512


def test_unknown_dataset_names_the_choices():
    with pytest.raises(DataError, match="unknown dataset 'anime'; choose one of 'anime-tv'"):
        load_dataset("anime")
    with pytest.raises(DataError, match="unknown dataset"):
        dataset_info(None)


# ---------------------------------------------------------------------- anime-tv
def test_anime_tv_counts(anime_tv):
    info = DATASETS["anime-tv"]
    assert (anime_tv.n_items, len(anime_tv), anime_tv.n_users) == (293, 163_416, 4_610)
    assert (info.n_items, info.n_rows, info.n_users) == (293, 163_416, 4_610)
    assert len(anime_tv.positives(7)) == 114_512
    assert anime_tv.ratings.min() == 1 and anime_tv.ratings.max() == 10
    assert anime_tv.timestamps is None


def test_anime_tv_is_the_default(anime_tv):
    again = load_dataset()
    np.testing.assert_array_equal(again.users, anime_tv.users)
    assert again.item_map == anime_tv.item_map


def test_anime_tv_metadata(anime_tv):
    meta = anime_tv.item_metadata
    np.testing.assert_array_equal(meta.index.to_numpy(), anime_tv.item_map.ids)
    assert (meta["type"] == "TV").all()
    assert (meta["popularity"] > 340).all()
    names = set(meta["name"])
    assert "Fullmetal Alchemist: Brotherhood" in names
    assert "Death Note" in names
    assert not meta["name"].str.contains("&#|&amp;|&quot;").any()
    fma = meta.index[meta["name"] == "Fullmetal Alchemist: Brotherhood"][0]
    assert anime_tv.item_names(np.array([fma])).tolist() == ["Fullmetal Alchemist: Brotherhood"]


def test_anime_tv_follows_the_recipe_independently(anime_tv, bundled_tables):
    # The recipe redone with plain pandas on the raw tables.
    ratings, history, items = bundled_tables
    popularity = history.groupby("item_id").size()
    tv = items.loc[items["type"] == "TV", "item_id"]
    keep_items = set(tv) & set(popularity.index[popularity > 340])
    expected = ratings[ratings["item_id"].isin(keep_items)].reset_index(drop=True)
    got = anime_tv.to_dataframe()
    np.testing.assert_array_equal(got["user_id"], expected["user_id"])
    np.testing.assert_array_equal(got["item_id"], expected["item_id"])
    np.testing.assert_array_equal(got["rating"], expected["rating"])
    # Maps in order of first appearance in the kept rows.
    np.testing.assert_array_equal(anime_tv.user_map.ids, pd.unique(expected["user_id"]))
    np.testing.assert_array_equal(anime_tv.item_map.ids, pd.unique(expected["item_id"]))


# ---------------------------------------------------------------------- other anime cuts
def test_anime_5k_counts():
    data = load_dataset("anime-5k")
    assert (len(data), data.n_users, data.n_items) == (419_943, 4_714, 7_157)
    info = DATASETS["anime-5k"]
    assert (info.n_rows, info.n_users, info.n_items) == (419_943, 4_714, 7_157)
    assert set(data.item_metadata["type"]) == {"TV", "OVA", "Movie", "Special", "ONA", "Music"}


def test_anime_5k_history_is_implicit():
    data = load_dataset("anime-5k-history")
    assert (len(data), data.n_users, data.n_items) == (520_609, 5_000, 7_390)
    assert data.ratings is None
    info = DATASETS["anime-5k-history"]
    assert (info.n_rows, info.n_users, info.n_items) == (520_609, 5_000, 7_390)
    assert info.positives(data) is data
    assert data.item_metadata["popularity"].sum() == 520_609


def test_anime_recipe_for_movies(bundled_tables):
    movies = anime_recipe(*bundled_tables, item_type="Movie", min_popularity=100)
    assert (movies.item_metadata["type"] == "Movie").all()
    assert (movies.item_metadata["popularity"] > 100).all()
    assert "Kimi no Na wa." in set(movies.item_metadata["name"])
    both = anime_recipe(*bundled_tables, item_type=["TV", "Movie"], min_popularity=340)
    assert both.n_items > 293


def test_anime_recipe_bad_input(bundled_tables):
    ratings, history, items = bundled_tables
    with pytest.raises(DataError, match="min_popularity needs the history table"):
        anime_recipe(ratings, None, items)
    with pytest.raises(DataError, match=r"\(ratings\): missing column\(s\) 'rating'"):
        anime_recipe(ratings.drop(columns="rating"), history, items)
    with pytest.raises(DataError, match=r"\(items\): missing column\(s\) 'type'"):
        anime_recipe(ratings, history, items.drop(columns="type"))
    first = items["item_id"].iloc[0]
    with pytest.raises(DataError, match=rf"\(items\): item_id {first} appears more than once"):
        anime_recipe(ratings, history, pd.concat([items, items.iloc[[0]]]))
    with pytest.raises(DataError, match=r"no ratings left after keeping type in \['Pilot'\]"):
        anime_recipe(ratings, history, items, item_type="Pilot")


# ---------------------------------------------------------------------- bundled files
def test_bundled_files_are_small_and_listed_in_the_manifest():
    manifest = json.loads((BUNDLED_ANIME_5K / "manifest.json").read_text())
    total = 0
    for filename in ANIME_5K_FILES.values():
        path = BUNDLED_ANIME_5K / filename
        assert manifest["files"][filename]["sha256"] == sha256(path), filename
        total += path.stat().st_size
    assert total < 4 * 2**20
    rows = {name: f["rows"] for name, f in manifest["files"].items()}
    assert rows == {"ratings.parquet": 419_943, "history.parquet": 520_609, "items.parquet": 7_390}


def test_bundled_data_comes_from_the_shared_zip(anime_5k_zip, bundled_tables, zip_tables):
    manifest = json.loads((BUNDLED_ANIME_5K / "manifest.json").read_text())
    assert manifest["source"]["sha256"] == sha256(anime_5k_zip)
    for bundled, original in zip(bundled_tables, zip_tables, strict=True):
        pd.testing.assert_frame_equal(bundled, original)
    assert "Gintama'" in set(zip_tables.items["name"])


def test_anime_tv_from_the_zip_equals_bundled(anime_5k_zip, anime_tv, zip_tables):
    from_zip = load_dataset("anime-tv", path=anime_5k_zip)
    np.testing.assert_array_equal(from_zip.users, anime_tv.users)
    np.testing.assert_array_equal(from_zip.ratings, anime_tv.ratings)
    assert from_zip.user_map == anime_tv.user_map
    pd.testing.assert_frame_equal(from_zip.item_metadata, anime_tv.item_metadata)


def test_build_script_rebuilds_the_bundled_tables(anime_5k_zip, tmp_path, bundled_tables):
    spec = importlib.util.spec_from_file_location(
        "build_bundled_data", ROOT / "scripts" / "build_bundled_data.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main([str(anime_5k_zip), "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*ANIME_5K_FILES.values(), "manifest.json"]
    )  # no temporary files left behind
    for rebuilt, bundled in zip(load_anime_5k_tables(tmp_path), bundled_tables, strict=True):
        pd.testing.assert_frame_equal(rebuilt, bundled)
    assert script.main([str(tmp_path / "missing.zip"), "--out", str(tmp_path)]) == 1


def test_damaged_table_folder(tmp_path):
    for filename in [*ANIME_5K_FILES.values(), "manifest.json"]:
        shutil.copy(BUNDLED_ANIME_5K / filename, tmp_path / filename)
    ratings = tmp_path / "ratings.parquet"
    pd.read_parquet(ratings).iloc[:10].to_parquet(ratings)
    with pytest.raises(
        DataError, match=r"ratings\.parquet: 10 rows but manifest\.json says 419943"
    ):
        load_dataset("anime-tv", path=tmp_path)
    ratings.write_bytes(b"not parquet")
    with pytest.raises(DataError, match=r"ratings\.parquet: cannot read as parquet"):
        load_anime_5k_tables(tmp_path)
    ratings.unlink()
    with pytest.raises(DataError, match=r"ratings\.parquet: no such file"):
        load_anime_5k_tables(tmp_path)
    with pytest.raises(DataError, match="no such folder"):
        load_anime_5k_tables(tmp_path / "elsewhere")


def test_bad_zips(tmp_path):
    not_zip = tmp_path / "fake.zip"
    not_zip.write_text("hello")
    with pytest.raises(DataError, match=r"fake\.zip: not a readable zip file"):
        load_dataset("anime-5k", path=not_zip)
    partial = tmp_path / "partial.zip"
    with zipfile.ZipFile(partial, "w") as archive:
        archive.writestr("anime/anime_ratings.dat", "User_ID\tAnime_ID\tFeedback\n1\t1\t8\n")
    with pytest.raises(DataError, match=r"partial\.zip: no anime_history\.dat in the zip"):
        read_anime_5k_zip(partial)
    with pytest.raises(DataError, match=r"missing\.zip: no such file"):
        read_anime_5k_zip(tmp_path / "missing.zip")
    bad_rating = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad_rating, "w") as archive:
        archive.writestr("anime_ratings.dat", "User_ID\tAnime_ID\tFeedback\n1\t1\tgood\n")
        archive.writestr("anime_history.dat", "User_ID\tAnime_ID\tFeedback\n1\t1\t1\n")
        archive.writestr(
            "anime_info.dat",
            "anime_ids\tname\tgenre\ttype\tepisodes\trating\tmembers\n1\tA\tB\tTV\t1\t7\t9\n",
        )
    with pytest.raises(DataError, match=r"anime_ratings\.dat: column 'rating' must be numeric"):
        read_anime_5k_zip(bad_rating)
    short_info = tmp_path / "short.zip"
    with zipfile.ZipFile(short_info, "w") as archive:
        archive.writestr("anime_ratings.dat", "User_ID\tAnime_ID\tFeedback\n1\t1\t8\n")
        archive.writestr("anime_history.dat", "User_ID\tAnime_ID\tFeedback\n1\t1\t1\n")
        archive.writestr("anime_info.dat", "anime_ids\tname\n1\tA\n")
    with pytest.raises(DataError, match=r"anime_info\.dat: missing column\(s\) 'genre'"):
        read_anime_5k_zip(short_info)


# ---------------------------------------------------------------------- Kaggle anime
KAGGLE_ANIME_CSV = """\
anime_id,name,genre,type,episodes,rating,members
1,Alpha&#039;s,"Action, Comedy",TV,12,8.1,1000
2,Beta,Drama,TV,Unknown,7.0,500
3,Gamma,Drama,Movie,1,6.5,300
4,Delta,,TV,24,,200
5,Eps,Comedy,,1,5.0,10
6,Zeta,Comedy,TV,1,5.0,10
"""

# Comments say why each row is dropped; popularity counts every row whose anime is in
# anime.csv: anime 1 -> 4, 2 -> 4, 3 -> 1, 4 -> 2 (one of them -1), 5 -> 1, 6 -> 1.
KAGGLE_RATING_ROWS = [
    (10, 1, 8),
    (10, 2, -1),  # watched, not rated
    (11, 2, 9),
    (11, 1, -1),  # watched, not rated
    (12, 1, 5),
    (12, 3, 10),  # a Movie
    (13, 2, 7),
    (150, 1, 9),  # user id not below max_user_id (but counts for popularity)
    (13, 4, -1),  # watched, not rated (but counts for popularity)
    (14, 4, 6),
    (14, 99, 10),  # anime not in anime.csv: lost in the join
    (14, 5, 8),  # no type
    (15, 2, 3),
    (16, 6, 9),  # popularity 1
]


@pytest.fixture
def kaggle_files(tmp_path):
    anime = tmp_path / "anime.csv"
    anime.write_text(KAGGLE_ANIME_CSV)
    rating = tmp_path / "rating.csv"
    pd.DataFrame(KAGGLE_RATING_ROWS, columns=["user_id", "anime_id", "rating"]).to_csv(
        rating, index=False
    )
    return anime, rating


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_kaggle_recipe_by_hand(kaggle_files, fmt, tmp_path):
    anime, rating = kaggle_files
    if fmt == "parquet":
        pd.read_csv(rating).to_parquet(tmp_path / "rating.parquet")
        rating = tmp_path / "rating.parquet"
    data = load_kaggle_anime(anime, rating, min_popularity=1, max_user_id=100)
    # Anime 4 passes popularity > 1 only because its -1 row counts.
    assert data.to_dataframe().astype(np.int64).values.tolist() == [
        [10, 1, 8],
        [11, 2, 9],
        [12, 1, 5],
        [13, 2, 7],
        [14, 4, 6],
        [15, 2, 3],
    ]
    assert data.user_map.to_list() == [10, 11, 12, 13, 14, 15]
    assert data.item_map.to_list() == [1, 2, 4]
    meta = data.item_metadata
    assert meta["name"].tolist() == ["Alpha's", "Beta", "Delta"]
    assert meta["popularity"].tolist() == [4, 4, 2]
    assert meta["episodes"].isna().tolist() == [False, True, False]
    assert meta["mean_rating"].isna().tolist() == [False, False, True]
    assert meta["genre"].tolist()[0] == "Action, Comedy"


def test_kaggle_popularity_counts_unrated_rows_and_all_users(kaggle_files):
    anime, rating = kaggle_files
    # Counted after dropping -1 rows and user 150, anime 1 and 2 would have 2 and 3 rows.
    data = load_kaggle_anime(anime, rating, min_popularity=3, max_user_id=100)
    assert data.to_dataframe().astype(np.int64).values.tolist() == [
        [10, 1, 8],
        [11, 2, 9],
        [12, 1, 5],
        [13, 2, 7],
        [15, 2, 3],
    ]
    everyone = load_kaggle_anime(anime, rating, min_popularity=3, max_user_id=None)
    assert 150 in everyone.user_map
    movies = load_kaggle_anime(anime, rating, min_popularity=0, item_type="Movie")
    assert movies.to_dataframe().astype(np.int64).values.tolist() == [[12, 3, 10]]


def test_kaggle_bad_input(kaggle_files, tmp_path):
    anime, rating = kaggle_files
    with pytest.raises(DataError, match=r"no rows with user_id < 5 \(user ids range from 10"):
        load_kaggle_anime(anime, rating, max_user_id=5)
    with pytest.raises(DataError, match=r"no ratings left after keeping type in \['TV'\] and pop"):
        load_kaggle_anime(anime, rating, min_popularity=5000)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("user,anime_id,rating\n1,1,5\n")
    with pytest.raises(DataError, match=r"wrong\.csv: missing column\(s\) 'user_id'"):
        load_kaggle_anime(anime, wrong)
    text = tmp_path / "text.csv"
    text.write_text("user_id,anime_id,rating\n1,1,5\n2,1,ten\n")
    with pytest.raises(DataError, match=r"text\.csv \(ratings\): column 'rating' must be numeric"):
        load_kaggle_anime(anime, text, min_popularity=0)
    dup = tmp_path / "dup.csv"
    dup.write_text("user_id,anime_id,rating\n1,1,5\n1,1,6\n2,1,7\n")
    with pytest.raises(DataError, match="rows repeat a"):
        load_kaggle_anime(anime, dup, min_popularity=0)
    kept = load_kaggle_anime(anime, dup, min_popularity=0, duplicates="last")
    assert kept.ratings.tolist() == [6, 7]
    with pytest.raises(DataError, match=r"missing\.csv: no such file"):
        load_kaggle_anime(tmp_path / "missing.csv", rating)


def test_kaggle_on_the_real_tail_sample(kaggle_anime_dir, tmp_path):
    anime_csv = kaggle_anime_dir / "anime.csv"
    sample = kaggle_anime_dir / "rating_tail_sample.parquet"
    # Independent computation, as the notebook wrote it: merge, count, filter.
    anime = pd.read_csv(anime_csv)
    rating = pd.read_parquet(sample)
    merged = rating.merge(anime, on="anime_id", suffixes=("", "_anime"))
    merged["popularity"] = merged.groupby("anime_id")["anime_id"].transform("size")
    subset = merged[(merged["type"] == "TV") & (merged["popularity"] > 100)]
    subset = subset[(subset["rating"] > -1) & (subset["user_id"] < 73_000)]
    expected = subset[["user_id", "anime_id", "rating"]].to_numpy(np.int64)

    data = load_kaggle_anime(anime_csv, sample, min_popularity=100, max_user_id=73_000)
    assert len(data) == len(expected) > 1_000
    np.testing.assert_array_equal(data.to_dataframe().to_numpy(np.int64), expected)
    assert data.n_users == subset["user_id"].nunique()
    assert data.n_items == subset["anime_id"].nunique()
    assert "Fullmetal Alchemist: Brotherhood" in set(data.item_metadata["name"])

    as_csv = tmp_path / "rating.csv"
    rating.to_csv(as_csv, index=False)
    again = load_kaggle_anime(anime_csv, as_csv, min_popularity=100, max_user_id=73_000)
    np.testing.assert_array_equal(again.to_dataframe().to_numpy(np.int64), expected)
    # The notebook's own user filter leaves nothing in this sample (users 72,561-73,516).
    with pytest.raises(DataError, match="no rows with user_id < 10000"):
        load_kaggle_anime(anime_csv, sample)


# ---------------------------------------------------------------------- MovieLens
def test_movielens_needs_a_path():
    with pytest.raises(DataError, match=r"not bundled .*pass path= .*u\.data"):
        load_dataset("movielens-100k")


def test_movielens_100k(movielens_100k_dir):
    data = load_dataset("movielens-100k", path=movielens_100k_dir)
    assert (len(data), data.n_users, data.n_items) == (100_000, 943, 1_682)
    first = data.to_dataframe().iloc[0].to_dict()
    assert first == {"user_id": 196, "item_id": 242, "rating": 3.0, "timestamp": 881250949}
    counts = np.bincount(data.ratings.astype(int), minlength=6)[1:].tolist()
    assert counts == [6_110, 11_370, 27_145, 34_174, 21_201]
    meta = data.item_metadata
    np.testing.assert_array_equal(meta.index.to_numpy(), data.item_map.ids)
    assert meta.loc[1, "name"] == "Toy Story (1995)"
    assert meta.loc[1, "genres"] == "Animation|Children's|Comedy"
    assert meta.loc[1, "release_date"] == pd.Timestamp("1995-01-01")
    assert meta.loc[267, "genres"] == "unknown" and pd.isna(meta.loc[267, "release_date"])
    # u.item is Latin-1.
    assert "Misérables" in " ".join(meta["name"])
    # The u.data file itself is accepted too.
    assert len(load_movielens_100k(movielens_100k_dir / "u.data")) == 100_000


def test_movielens_users(movielens_100k_dir):
    users = load_movielens_100k_users(movielens_100k_dir)
    assert len(users) == 943 and users.index.name == "user_id"
    assert users.loc[1].to_dict() == {
        "age": 24,
        "gender": "M",
        "occupation": "technician",
        "zip_code": "85711",
    }
    assert users["zip_code"].map(type).eq(str).all()


def test_movielens_bad_folders(tmp_path, movielens_100k_dir):
    with pytest.raises(DataError, match="no such folder; MovieLens 100K needs"):
        load_movielens_100k(tmp_path / "ml-100k")
    with pytest.raises(DataError, match=r"u\.data: no such file"):
        load_movielens_100k(tmp_path)
    shutil.copy(movielens_100k_dir / "u.data", tmp_path / "u.data")
    with pytest.raises(DataError, match=r"u\.item: no such file"):
        load_movielens_100k(tmp_path)
    (tmp_path / "u.data").write_text("1,2,3,4\n")
    with pytest.raises(DataError, match=r"u\.data: expected 4 '\\t'-separated fields a line"):
        load_movielens_100k(tmp_path)
    with pytest.raises(DataError, match=r"u\.user: no such file"):
        load_movielens_100k_users(tmp_path)


def test_interactions_type():
    assert isinstance(load_dataset("anime-tv"), Interactions)
