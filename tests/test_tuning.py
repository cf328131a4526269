"""``tripletrec tune`` and :func:`tripletrec.tuning.tune`: validation-only search that
writes a config ``train --config`` trains again."""

import importlib.util
import json
import sys

import pytest

import tripletrec.tuning as tuning
from tripletrec.cli import main
from tripletrec.config import RunConfig
from tripletrec.exceptions import TripletrecError
from tripletrec.tuning import Categorical, FloatRange, IntRange, default_search_space, tune

needs_optuna = pytest.mark.skipif(
    importlib.util.find_spec("optuna") is None, reason="optuna is not installed (tune extra)"
)

# Short fits: two epochs of large batches, so a trial takes a fraction of a second.
#: Tuning searches TripletRecommender (the estimator with the tuning capability).
TRIPLET = "TripletRecommender"
QUICK = ["--estimator", "triplet", "--epochs", "2", "--batch-size", "4096", "--quiet"]
SMALL_SPACE = {
    "learning_rate": FloatRange(1e-3, 5e-2, log=True),
    "n_factors": Categorical((16, 32)),
    "epochs": 1,
    "batch_size": 4096,
}


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _pairs(part):
    """The (raw user, raw item) pairs of an Interactions part, as a set."""
    users = part.user_map.to_raw(part.users).tolist()
    items = part.item_map.to_raw(part.items).tolist()
    return set(zip(users, items))


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    out = tmp_path_factory.mktemp("tune") / "best_config.json"
    assert main(["tune", "anime-tv", *QUICK, "--trials", "2", "--out", str(out)]) == 0
    return out


@needs_optuna
def test_tune_writes_a_config_and_a_trial_log(tuned):
    config = json.loads(tuned.read_text())
    log = json.loads((tuned.parent / "tuning.json").read_text())
    assert log["metric"] == "ndcg@10" and log["n_trials"] == len(log["trials"]) == 2
    assert 0.0 < log["best_value"] <= 1.0
    assert log["best_value"] == max(t["value"] for t in log["trials"])
    # Flags given on the command line are held fixed; the rest of the space is searched.
    assert set(log["best_params"]) == {"learning_rate", "l2", "n_factors", "ranking_bias_scale"}
    assert config["model"]["epochs"] == 2 and config["model"]["batch_size"] == 4096
    for name, value in log["best_params"].items():
        assert config["model"][name] == value
    assert config["data"]["threshold"] == 7  # the bundled dataset's rule, resolved
    RunConfig.from_dict(config)  # valid as a config file


@needs_optuna
def test_best_config_trains_the_best_trial_again(tuned, capsys, tmp_path):
    code, out, err = run(
        capsys, "train", "--config", str(tuned), "--quiet", "--out", str(tmp_path / "m")
    )
    assert code == 0, err
    assert "test AUC" in out
    # train --config carves the same validation part and fits the same seeded model, so
    # its final validation score is the best trial's.
    history = json.loads((tmp_path / "m" / "history.json").read_text())
    best = json.loads((tuned.parent / "tuning.json").read_text())["best_value"]
    assert history[-1]["validation_ndcg@10"] == pytest.approx(best, abs=1e-9)


@needs_optuna
@pytest.mark.slow  # trials train on anime-tv
def test_trials_never_see_the_test_part(monkeypatch):
    config = RunConfig(estimator=TRIPLET)
    seen = {}
    real_split, real_evaluate = tuning.validation_split, tuning.evaluate

    def spy_split(train, fraction, random_state):
        seen["train"] = train
        return real_split(train, fraction, random_state)

    def spy_evaluate(model, fit_part, validation, metrics):
        seen.setdefault("parts", []).append((fit_part, validation))
        return real_evaluate(model, fit_part, validation, metrics)

    monkeypatch.setattr(tuning, "validation_split", spy_split)
    monkeypatch.setattr(tuning, "evaluate", spy_evaluate)
    result = tune(config, n_trials=2, search_space=SMALL_SPACE, validation_fraction=0.1)

    _, train, test = RunConfig(config.data.resolved(), estimator=TRIPLET).prepare()
    train_pairs, test_pairs = _pairs(train), _pairs(test)
    assert _pairs(seen["train"]) == train_pairs  # carved from the train positives only
    assert len(seen["parts"]) == 2
    for fit_part, validation in seen["parts"]:
        fit_pairs, validation_pairs = _pairs(fit_part), _pairs(validation)
        assert validation_pairs and validation_pairs <= train_pairs
        assert not validation_pairs & test_pairs and not fit_pairs & test_pairs
        assert fit_pairs | validation_pairs == train_pairs
        assert not fit_pairs & validation_pairs
    assert result.n_validation == len(seen["parts"][0][1])
    assert result.n_fit + result.n_validation == len(train)


@needs_optuna
@pytest.mark.slow  # trials train on anime-tv
def test_same_seed_same_trials():
    def search(seed):
        return tune(
            RunConfig(estimator=TRIPLET), n_trials=3, random_state=seed, search_space=SMALL_SPACE
        )

    first, second = search(0), search(0)
    assert first.best_params == second.best_params
    assert first.best_value == second.best_value
    assert [t["params"] for t in first.trials] == [t["params"] for t in second.trials]
    assert [t["value"] for t in first.trials] == [t["value"] for t in second.trials]
    assert first.best_config.to_dict() == second.best_config.to_dict()
    assert first.best_config.model["random_state"] == RunConfig(estimator=TRIPLET).model.get(
        "random_state", 0
    )


