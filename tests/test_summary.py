"""tripletrec.describe and `tripletrec data describe`: the notebook's data exploration."""

import json

import numpy as np
import pandas as pd
import pytest

from tripletrec import DataSummary, describe
from tripletrec.cli import main
from tripletrec.data.datasets import DATASETS, load_dataset
from tripletrec.data.interactions import Interactions
from tripletrec.exceptions import DataError, ParameterError

# Four users, three items, seven ratings; every figure below is worked out by hand.
#   a: x 5, y 3, z 1    b: x 4, y 2    c: x 5    d: x 1
TINY = pd.DataFrame(
    {
        "user_id": ["a", "a", "a", "b", "b", "c", "d"],
        "item_id": ["x", "y", "z", "x", "y", "x", "x"],
        "rating": [5.0, 3.0, 1.0, 4.0, 2.0, 5.0, 1.0],
    }
)


@pytest.fixture(scope="module")
def tiny():
    return describe(TINY, threshold=3)


def test_sizes_and_sparsity_of_a_known_frame(tiny):
    assert isinstance(tiny, DataSummary)
    assert (tiny.n_users, tiny.n_items, tiny.n_interactions) == (4, 3, 7)
    assert tiny.sparsity == pytest.approx(1 - 7 / 12)


def test_rating_histogram_of_a_known_frame(tiny):
    ratings = tiny.ratings
    assert ratings.values == (1.0, 2.0, 3.0, 4.0, 5.0)
    assert ratings.counts == (2, 1, 1, 1, 2)
    assert (ratings.min, ratings.max, ratings.mean) == (1.0, 5.0, pytest.approx(3.0))
    assert ratings.to_dict()["histogram"] == {"1": 2, "2": 1, "3": 1, "4": 1, "5": 2}


def test_positives_strict_and_inclusive(tiny):
    strict = tiny.positives
    assert (strict.n_positives, strict.n_users, strict.n_items) == (3, 3, 1)
    assert strict.share == pytest.approx(3 / 7) and strict.rule == "rating > 3"
    inclusive = describe(TINY, threshold=3, inclusive=True).positives
    assert (inclusive.n_positives, inclusive.n_users, inclusive.n_items) == (4, 3, 2)
    assert inclusive.rule == "rating >= 3"
    # Rated data without a threshold: no rule, so no positives section.
    assert describe(TINY).positives is None


def test_long_tail_of_a_known_frame(tiny):
    popularity = tiny.popularity
    assert tiny.item_counts.tolist() == [4, 2, 1]
    stats = popularity.per_item
    assert (stats.min, stats.median, stats.max) == (1, 2.0, 4)
    assert stats.mean == pytest.approx(7 / 3) and stats.p90 == pytest.approx(3.6)
    # Three items: the top 1%, 10% and 20% are each the single most popular one (4 of 7).
    assert [(f, n) for f, n, _ in popularity.top_shares] == [(0.01, 1), (0.1, 1), (0.2, 1)]
    assert [share for *_, share in popularity.top_shares] == pytest.approx([4 / 7] * 3)
    assert popularity.n_items_half == 1
    # Gini of (1, 2, 4): sum |xi - xj| over ordered pairs / (2 n^2 mean) = 12 / 42.
    assert popularity.gini == pytest.approx(2 / 7)


def test_history_lengths_of_a_known_frame(tiny):
    history = tiny.history
    assert sorted(tiny.history_lengths.tolist()) == [1, 1, 2, 3]
    assert (history.min, history.median, history.max) == (1, 1.5, 3)
    assert history.mean == pytest.approx(7 / 4) and history.p90 == pytest.approx(2.7)


def test_gini_is_zero_for_equal_popularity_and_grows_with_concentration():
    even = pd.DataFrame({"user_id": [1, 2, 3, 4], "item_id": [1, 2, 1, 2]})
    assert describe(even).popularity.gini == pytest.approx(0.0)
    skewed = pd.DataFrame({"user_id": [1, 2, 3, 4], "item_id": [1, 1, 1, 2]})
    assert describe(skewed).popularity.gini == pytest.approx(0.25)


