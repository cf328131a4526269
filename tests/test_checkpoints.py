"""Checkpoints and resuming: a fit interrupted and resumed is the uninterrupted fit, bitwise."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import tripletrec as tr
from tripletrec.cli import main
from tripletrec.data.synthetic import generate_synthetic
from tripletrec.exceptions import DataError, ModelFileError, ParameterError
from tripletrec.models.triplet.distributed import fit_data_parallel
from tripletrec.testing.data import block_data
from tripletrec.training.checkpoints import LATEST_FILE, META_FILE, STATE_FILE, CheckpointSettings
from tripletrec.training.process_group import DistributedContext


@cache
def small_data() -> tr.Interactions:
    return tr.Interactions.from_dataframe(generate_synthetic(300, 80, 4000, random_state=0))


BASE = dict(epochs=6, batch_size=256, random_state=0, n_threads=1)
#: Each exercises other state: the fused step (full softmax, pairwise), autograd with
#: dropout (torch's generator), a cosine schedule, WARP and sampled softmax (draws),
#: popularity negatives, identity dropout (torch's generator in the feature embedding).
CONFIGS = {
    "default-fused-softmax": dict(),
    "deep-dropout-autograd": dict(model="deep", hidden_layers=(16,), dropout=0.3, loss="margin",
                                  negatives="uniform", learning_rate=0.005, max_norm=None),
    "bpr-fused-cosine-schedule": dict(loss="bpr", negatives="exclude_positives",
                                      lr_schedule="cosine"),
    "warp-constant": dict(loss="warp", negatives="uniform", n_negatives=4,
                          lr_schedule="constant", similarity="cosine"),
    "sampled-softmax-popularity": dict(loss="softmax", negatives="popularity", n_negatives=4),
    "fm": dict(model="fm", loss="bpr", negatives="uniform", n_factors=8),
}  # fmt: skip


class Interrupted(Exception):
    pass


def stop_at(epoch: int):
    def on_epoch_end(done: int, record: dict) -> None:
        if done == epoch:
            raise Interrupted  # as a kill would: after the epoch, before its checkpoint

    return on_epoch_end


def assert_same_model(a: tr.TripletRecommender, b: tr.TripletRecommender) -> None:
    state_a, state_b = a.module_.state_dict(), b.module_.state_dict()
    assert state_a.keys() == state_b.keys()
    for key, value in state_a.items():
        assert torch.equal(value, state_b[key]), key
    users = a.user_map_.ids
    assert np.array_equal(a.score(users), b.score(users))
    assert [r["loss"] for r in a.history_] == [r["loss"] for r in b.history_]


def interrupted_and_resumed(fit, tmp_path: Path, every: int = 3, stop: int = 5):
    """``fit(model, **checkpoint kwargs)`` stopped by an error in epoch ``stop``, then
    resumed; returns the resumed model."""
    with pytest.raises(Interrupted):
        fit(checkpoint_dir=tmp_path, checkpoint_every=every, on_epoch_end=stop_at(stop))
    latest = json.loads((tmp_path / LATEST_FILE).read_text())
    assert latest["epoch"] == every * ((stop - 1) // every)
    return fit(checkpoint_dir=tmp_path, checkpoint_every=every, resume=True)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_a_resumed_fit_is_the_uninterrupted_fit_bitwise(name, tmp_path):
    settings = BASE | CONFIGS[name]
    data = small_data()

    def fit(**kwargs):
        return tr.TripletRecommender(**settings).fit(data, **kwargs)

    resumed = interrupted_and_resumed(fit, tmp_path)
    assert resumed.resumed_epoch_ == 3
    assert_same_model(fit(), resumed)


def test_resuming_keeps_early_stopping_and_validation_state(tmp_path):
    data = small_data()
    fit_part, validation = tr.validation_split(data, 0.2, 0)
    settings = BASE | dict(epochs=12, patience=2, learning_rate=0.2, lr_schedule="constant")

    def fit(**kwargs):
        model = tr.TripletRecommender(**settings)
        return model.fit(fit_part, validation=validation, **kwargs)

    plain = fit()
    assert len(plain.history_) < 12  # it stopped early: the monitor's state matters
    resumed = interrupted_and_resumed(fit, tmp_path, every=2, stop=len(plain.history_) - 1)
    assert_same_model(plain, resumed)
    assert resumed.best_epoch_ == plain.best_epoch_
    validation_keys = [k for k in plain.history_[0] if k.startswith("validation_")]
    assert validation_keys
    for mine, theirs in zip(resumed.history_, plain.history_, strict=True):
        assert [mine[k] for k in validation_keys] == [theirs[k] for k in validation_keys]


def test_identity_dropout_with_features_resumes_bitwise(tmp_path):
    blocks = block_data()
    features = blocks.block_features(blocks.item_ids)
    settings = BASE | dict(identity_dropout=0.5, batch_size=64, epochs=6)

    def fit(**kwargs):
        return tr.TripletRecommender(**settings).fit(
            blocks.interactions, item_features=features, **kwargs
        )

    assert_same_model(fit(), interrupted_and_resumed(fit, tmp_path))


def test_sparse_gradients_in_one_process_resume_bitwise(tmp_path):
    data = small_data()
    settings = BASE | dict(loss="bpr", negatives="uniform", max_norm=None)

    def fit(checkpoint_dir=None, checkpoint_every=None, resume=False, on_epoch_end=None):
        checkpoints = CheckpointSettings.of(checkpoint_dir, checkpoint_every, resume)
        model = tr.TripletRecommender(**settings)
        return fit_data_parallel(
            model, data, sparse_gradients=True, checkpoints=checkpoints,
            on_epoch_end=on_epoch_end,
        )  # fmt: skip

    plain = fit()
    assert plain.data_parallel_["gradients"] == "sparse"  # RowSparseAdam's state is in it
    assert_same_model(plain, interrupted_and_resumed(fit, tmp_path))


def test_checkpoint_directory_layout_and_no_pickle(tmp_path):
    model = tr.TripletRecommender(**BASE).fit(small_data(), checkpoint_dir=tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["epoch-0005", "epoch-0006", LATEST_FILE]  # the last two, no leftovers
    assert json.loads((tmp_path / LATEST_FILE).read_text())["checkpoint"] == "epoch-0006"
    final = tmp_path / "epoch-0006"
    meta = json.loads((final / META_FILE).read_text())
    assert meta["final"] and meta["epoch"] == 6 and len(meta["history"]) == 6
    assert meta["numpy_rng"]["bit_generator"] == "PCG64"
    tensors = load_file(str(final / STATE_FILE))  # bare tensors, nothing executable
    weights = {k[len("scorer.") :]: v for k, v in tensors.items() if k.startswith("scorer.")}
    for key, value in model.module_.state_dict().items():
        assert torch.equal(weights[key], value)
    assert any(k.endswith(".exp_avg_sq") for k in tensors)
    assert "rng.torch" in tensors


def test_resume_without_a_checkpoint_starts_afresh(tmp_path):
    data = small_data()
    resumed = tr.TripletRecommender(**BASE).fit(data, checkpoint_dir=tmp_path / "new", resume=True)
    assert resumed.resumed_epoch_ == 0
    assert_same_model(tr.TripletRecommender(**BASE).fit(data), resumed)


def test_resuming_a_finished_fit_trains_nothing(tmp_path):
    data = small_data()
    plain = tr.TripletRecommender(**BASE).fit(data, checkpoint_dir=tmp_path)
    epochs_run = []
    again = tr.TripletRecommender(**BASE).fit(
        data, checkpoint_dir=tmp_path, resume=True, on_epoch_end=lambda e, r: epochs_run.append(e)
    )
    assert epochs_run == [] and again.resumed_epoch_ == 6
    assert_same_model(plain, again)


def test_resuming_with_other_settings_or_data_fails_clearly(tmp_path):
    data = small_data()
    with pytest.raises(Interrupted):
        tr.TripletRecommender(**BASE).fit(data, checkpoint_dir=tmp_path, on_epoch_end=stop_at(2))
    other = tr.TripletRecommender(**BASE | dict(learning_rate=0.05))
    with pytest.raises(ParameterError, match=r"other settings \(learning_rate=0.04 there, 0.05"):
        other.fit(data, checkpoint_dir=tmp_path, resume=True)
    fewer = tr.Interactions.from_dataframe(generate_synthetic(300, 80, 3900, random_state=0))
    with pytest.raises(DataError, match="other training data"):
        tr.TripletRecommender(**BASE).fit(fewer, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(ParameterError, match="pass resume=True"):
        tr.TripletRecommender(**BASE).fit(data, checkpoint_dir=tmp_path)


def test_a_damaged_checkpoint_is_refused(tmp_path):
    data = small_data()
    tr.TripletRecommender(**BASE).fit(data, checkpoint_dir=tmp_path)
    state = tmp_path / "epoch-0006" / STATE_FILE
    payload = bytearray(state.read_bytes())
    payload[-3] ^= 0xFF
    state.write_bytes(bytes(payload))
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        tr.TripletRecommender(**BASE).fit(data, checkpoint_dir=tmp_path, resume=True)
    # A consistent file (checksum updated) that lacks a tensor: refused, not a KeyError.
    tensors = load_file(str(tmp_path / "epoch-0005" / STATE_FILE))
    del tensors["rng.torch"]
    save_file(tensors, str(tmp_path / "epoch-0005" / STATE_FILE))
    meta_path = tmp_path / "epoch-0005" / META_FILE
    meta = json.loads(meta_path.read_text())
    meta["state_sha256"] = hashlib.sha256(
        (tmp_path / "epoch-0005" / STATE_FILE).read_bytes()
    ).hexdigest()
    meta_path.write_text(json.dumps(meta))
    (tmp_path / LATEST_FILE).write_text(json.dumps({"checkpoint": "epoch-0005"}))
    with pytest.raises(ModelFileError, match="does not fit this fit"):
        tr.TripletRecommender(**BASE).fit(data, checkpoint_dir=tmp_path, resume=True)
    (tmp_path / LATEST_FILE).write_text("{not json")
    with pytest.raises(ModelFileError, match="corrupt JSON"):
        tr.TripletRecommender(**BASE).fit(data, checkpoint_dir=tmp_path, resume=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(checkpoint_every=2), "need a checkpoint_dir"),
        (dict(resume=True), "need a checkpoint_dir"),
        (dict(checkpoint_dir="x", checkpoint_every=0), "checkpoint_every must be a positive"),
    ],
)
def test_bad_checkpoint_arguments(kwargs, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ParameterError, match=message):
        tr.TripletRecommender(**BASE).fit(small_data(), **kwargs)


def test_a_data_parallel_job_refuses_checkpoints(tmp_path):
    job = DistributedContext(rank=0, world_size=2, backend="gloo")
    with pytest.raises(ParameterError, match="not supported in a data-parallel job"):
        fit_data_parallel(
            tr.TripletRecommender(**BASE), small_data(), context=job,
            checkpoints=CheckpointSettings(tmp_path),
        )  # fmt: skip
    assert not any(tmp_path.iterdir())  # refused before any work


# ---------------------------------------------------------------------------- command line
def write_csv(path: Path, n_users: int = 1500, n_items: int = 200, n: int = 30000) -> Path:
    generate_synthetic(n_users, n_items, n, random_state=0).to_csv(path, index=False)
    return path


TRAIN_FLAGS = [
    "--estimator",
    "triplet",
    "--epochs",
    "30",
    "--n-threads",
    "1",
    "--quiet",
    "--validation-fraction",
    "0.1",
]


@pytest.mark.slow
def test_a_killed_training_resumes_to_the_uninterrupted_model(tmp_path):
    data = write_csv(tmp_path / "data.csv")
    command = [sys.executable, "-c", "import sys; from tripletrec.cli import main; "
               "sys.exit(main(sys.argv[1:]))"]  # fmt: skip
    flags = [str(data), *TRAIN_FLAGS, "--checkpoint-every", "2"]
    whole = subprocess.run([*command, "train", *flags, "--out", str(tmp_path / "whole")],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert whole.returncode == 0, whole.stderr

    out = tmp_path / "killed"
    process = subprocess.Popen(
        [*command, "train", *flags, "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    latest = out / "checkpoints" / LATEST_FILE
    deadline = time.monotonic() + 240
    while not latest.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert latest.exists() and not (out / "model.json").exists()  # killed mid-training
    killed_at = json.loads(latest.read_text())["epoch"]
    assert 2 <= killed_at < 30

    resumed = subprocess.run([*command, "train", "--resume", str(out), "--quiet"],
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch" in resumed.stdout
    a, b = tr.load_model(tmp_path / "whole"), tr.load_model(out)
    assert np.array_equal(a.score(a.user_map_.ids), b.score(b.user_map_.ids))
    assert a.history_[-1]["loss"] == b.history_[-1]["loss"]
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (tmp_path / "whole", out)]
    assert metrics[0]["auc"] == metrics[1]["auc"]
    assert (out / "checkpoints" / LATEST_FILE).exists()  # kept for fit_partial


def expect_error(capsys, message: str, *argv: str) -> None:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_checkpoint_and_resume_flags_fail_clearly(tmp_path, capsys):
    data = write_csv(tmp_path / "data.csv", 200, 50, 2000)
    expect_error(capsys, "--checkpoint-every needs --out", "train", "-e", "triplet", str(data),
                 "--checkpoint-every", "2")  # fmt: skip
    expect_error(capsys, "no config.json", "train", "--resume", str(tmp_path))
    flags = [*TRAIN_FLAGS[:2], *TRAIN_FLAGS[4:], "--epochs", "2"]
    assert main(["train", str(data), *flags, "--out", str(tmp_path / "plain")]) == 0
    expect_error(capsys, "has no checkpoints", "train", "--resume", str(tmp_path / "plain"))
    expect_error(capsys, "--n-factors cannot change it", "train", "--resume",
                 str(tmp_path / "plain"), "--n-factors", "8")  # fmt: skip
    expect_error(capsys, "--data names new positives for --resume", "train", str(data),
                 "--data", str(data))  # fmt: skip
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    expect_error(capsys, "not a tripletrec run directory", "train", str(data), *flags,
                 "--out", str(tmp_path / "busy"), "--checkpoint-every", "1")  # fmt: skip
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_resuming_a_finished_checkpointed_run_rebuilds_the_same_model(tmp_path, capsys):
    data = write_csv(tmp_path / "data.csv", 200, 50, 2000)
    out = tmp_path / "run"
    argv = [
        "train",
        str(data),
        *TRAIN_FLAGS[:2],
        *TRAIN_FLAGS[4:],
        "--epochs",
        "3",
        "--out",
        str(out),
    ]
    assert main([*argv, "--checkpoint-every", "2"]) == 0
    first = tr.load_model(out)
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert "training had finished" in capsys.readouterr().out
    again = tr.load_model(out)
    assert np.array_equal(first.score(first.user_map_.ids), again.score(again.user_map_.ids))
