"""Synthetic implicit feedback: exact sizes, skew, structure a model can learn, seeds."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import tripletrec as tr
import tripletrec.data.synthetic as synthetic
from tripletrec.cli import main
from tripletrec.data.synthetic import SyntheticSpec, generate_synthetic, write_synthetic_parquet
from tripletrec.exceptions import ParameterError
from tripletrec.models.baselines import PopularityRecommender


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return generate_synthetic(2_000, 300, 40_000, random_state=0)


def test_exact_size_distinct_pairs_every_user(small):
    assert len(small) == 40_000
    assert not small.duplicated(["user_id", "item_id"]).any()
    assert set(small["user_id"]) == set(range(2_000))
    assert small["item_id"].between(0, 299).all()
    assert small["user_id"].dtype == np.int32 and small["item_id"].dtype == np.int32


def test_popularity_and_activity_are_skewed(small):
    items = np.sort(np.bincount(small["item_id"], minlength=300))[::-1]
    assert items[:30].sum() > 0.2 * len(small)  # the top 10% of items: over 20% of rows
    users = np.bincount(small["user_id"])
    assert users.max() > 5 * np.median(users)
    assert users.max() <= 150  # max_user_share 0.5 of 300 items


def test_a_factor_model_learns_the_latent_topics(small):
    data = tr.Interactions.from_dataframe(small)
    train, test = tr.random_split(data, 0.2, random_state=0)
    model = tr.TripletRecommender(epochs=5, random_state=0, n_threads=1).fit(train)
    popularity = PopularityRecommender().fit(train)
    learned = tr.evaluate(model, train, test)["auc"]
    baseline = tr.evaluate(popularity, train, test)["auc"]
    assert learned > baseline + 0.08, (learned, baseline)


def test_same_seed_same_rows_other_seed_other_rows(small):
    pd.testing.assert_frame_equal(generate_synthetic(2_000, 300, 40_000, random_state=0), small)
    other = generate_synthetic(2_000, 300, 40_000, random_state=1)
    assert not other.equals(small)


def test_blocks_file_and_frame_agree(tmp_path, monkeypatch):
    # Small blocks so that the test crosses many of them quickly.
    monkeypatch.setattr(synthetic, "BLOCK_USERS", 128)
    frame = generate_synthetic(1_000, 400, 30_000, random_state=3)
    assert len(frame) == 30_000 and not frame.duplicated().any()
    path = tmp_path / "synth.parquet"
    summary = write_synthetic_parquet(path, 1_000, 400, 30_000, random_state=3)
    pd.testing.assert_frame_equal(pd.read_parquet(path), frame)
    assert summary["n_rows"] == 30_000 and summary["n_items"] == frame["item_id"].nunique()
    stored = json.loads(pq.read_schema(path).metadata[b"tripletrec.data.synthetic"])
    assert stored["random_state"] == 3 and stored["n_interactions"] == 30_000
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed away


def test_heavy_users_are_completed_exactly():
    # Every user wants nearly half the catalogue: the Gumbel-top-k path does the work.
    frame = generate_synthetic(50, 100, 2_400, user_exponent=0.0, random_state=0)
    counts = np.bincount(frame["user_id"])
    assert counts.sum() == 2_400 and counts.max() <= 50 and not frame.duplicated().any()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(n_users=10, n_items=300, n_interactions=30_000), "cannot be spread over 10 users"),
        (dict(n_users=10, n_items=300, n_interactions=5), "cannot be spread"),
        (dict(n_users=0, n_items=300, n_interactions=5), "n_users must be a positive integer"),
        (dict(n_users=10, n_items=30, n_interactions=50, noise=2.0), "noise must be in"),
        (dict(n_users=10, n_items=30, n_interactions=50, random_state=-1), "random_state must"),
    ],
)
def test_impossible_specs_are_clear_errors(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        SyntheticSpec(**kwargs)


def test_cli_writes_the_file_and_reports_errors_in_one_line(tmp_path, capsys):
    out = tmp_path / "synth.parquet"
    args = ["datasets", "synth", "--users", "500", "--items", "100", "--interactions", "5000"]
    assert main([*args, "--seed", "7", "--out", str(out)]) == 0
    assert "wrote 5,000 interactions" in capsys.readouterr().out
    pd.testing.assert_frame_equal(
        pd.read_parquet(out), generate_synthetic(500, 100, 5_000, random_state=7)
    )
    too_many = ["datasets", "synth", "--users", "5", "--items", "10", "--interactions", "500"]
    assert main([*too_many, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tripletrec: error: 500 interactions cannot be spread")
    assert len(err.strip().splitlines()) == 1


def test_a_size_that_cannot_fit_in_memory_is_refused_in_one_line(tmp_path, capsys):
    # About 2,400 GiB of generator state: refused before any of it is allocated.
    args = ["--users", "100000000000", "--items", "2000000000", "--interactions", "10" * 7]
    assert main(["datasets", "synth", *args, "--out", str(tmp_path / "x.parquet")]) == 2
    err = capsys.readouterr().err.strip()
    assert "GiB of memory" in err and "GiB is available" in err and "\n" not in err
    assert not (tmp_path / "x.parquet").exists()


def test_rows_kept_in_memory_count_against_the_memory(monkeypatch):
    monkeypatch.setattr(synthetic, "available_memory_bytes", lambda: 2**30)
    with pytest.raises(tr.DataError, match="GiB of memory"):
        generate_synthetic(1_000_000, 1_000, 100_000_000)


def test_a_file_larger_than_the_free_disk_is_refused(tmp_path, monkeypatch):
    class Usage:
        free = 1_000

    monkeypatch.setattr(synthetic.shutil, "disk_usage", lambda path: Usage())
    with pytest.raises(tr.DataError, match="on disk"):
        write_synthetic_parquet(tmp_path / "x.parquet", 1_000, 500, 20_000)
    assert not (tmp_path / "x.parquet").exists()