def test_interactions_and_frames_give_the_same_summary(tiny):
    data = Interactions.from_dataframe(TINY, rating_col="rating")
    assert describe(data, threshold=3) == tiny
    assert describe(data, threshold=3).to_dict() == tiny.to_dict()


def test_a_subset_counts_only_the_users_and_items_it_has():
    data = Interactions.from_dataframe(TINY, rating_col="rating")
    subset = data.subset(data.users == data.user_map.to_index(["a"])[0])
    summary = describe(subset)
    assert (summary.n_users, summary.n_items, summary.n_interactions) == (1, 3, 3)
    assert summary.sparsity == pytest.approx(0.0)


def test_implicit_data_has_every_row_positive_and_no_histogram():
    implicit = describe(TINY[["user_id", "item_id"]])
    assert implicit.ratings is None
    assert implicit.positives.rule == "every row" and implicit.positives.n_positives == 7
    assert "ratings" not in implicit.to_text().split("positives")[0]
    with pytest.raises(DataError, match="no ratings"):
        describe(TINY[["user_id", "item_id"]], threshold=3)


def test_many_distinct_ratings_are_binned():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"user_id": np.arange(500) % 50, "item_id": np.arange(500) // 50,
         "rating": rng.uniform(0, 1, 500)}
    )  # fmt: skip
    ratings = describe(frame).ratings
    assert ratings.values is None and len(ratings.edges) == len(ratings.counts) + 1
    assert sum(ratings.counts) == 500 and len(ratings.counts) == 20
    labels = ratings.labels
    assert labels[0].startswith("[") and labels[-1].endswith("]") and labels[0].endswith(")")


def test_to_dict_is_json_and_to_text_shows_the_figures(tiny):
    payload = json.loads(json.dumps(tiny.to_dict()))
    assert payload["n_users"] == 4 and payload["positives"]["n_positives"] == 3
    assert payload["popularity"]["top_share"]["20%"] == pytest.approx(4 / 7)
    assert payload["history"]["median"] == 1.5
    text = tiny.to_text()
    for fragment in ("users", "sparsity", "41.67%", "rating > 3", "3 (42.9%)", "gini", "0.286",
                     "1 / 1.5 / 1.8 / 2.7 / 3"):  # fmt: skip
        assert fragment in text, fragment


@pytest.mark.parametrize(
    ("data", "kwargs", "error", "fragment"),
    [
        (TINY.iloc[:0], {}, DataError, "empty"),
        (TINY.rename(columns={"item_id": "item"}), {}, DataError, "item_id"),
        ([(1, 2)], {}, DataError, "Interactions or a pandas DataFrame"),
        (TINY, {"threshold": float("nan")}, ParameterError, "threshold"),
        (TINY.assign(user_id=[None, *TINY.user_id[1:]]), {}, DataError, "missing"),
    ],
)
def test_bad_input_gets_a_clear_error(data, kwargs, error, fragment):
    with pytest.raises(error, match=fragment):
        describe(data, **kwargs)


def test_empty_interactions_get_a_clear_error():
    data = Interactions.from_dataframe(TINY)
    with pytest.raises(DataError, match="empty"):
        describe(data.subset(np.zeros(len(data), dtype=bool)))


def test_figures_and_save(tiny, tmp_path):
    pytest.importorskip("matplotlib")
    from tripletrec.plots import close_figure

    figures = tiny.figures()
    try:
        assert list(figures) == ["rating histogram", "item popularity", "history lengths"]
    finally:
        for figure in figures.values():
            close_figure(figure)
    written = tiny.save(tmp_path / "out")
    names = sorted(p.name for p in written)
    assert names == ["history_lengths.png", "item_popularity.png", "ratings.png", "summary.json"]
    for path in written:
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == json.loads(
        json.dumps(tiny.to_dict())
    )
    assert not list((tmp_path / "out").glob(".*"))  # no temporary file left behind
    implicit = describe(TINY[["user_id", "item_id"]]).save(tmp_path / "implicit")
    assert "ratings.png" not in {p.name for p in implicit}


