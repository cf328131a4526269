"""The model flags of ``train`` / ``tune``, generated from TripletRecommender's signature."""

import argparse
import inspect
import json
import re
import typing
from typing import Literal

import pytest

from tripletrec.cli import main
from tripletrec.cli.model_flags import (
    EXCLUDED,
    docstring_parameters,
    first_sentences,
    model_flags,
)
from tripletrec.cli.parser import build_parser
from tripletrec.models.triplet import TripletRecommender
from tripletrec.training.losses import LOSSES
from tripletrec.training.sampling import SAMPLERS


def _train_actions() -> tuple[dict[str, argparse.Action], argparse.ArgumentParser]:
    parser = build_parser(TripletRecommender)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    actions: dict[str, argparse.Action] = {}
    for action in sub.choices["train"]._actions:
        actions.setdefault(action.dest, action)  # --random-state, not its alias --seed
    return actions, sub.choices["train"]


def _parse(*flags: str) -> argparse.Namespace:
    return build_parser(TripletRecommender).parse_args(["train", *flags])


def test_every_constructor_parameter_has_a_flag_with_its_docstring_help():
    actions, train = _train_actions()
    params = [p for p in inspect.signature(TripletRecommender.__init__).parameters if p != "self"]
    docs = docstring_parameters(TripletRecommender.__doc__)
    assert {"verbose"} == EXCLUDED
    for name in params:
        if name in EXCLUDED:
            assert name not in actions
            continue
        action = actions[name]
        assert action.option_strings[0] == "--" + name.replace("_", "-")
        sentence = first_sentences(docs[name][1])
        assert len(sentence) > 10, name  # the docstring documents it
        assert sentence in " ".join(action.help.replace("%%", "%").split()), name
    text = train.format_help()  # argparse expands % in help: it must not fail
    for name in ("learn-temperature", "negative-alpha", "init-scale", "identity-dropout",
                 "validation-metric"):  # fmt: skip
        assert f"--{name}" in text  # the flags the hand-written list had left out


def test_docstring_markup_is_removed_from_the_help():
    actions, _ = _train_actions()
    assert actions["negative_alpha"].help.startswith("Exponent of the popularity sampler.")
    assert "``" not in actions["feature_weight"].help
    assert actions["feature_weight"].help.startswith(
        "With side features: an entity's vector is its identity embedding plus feature_weight"
    )


def test_choices_come_from_the_literal_annotations():
    actions, _ = _train_actions()
    hints = typing.get_type_hints(TripletRecommender.__init__)
    docs = docstring_parameters(TripletRecommender.__doc__)
    literal_typed = {
        name: typing.get_args(hint) for name, hint in hints.items()
        if typing.get_origin(hint) is Literal
    }  # fmt: skip
    assert set(literal_typed) == {
        "model", "similarity", "loss", "negatives", "batch_by", "gradients", "lr_schedule"
    }  # fmt: skip
    for name, values in literal_typed.items():
        assert tuple(actions[name].choices) == values, name
        # The docstring's {"a", "b"} type documents the same values, in the same order.
        assert tuple(re.findall(r'"([^"]*)"', docs[name][0])) == values, name
    assert tuple(actions["model"].choices) == ("bilinear", "deep", "fm")
    assert literal_typed["loss"] == LOSSES
    assert literal_typed["negatives"] == ("auto", *SAMPLERS)
    with pytest.raises(SystemExit) as exit_info:
        _parse("--model", "svd")
    assert exit_info.value.code == 2


def test_flag_values_are_typed_from_the_annotations():
    args = _parse(
        "--n-factors", "16", "--max-norm", "none", "--ranking-bias-scale", "auto",
        "--hidden-layers", "64,32", "--no-item-bias", "--learn-temperature",
        "--patience", "None", "--learning-rate", "0.5", "--seed", "7",
    )  # fmt: skip
    assert args.n_factors == 16 and args.max_norm is None and args.ranking_bias_scale == "auto"
    assert args.hidden_layers == [64, 32] and args.item_bias is False
    assert args.learn_temperature is True and args.patience is None
    assert args.learning_rate == 0.5 and args.random_state == 7
    assert _parse("--ranking-bias-scale", "0.5").ranking_bias_scale == 0.5
    # bool or "auto": true / false (any case) or the word.
    assert _parse("--user-history", "auto").user_history == "auto"
    assert _parse("--user-history", "True").user_history is True
    assert _parse("--user-history", "false").user_history is False
    assert not hasattr(_parse(), "n_factors")  # not given: the preset / config decides


@pytest.mark.parametrize(
    "flags", [["--n-factors", "abc"], ["--max-norm", "big"], ["--hidden-layers", "64,x"],
              ["--ranking-bias-scale", "huge"], ["--n-factors", "none"],
              ["--user-history", "maybe"]]
)  # fmt: skip
def test_bad_flag_values_are_usage_errors(flags, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parse(*flags)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "tripletrec train: error: argument --" in err and ("expected" in err or "not" in err)


def test_a_parameter_without_a_flag_yet_gets_one():
    class Extended(TripletRecommender):
        """Doc.

        Parameters
        ----------
        tempo : {"slow", "fast"}
            How fast. More text.
        damping : float or None
            Damping of the thing.
        name : str
            Any word.
        """

        def __init__(
            self, tempo: Literal["slow", "fast"] = "slow", damping: float | None = 0.5,
            name: str = "x",
        ) -> None:  # fmt: skip
            self.tempo, self.damping, self.name = tempo, damping, name

    flags = {f.name: f for f in model_flags(Extended)}
    assert set(flags) == {"tempo", "damping", "name"}
    assert flags["tempo"].kwargs["choices"] == ("slow", "fast")
    assert "choices" not in flags["name"].kwargs  # a plain str takes any word
    assert flags["tempo"].help == "How fast."
    assert flags["damping"].kwargs["type"]("none") is None


def test_flags_round_trip_through_config_json_and_train_config(small_csv, tmp_path, capsys):
    flags = {
        "--similarity": "cosine", "--learn-temperature": None, "--loss": "bpr",
        "--negatives": "popularity", "--negative-alpha": "0.5", "--init-scale": "0.02",
        "--identity-dropout": "0.0", "--validation-metric": "auc", "--max-norm": "none",
        "--n-factors": "8", "--epochs": "1", "--batch-size": "256", "--no-item-bias": None,
    }  # fmt: skip
    argv = [
        a for flag, value in flags.items() for a in ([flag] if value is None else [flag, value])
    ]
    common = ["--user-col", "u", "--item-col", "i", "--quiet"]
    first = tmp_path / "first"
    assert main(["train", "--estimator", "triplet", str(small_csv), *common, *argv,
                 "--out", str(first)]) == 0  # fmt: skip
    saved = json.loads((first / "config.json").read_text())["model"]
    expected = {
        "similarity": "cosine", "learn_temperature": True, "loss": "bpr",
        "negatives": "popularity", "negative_alpha": 0.5, "init_scale": 0.02,
        "identity_dropout": 0.0, "validation_metric": "auc", "max_norm": None,
        "n_factors": 8, "epochs": 1, "batch_size": 256, "item_bias": False, "random_state": 0,
    }  # fmt: skip
    assert {k: saved[k] for k in expected} == expected
    second = tmp_path / "second"
    assert main(["train", "--config", str(first / "config.json"), "--quiet",
                 "--out", str(second)]) == 0  # fmt: skip
    assert json.loads((second / "config.json").read_text()) == json.loads(
        (first / "config.json").read_text()
    )
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (first, second)]
    assert metrics[0]["auc"] == metrics[1]["auc"]  # same config, same seed: same model
    capsys.readouterr()
