"""``tripletrec train --estimator``: a HybridRecommender run from the command line, and
what only a TripletRecommender run has refused with a clear error."""

import json

import numpy as np
import pytest

from tripletrec import HybridRecommender, load_model
from tripletrec.cli import main
from tripletrec.config import RunConfig
from tripletrec.exceptions import DataError

FACTOR = ["--epochs", "2", "--batch-size", "4096"]


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def hybrid_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "hybrid"
    assert main(["train", "--estimator", "hybrid", *FACTOR, "--quiet", "--out", str(out)]) == 0
    return out


def test_a_hybrid_run_fits_every_training_positive_and_says_what_it_chose(hybrid_dir):
    config = json.loads((hybrid_dir / "config.json").read_text())
    assert config["estimator"] == "hybrid"
    assert config["model"]["factor"] == {"epochs": 2, "batch_size": 4096}
    assert config["model"]["random_state"] == 0  # runs are seeded
    assert config["split"]["validation_fraction"] == 0.0
    metrics = json.loads((hybrid_dir / "metrics.json").read_text())
    assert metrics["n_train_positives"] == 91_591 and metrics["n_validation_positives"] == 0
    assert 0.8 < metrics["auc"] <= 1.0
    model = load_model(hybrid_dir)
    assert isinstance(model, HybridRecommender)
    training = metrics["training"]
    assert training["item_item_l2"] == model.l2_ and training["batch_by"] == "user"
    assert not (hybrid_dir / "history.json").exists()  # one fit, no epochs to follow


def test_the_run_trains_the_estimator_its_config_describes(hybrid_dir):
    config = RunConfig.read(hybrid_dir / "config.json")
    _, train, _ = config.prepare()
    by_hand = HybridRecommender(factor={"epochs": 2, "batch_size": 4096}, random_state=0)
    by_hand.fit(train)
    saved = load_model(hybrid_dir)
    users = saved.user_map_.ids[:50]
    np.testing.assert_allclose(saved.score(users), by_hand.score(users), atol=1e-5)


def test_a_hybrid_run_evaluates_recommends_and_replays_from_its_config(
    hybrid_dir, capsys, tmp_path
):
    saved = json.loads((hybrid_dir / "metrics.json").read_text())
    code, out, _ = run(capsys, "evaluate", str(hybrid_dir), "--metrics", "auc", "--quiet")
    assert code == 0 and f"{saved['auc']:.4f}" in out
    code, out, _ = run(capsys, "recommend", str(hybrid_dir), "--user", "1", "-k", "3")
    assert code == 0 and out.startswith("top 3 for user 1:")
    again = tmp_path / "again"
    config = str(hybrid_dir / "config.json")
    assert main(["train", "--config", config, "--quiet", "--out", str(again)]) == 0
    assert json.loads((again / "metrics.json").read_text())["auc"] == saved["auc"]


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--features"], "--features: only for --estimator triplet"),
        (["--checkpoint-every", "1", "--out", "x"], "--checkpoint-every: only for"),
        (["--sparse-gradients"], "--sparse-gradients: only for"),
        (["--validation-fraction", "0.2"], "--validation-fraction: only for"),
        (["--preset", "default"], "--preset names TripletRecommender parameters"),
    ],
)
def test_what_only_a_triplet_run_has_is_refused_for_a_hybrid(capsys, flags, fragment):
    code, _, err = run(capsys, "train", "--estimator", "hybrid", *flags, "--quiet")
    assert code == 2 and fragment in err and "Traceback" not in err


def test_a_hybrid_run_is_neither_tuned_nor_resumed_nor_switched(hybrid_dir, capsys):
    code, _, err = run(capsys, "tune", "--estimator", "hybrid", "--trials", "1", "--quiet")
    assert code == 2 and "tune searches TripletRecommender's parameters" in err
    code, _, err = run(capsys, "train", "--resume", str(hybrid_dir))
    assert code == 2 and "only --estimator triplet runs checkpoint and resume" in err
    config = str(hybrid_dir / "config.json")
    code, _, err = run(capsys, "train", "--config", config, "--estimator", "triplet")
    assert code == 2 and "is a run of 'hybrid'" in err


def test_config_files_name_a_known_estimator_and_its_parameters():
    assert RunConfig.from_dict({}).estimator == "triplet"  # files from before the field
    assert RunConfig.from_dict({"estimator": "hybrid"}).model == {}
    with pytest.raises(DataError, match="estimator must be one of triplet, hybrid"):
        RunConfig.from_dict({"estimator": "ease"})
    with pytest.raises(DataError, match="unknown model parameter"):
        RunConfig.from_dict({"estimator": "hybrid", "model": {"epochs": 3}})
    with pytest.raises(DataError, match="unknown factor parameter"):
        RunConfig.from_dict({"estimator": "hybrid", "model": {"factor": {"weight": 0.5}}})
    with pytest.raises(DataError, match="model: expected an object"):
        RunConfig.from_dict({"model": [1]})