def test_without_matplotlib_the_summary_saves_its_json_alone(tiny, tmp_path, monkeypatch):
    from tripletrec import plots

    monkeypatch.setattr(plots, "pyplot", lambda: None)  # as if matplotlib were missing
    assert tiny.figures() is None
    assert [p.name for p in tiny.save(tmp_path / "out")] == ["summary.json"]


def test_anime_tv_raw_counts():
    info = DATASETS["anime-tv"]
    summary = describe(load_dataset("anime-tv"), threshold=info.positive_threshold)
    assert (summary.n_users, summary.n_items, summary.n_interactions) == (4_610, 293, 163_416)
    assert summary.positives.n_positives == 114_512
    assert sum(summary.ratings.counts) == 163_416 and summary.ratings.values[-1] == 10


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_describes_anime_tv_with_its_own_rule_and_writes_files(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    out_dir = tmp_path / "summary"
    code, out, err = run(capsys, "data", "describe", "anime-tv", "--out", str(out_dir))
    assert code == 0, err
    assert out.startswith("data: anime-tv\n")
    for fragment in ("4,610", "293", "163,416", "positives (rating > 7)", "114,512 (70.1%)"):
        assert fragment in out, fragment
    assert err == ""  # captured output is no terminal: no progress bar
    payload = json.loads((out_dir / "summary.json").read_text())
    assert (payload["n_users"], payload["n_items"], payload["n_interactions"]) == (
        4_610, 293, 163_416,
    )  # fmt: skip
    for name in ("ratings.png", "item_popularity.png", "history_lengths.png"):
        assert (out_dir / name).read_bytes()[:4] == b"\x89PNG"
    assert "wrote summary.json, ratings.png" in out


def test_cli_describes_a_file_with_column_flags(capsys, tmp_path):
    path = tmp_path / "tiny.csv"
    TINY.rename(columns={"user_id": "u", "item_id": "i", "rating": "r"}).to_csv(path, index=False)
    flags = ["--user-col", "u", "--item-col", "i", "--rating-col", "r"]
    code, out, err = run(capsys, "data", "describe", str(path), *flags, "--threshold", "3")
    assert code == 0, err
    assert "positives (rating > 3)" in out and "3 (42.9%)" in out
    code, out, _ = run(capsys, "data", "describe", str(path), *flags)
    assert code == 0 and "positives" not in out and "ratings (1 to 5" in out
    code, out, _ = run(capsys, "data", "describe", str(path), *flags, "--threshold", "3",
                       "--inclusive")  # fmt: skip
    assert "positives (rating >= 3)" in out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["no-such-file.csv"], "neither a bundled dataset"),
        (["{csv}"], "item_id"),
        (["{csv}", "--user-col", "u", "--item-col", "i", "--threshold", "3"], "no ratings"),
        (["movielens-100k"], "not bundled"),
    ],
)
def test_cli_bad_input_is_one_error_line(capsys, tmp_path, args, fragment):
    path = tmp_path / "plain.csv"
    pd.DataFrame({"u": [1, 2], "i": [3, 4]}).to_csv(path, index=False)
    args = [a.replace("{csv}", str(path)) for a in args]
    code, out, err = run(capsys, "data", "describe", *args)
    assert code == 2 and out == ""
    assert err.startswith("tripletrec: error:") and fragment in err
    assert len(err.strip().splitlines()) == 1


def test_datasets_command_still_lists_and_data_needs_an_action(capsys):
    code, out, _ = run(capsys, "datasets")
    assert code == 0 and "anime-tv" in out
    with pytest.raises(SystemExit):
        main(["data"])
    assert "describe" in capsys.readouterr().err


def test_cli_describes_movielens_from_shared_data(capsys, movielens_100k_dir):
    code, out, err = run(capsys, "data", "describe", "movielens-100k", "--data-path",
                         str(movielens_100k_dir))  # fmt: skip
    assert code == 0, err
    assert "943" in out and "1,682" in out and "100,000" in out
    assert "positives (rating >= 4)" in out
