"""Run reports: validation history, learning curve, evaluate tables/JSON, comparison plots."""

import json

import pytest

import tripletrec as tr
from tripletrec import plots
from tripletrec.cli import main

QUICK = [
    "--estimator",
    "triplet",
    "--epochs",
    "2",
    "--batch-size",
    "4096",
    "--learning-rate",
    "0.02",
    "--quiet",
]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports") / "run"
    assert (
        main(["train", "anime-tv", *QUICK, "--validation-fraction", "0.1", "--out", str(out)]) == 0
    )
    return out


def test_train_records_validation_metrics_per_epoch(run_dir):
    history = json.loads((run_dir / "history.json").read_text())
    assert [record["epoch"] for record in history] == [1, 2]
    for record in history:
        assert (
            record["loss"] > 0
            and 0.5 < record["validation_auc"] <= 1
            and 0 < record["validation_ndcg@10"] < 1
        )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["validation_fraction"] == 0.1
    assert metrics["n_validation_positives"] == 9160  # ceil(0.1 * 91,591)
    assert metrics["n_train_positives"] == 91_591  # test exclusion uses the whole train part
    assert (run_dir / "learning_curve.png").read_bytes()[:8] == PNG_MAGIC
    model = tr.load_model(run_dir)  # saved as a plain TripletRecommender
    assert type(model) is tr.TripletRecommender and model.seen_.nnz == 91_591 - 9160


@pytest.mark.slow  # trains on anime-tv
def test_validation_fraction_zero_fits_on_all_train_positives(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(plots, "pyplot", lambda: None)  # as if matplotlib were missing
    out = tmp_path / "run"
    # Not --quiet, which silences notes; captured stderr is no terminal, so no bar either.
    code = main(["train", "anime-tv", *QUICK[:-1], "--epochs", "1",
                 "--validation-fraction", "0", "--out", str(out)])  # fmt: skip
    assert code == 0
    history = json.loads((out / "history.json").read_text())
    assert "validation_auc" not in history[0]
    assert tr.load_model(out).seen_.nnz == 91_591
    assert not (out / "learning_curve.png").exists()
    assert "matplotlib is not installed" in capsys.readouterr().err


def test_evaluate_sampled_prints_a_table_and_writes_json(run_dir, tmp_path, capsys):
    out_json = tmp_path / "sampled.json"
    code = main(["evaluate", str(run_dir), "--protocol", "sampled", "--metrics",
                 "hit_rate@10,ndcg@5", "--json", str(out_json)])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0 and "hit_rate@10" in out and "ndcg@5" in out and "metric" in out
    assert err.startswith("tripletrec: warning:") and "Krichene" in err
    payload = json.loads(out_json.read_text())
    assert payload["protocol"] == "sampled" and payload["n_negatives"] == 99
    assert 0 < payload["ndcg@5"] < payload["hit_rate@10"] < 1


def test_evaluate_full_protocol_matches_training_metrics(run_dir, tmp_path, capsys):
    out_json = tmp_path / "full.json"
    code = main(["evaluate", str(run_dir), "--protocol", "full", "--json", str(out_json)])
    assert code == 0 and "full ranking" in capsys.readouterr().out
    saved = json.loads((run_dir / "metrics.json").read_text())
    payload = json.loads(out_json.read_text())
    assert payload["protocol"] == "full"
    assert payload["auc"] == pytest.approx(saved["auc"], abs=1e-12)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--protocol", "sampled", "--metrics", "auc"], "hit_rate@k and ndcg@k only"),
        (["--protocol", "sampled", "--negatives", "0"], "n_negatives must be a positive"),
        (["--protocol", "sampled", "--negatives", "400"], "fewer than n_negatives"),
    ],
)
def test_bad_evaluate_inputs_are_one_line_errors(run_dir, capsys, args, message):
    assert main(["evaluate", str(run_dir), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("tripletrec: error:") and message in err[-1]


def test_bad_validation_fraction_is_a_one_line_error(capsys):
    assert main(["train", "-e", "triplet", "--validation-fraction", "1.5", "--quiet"]) == 2
    assert "--validation-fraction must be in [0, 1)" in capsys.readouterr().err


def test_tradeoff_plot_writes_a_png(tmp_path):
    rows = [
        {"dataset": d, "model": m, "fit_seconds": s, "auc": a, "ndcg@10": n, "auc_std": 0.01}
        for d in ("anime-tv", "movielens-100k")
        for m, s, a, n in (("popularity", 0.0, 0.72, 0.17), ("ALS", 0.05, 0.85, 0.31))
    ]
    path = plots.plot_tradeoff(rows, tmp_path / "sub" / "compare.png")
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["compare.png"]  # no temp left