@needs_optuna
@pytest.mark.slow  # trials train on anime-tv
def test_time_budget_stops_the_search(capsys):
    # Optuna checks the budget between trials: the first trial runs, no second one starts.
    result = tune(
        RunConfig(estimator=TRIPLET),
        n_trials=50,
        timeout_seconds=1e-6,
        search_space=SMALL_SPACE,
        verbose=True,
    )
    assert len(result.trials) == 1 and result.trials[0]["state"] == "COMPLETE"
    err = capsys.readouterr().err
    assert err.startswith("trial 1/50  ndcg@10 ") and len(err.strip().splitlines()) == 1


def test_default_search_space_searches_n_factors_for_bilinear_only():
    bilinear = default_search_space({"model": "bilinear"})
    assert set(bilinear) == {
        "learning_rate", "l2", "epochs", "batch_size", "n_factors", "ranking_bias_scale"
    }  # fmt: skip
    assert bilinear["learning_rate"] == FloatRange(1e-3, 5e-2, log=True)
    assert bilinear["l2"] == FloatRange(1e-6, 1e-3, log=True)
    assert bilinear["epochs"] == IntRange(5, 30)
    assert bilinear["batch_size"] == Categorical((512, 1024, 2048, 4096))
    assert bilinear["ranking_bias_scale"] == FloatRange(0.5, 1.0)
    assert "n_factors" not in default_search_space({"model": "deep"})


def test_default_search_space_searches_the_ranking_bias_only_where_there_is_one():
    assert "ranking_bias_scale" not in default_search_space({"model": "deep"})
    assert "ranking_bias_scale" not in default_search_space({"item_bias": False})
    assert "ranking_bias_scale" in default_search_space({"model": "fm"})


def _expect_error(capsys, fragment, *args):
    code, out, err = run(capsys, *args)
    assert code == 2, (out, err)
    assert err.startswith("tripletrec: error:") and fragment in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@needs_optuna
def test_bad_inputs_get_one_line_and_exit_code_2(capsys, tmp_path):
    out = str(tmp_path / "best.json")
    _expect_error(capsys, "unknown metric", "tune", *QUICK, "--metric", "bogus@10", "--out", out)
    _expect_error(capsys, "--trials must be at least 1", "tune", *QUICK, "--trials", "0")
    _expect_error(capsys, "--timeout must be a positive", "tune", *QUICK, "--timeout", "0")
    _expect_error(capsys, "--timeout must be a positive", "tune", *QUICK, "--timeout", "-5")
    _expect_error(capsys, "--timeout must be a positive", "tune", *QUICK, "--timeout", "inf")
    _expect_error(
        capsys, "validation-fraction in (0, 1)", "tune", *QUICK, "--validation-fraction", "0"
    )
    _expect_error(
        capsys,
        "that name is the trial log's",
        "tune",
        *QUICK,
        "--out",
        str(tmp_path / "tuning.json"),
    )
    _expect_error(capsys, "no such config file", "tune", "--config", str(tmp_path / "nope.json"))
    assert not (tmp_path / "best.json").exists()


def test_bad_arguments_of_the_python_api():
    with pytest.raises(TripletrecError, match="unknown model parameter"):
        tune(RunConfig(estimator=TRIPLET), search_space={"learning_rat": FloatRange(1e-3, 1e-2)})
    with pytest.raises(TripletrecError, match="trials"):
        tune(RunConfig(estimator=TRIPLET), n_trials=0)
    with pytest.raises(TripletrecError, match="timeout"):
        tune(RunConfig(estimator=TRIPLET), timeout_seconds=float("nan"))
    with pytest.raises(TripletrecError, match="low > 0"):
        FloatRange(0.0, 1.0, log=True)
    with pytest.raises(TripletrecError, match="low <= high"):
        IntRange(5, 1)
    with pytest.raises(TripletrecError, match="at least one choice"):
        Categorical(())


def test_missing_optuna_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` raises ImportError
    with pytest.raises(TripletrecError, match=r"tripletrec\[tune\]"):
        tune(RunConfig(estimator=TRIPLET), n_trials=1, search_space=SMALL_SPACE)


@needs_optuna
@pytest.mark.slow  # trials train on anime-tv
def test_first_trial_is_the_configs_own_model():
    config = RunConfig(estimator=TRIPLET)
    config.model.update(learning_rate=0.02, n_factors=32, batch_size=4096, epochs=1)
    result = tune(config, n_trials=1, search_space=SMALL_SPACE)
    assert result.trials[0]["params"] == {
        "learning_rate": 0.02, "n_factors": 32, "epochs": 1, "batch_size": 4096,
    }  # fmt: skip
    # A starting value outside the space is left to the sampler.
    config.model["n_factors"] = 64
    params = tune(config, n_trials=1, search_space=SMALL_SPACE).trials[0]["params"]
    assert params["learning_rate"] == 0.02 and params["n_factors"] in (16, 32)


@needs_optuna
@pytest.mark.slow  # trials train on anime-tv
@pytest.mark.parametrize("sparse", [False, True])
def test_trials_train_as_train_will_with_features_and_sparse_gradients(monkeypatch, sparse):
    config = RunConfig(estimator=TRIPLET)
    config.data.features = True
    config.training.sparse_gradients = sparse
    models = []
    real_evaluate = tuning.evaluate

    def spy_evaluate(model, fit_part, validation, metrics):
        models.append(model)
        return real_evaluate(model, fit_part, validation, metrics)

    monkeypatch.setattr(tuning, "evaluate", spy_evaluate)
    result = tune(config, n_trials=1, search_space=SMALL_SPACE)
    (model,) = models
    assert model.item_encoder_ is not None  # the dataset's built-in item features
    gradients = getattr(model, "data_parallel_", {}).get("gradients", "dense")
    assert gradients == ("sparse" if sparse else "dense")
    best = result.best_config.to_dict()
    assert best["data"]["features"] is True
    assert best["training"]["sparse_gradients"] is sparse
