"""The command line: datasets -> train -> evaluate -> recommend, and clean errors."""

import json

import numpy as np
import pandas as pd
import pytest

from tripletrec.cli import main

QUICK = [
    "--estimator",
    "triplet",
    "--epochs",
    "3",
    "--batch-size",
    "4096",
    "--learning-rate",
    "0.02",
    "--quiet",
]


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_datasets_lists_the_bundled_data(capsys):
    code, out, _ = run(capsys, "datasets")
    assert code == 0 and "anime-tv" in out and "movielens-100k" in out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "anime"
    assert main(["train", "anime-tv", *QUICK, "--out", str(out)]) == 0
    return out


def test_train_writes_metrics_config_history_and_model(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in (
        "auc",
        "fit_seconds",
        "n_users",
        "n_items",
        "n_train_positives",
        "n_test_positives",
    ):
        assert key in metrics
    assert metrics["n_users"] == 4610 and metrics["n_items"] == 293
    assert metrics["n_train_positives"] == 91_591 and metrics["n_test_positives"] == 22_921
    assert 0.7 < metrics["auc"] <= 1.0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data"]["source"] == "anime-tv" and config["data"]["threshold"] == 7
    assert len(json.loads((run_dir / "history.json").read_text())) == 3
    assert (run_dir / "weights.safetensors").is_file()


def test_evaluate_reproduces_the_training_metrics(run_dir, capsys, tmp_path):
    out_json = tmp_path / "eval.json"
    code, out, _ = run(
        capsys, "evaluate", str(run_dir), "--metrics", "auc,ndcg@10", "--json", str(out_json)
    )
    assert code == 0 and "ndcg@10" in out
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert json.loads(out_json.read_text())["auc"] == pytest.approx(saved["auc"], abs=1e-12)


def test_train_config_round_trips(run_dir, capsys, tmp_path):
    code, _, _ = run(
        capsys,
        "train",
        "--config",
        str(run_dir / "config.json"),
        "--quiet",
        "--out",
        str(tmp_path / "again"),
    )
    assert code == 0
    first = json.loads((run_dir / "metrics.json").read_text())
    second = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert second["auc"] == first["auc"]  # same config, same seed: same model


def test_recommend_prints_anime_names(run_dir, capsys):
    code, out, _ = run(capsys, "recommend", str(run_dir), "--user", "1", "-k", "5")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0] == "top 5 for user 1:" and len(lines) == 6
    code, out, _ = run(capsys, "recommend", str(run_dir), "--user", "1", "-k", "3", "--json")
    payload = json.loads(out)
    assert len(payload["items"]) == 3 and all(isinstance(r["name"], str) for r in payload["items"])


@pytest.fixture
def ratings_csv(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"u": rng.integers(0, 60, 3000), "i": rng.integers(0, 40, 3000)})
    df = df.drop_duplicates(["u", "i"]).assign(r=lambda d: rng.integers(1, 6, len(d)))
    path = tmp_path / "ratings.csv"
    df.to_csv(path, index=False)
    return path


def test_train_on_a_csv_with_column_options(ratings_csv, capsys, tmp_path):
    code, out, err = run(
        capsys, "train", "--estimator", "triplet", str(ratings_csv), "--user-col", "u",
        "--item-col", "i", "--rating-col", "r", "--threshold", "3", "--epochs", "2",
        "--batch-size", "256", "--quiet", "--out", str(tmp_path / "m"),
    )  # fmt: skip
    assert code == 0, err
    assert "test AUC" in out
    data = json.loads((tmp_path / "m" / "config.json").read_text())["data"]
    assert (data["user_col"], data["item_col"], data["rating_col"]) == ("u", "i", "r")
    assert data["threshold"] == 3 and data["inclusive"] is False
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    df = pd.read_csv(ratings_csv)
    assert metrics["n_train_positives"] + metrics["n_test_positives"] == (df["r"] > 3).sum()
    code, out, _ = run(capsys, "recommend", str(tmp_path / "m"), "--user", "5", "-k", "3")
    assert code == 0 and out.startswith("top 3 for user 5:")
    items = [int(line.split()[1]) for line in out.strip().splitlines()[1:]]
    assert len(set(items)) == 3 and set(items) <= set(df["i"])


def _expect_error(capsys, fragment, *args):
    code, out, err = run(capsys, *args)
    assert code == 2, (out, err)
    assert err.startswith("tripletrec: error:") and fragment in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_inputs_get_one_line_and_exit_code_2(ratings_csv, tmp_path, capsys, run_dir):
    csv = str(ratings_csv)
    cols = ["--user-col", "u", "--item-col", "i"]
    _expect_error(capsys, "neither a bundled dataset", "train", str(tmp_path / "missing.csv"))
    _expect_error(
        capsys, "missing column(s) 'user'", "train", csv, "--user-col", "user", "--item-col", "i"
    )
    _expect_error(capsys, "needs --threshold", "train", csv, *cols, "--rating-col", "r")
    _expect_error(
        capsys, "no positives", "train", csv, *cols, "--rating-col", "r", "--threshold", "9"
    )

    nan_ids = tmp_path / "nan.csv"
    pd.DataFrame({"u": [1, None, 3], "i": [1, 2, 3]}).to_csv(nan_ids, index=False)
    _expect_error(capsys, "missing value", "train", str(nan_ids), *cols)

    empty = tmp_path / "empty.csv"
    empty.write_text("u,i\n")
    _expect_error(capsys, "no interactions", "train", str(empty), *cols)

    dup = tmp_path / "dup.csv"
    pd.DataFrame({"u": [1, 1, 2], "i": [1, 1, 2]}).to_csv(dup, index=False)
    _expect_error(capsys, "repeat", "train", str(dup), *cols)

    _expect_error(capsys, "unknown user id", "recommend", str(run_dir), "--user", "999999")
    _expect_error(
        capsys, "k must be a positive integer", "recommend", str(run_dir), "--user", "1", "-k", "0"
    )
    _expect_error(
        capsys, "no such model directory", "recommend", str(tmp_path / "nope"), "--user", "1"
    )
    _expect_error(
        capsys,
        "batch_size must be a positive integer",
        "train",
        "--estimator",
        "triplet",
        "--batch-size",
        "0",
    )
    _expect_error(capsys, "no such config file", "train", "--config", str(tmp_path / "c.json"))
    _expect_error(
        capsys, "ranking_bias_scale must be", "train", "--estimator", "triplet",
        "--ranking-bias-scale", "-1",
    )  # fmt: skip


@pytest.mark.slow  # trains on anime-tv
def test_train_with_builtin_features_round_trips_its_config(capsys, tmp_path):
    out = tmp_path / "features"
    code, _, _ = run(capsys, "train", "--features", *QUICK, "--out", str(out))
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["features"] is True
    code, text, _ = run(capsys, "evaluate", str(out), "--metrics", "auc")
    saved = json.loads((out / "metrics.json").read_text())
    assert code == 0 and f"{saved['auc']:.4f}" in text


def test_builtin_features_need_a_named_dataset(capsys, tmp_path):
    path = tmp_path / "r.csv"
    pd.DataFrame({"user_id": [1, 2], "item_id": [3, 4]}).to_csv(path, index=False)
    code, _, err = run(
        capsys, "train", "--estimator", "triplet", str(path), "--features", "--quiet"
    )
    assert code == 2 and "built-in features" in err and len(err.strip().splitlines()) == 1
