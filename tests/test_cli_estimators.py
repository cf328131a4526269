"""``tripletrec train --estimator NAME``: every registered estimator trains from the command
line, the default is :class:`tripletrec.Recommender`, and what an estimator's capabilities
do not declare is refused with one clear line."""

import json

import numpy as np
import pytest

import tripletrec
from tripletrec import HybridRecommender, Recommender, load_model
from tripletrec._registry import short_name
from tripletrec.cli import main
from tripletrec.config import RunConfig
from tripletrec.exceptions import DataError
from tripletrec.models.base import RecommenderBase

FACTOR = ["--factor.epochs", "2", "--factor.batch-size", "4096"]
#: Small settings per estimator for the small CSV (the others train as constructed).
SMALL = {
    "TripletRecommender": ["--epochs", "1", "--n-factors", "4"],
    "HybridRecommender": ["--factor.epochs", "1", "--factor.n-factors", "4"],
    "Recommender": ["--factor.epochs", "1", "--factor.n-factors", "4"],
}
ESTIMATORS = sorted(
    name
    for name in tripletrec.__all__
    if isinstance(getattr(tripletrec, name), type)
    and issubclass(getattr(tripletrec, name), RecommenderBase)
)


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
    assert config["estimator"] == "HybridRecommender"
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
        (["--features"], "--features: HybridRecommender has no side features capability"),
        (["--checkpoint-every", "1", "--out", "x"], "--checkpoint-every: HybridRecommender has no"),
        (["--sparse-gradients"], "--sparse-gradients: HybridRecommender has no data parallel"),
        (
            ["--validation-fraction", "0.2"],
            "--validation-fraction: HybridRecommender has no epochs",
        ),
        (["--preset", "default"], "--preset names TripletRecommender settings"),
    ],
)
def test_what_a_hybrid_cannot_do_is_refused_from_its_capabilities(capsys, flags, fragment):
    code, _, err = run(capsys, "train", "--estimator", "hybrid", *flags, "--quiet")
    assert code == 2 and fragment in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_hybrid_run_is_neither_tuned_nor_resumed_nor_switched(hybrid_dir, capsys):
    code, _, err = run(capsys, "tune", "--estimator", "hybrid", "--trials", "1", "--quiet")
    assert code == 2 and "tune: HybridRecommender has no tuning capability" in err
    code, _, err = run(capsys, "train", "--resume", str(hybrid_dir))
    assert code == 2 and "HybridRecommender has no checkpoints capability" in err
    config = str(hybrid_dir / "config.json")
    code, _, err = run(capsys, "train", "--config", config, "--estimator", "triplet")
    assert code == 2 and "is a run of HybridRecommender" in err


@pytest.mark.parametrize("name", ESTIMATORS)
def test_every_registered_estimator_trains_from_the_command_line(name, small_csv, tmp_path):
    cls = getattr(tripletrec, name)
    out = tmp_path / "run"
    spelled = name.upper() if len(name) % 2 else short_name(cls)  # case and short names
    argv = ["train", str(small_csv), "--user-col", "u", "--item-col", "i", "--quiet"]
    assert main([*argv, "--estimator", spelled, *SMALL.get(name, []), "--out", str(out)]) == 0
    model = load_model(out)
    assert type(model) is cls
    assert json.loads((out / "config.json").read_text())["estimator"] == name
    assert main(["recommend", str(out), "--user", str(model.user_map_.ids[0]), "--quiet"]) == 0


def test_train_with_no_estimator_fits_the_default_recommender(small_csv, tmp_path, capsys):
    out = tmp_path / "default"
    argv = ["train", str(small_csv), "--user-col", "u", "--item-col", "i", "--quiet"]
    assert main([*argv, *SMALL["Recommender"], "--out", str(out)]) == 0
    model = load_model(out)
    assert type(model) is Recommender and model.factor_.epochs == 1
    assert json.loads((out / "config.json").read_text())["estimator"] == "Recommender"
    capsys.readouterr()
    with pytest.raises(SystemExit):  # the factor model's is --factor.epochs
        main(["train", str(small_csv), "--epochs", "2"])
    assert "unrecognized arguments: --epochs" in capsys.readouterr().err


def test_an_unknown_estimator_is_a_usage_error_that_lists_the_known(capsys):
    code = None
    with pytest.raises(SystemExit) as exited:
        code = main(["train", "--estimator", "nope"])
    assert code is None and exited.value.code == 2
    err = capsys.readouterr().err
    assert "no estimator named 'nope'" in err and "ease" in err and "triplet" in err


def test_config_files_name_a_known_estimator_and_its_parameters():
    assert RunConfig.from_dict({}).estimator == "TripletRecommender"  # files from before it
    assert RunConfig().estimator == "Recommender"
    assert RunConfig.from_dict({"estimator": "hybrid"}).estimator == "HybridRecommender"
    assert RunConfig.from_dict({"estimator": "EASE", "model": {"l2": 5.0}}).model == {"l2": 5.0}
    with pytest.raises(DataError, match="no estimator named 'nope'"):
        RunConfig.from_dict({"estimator": "nope"})
    with pytest.raises(DataError, match="unknown parameter"):
        RunConfig.from_dict({"estimator": "hybrid", "model": {"epochs": 3}})
    with pytest.raises(DataError, match="factor: unknown parameter"):
        RunConfig.from_dict({"estimator": "hybrid", "model": {"factor": {"weight": 0.5}}})
    with pytest.raises(DataError, match="model: expected an object"):
        RunConfig.from_dict({"model": [1]})
