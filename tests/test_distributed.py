"""Data-parallel training: torchrun with 2 processes matches 1, sparse gradients, lazy Adam."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist

import tripletrec as tr
from tripletrec.cli import main
from tripletrec.models.scorers import BilinearScorer, DeepScorer, FactorizationMachineScorer
from tripletrec.models.triplet.distributed import DataParallelPlan, fit_data_parallel
from tripletrec.models.triplet.trainer import StepInputs
from tripletrec.training.distributed import (
    TORCHRUN_VARIABLES,
    DistributedContext,
    RowSparseAdam,
    init_distributed,
    sparse_embeddings,
)
from tripletrec.training.loop import TrainingSchedule
from tripletrec.training.losses import resolve_loss

HERE = Path(__file__).resolve().parent
needs_gloo = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="this torch build has no torch.distributed with the gloo backend",
)
#: Settings shared by the one- and two-process command lines: short but converged enough
#: that the AUC compares training, not noise.
DENSE = ["--estimator", "triplet", "--epochs", "6", "--n-threads", "1", "--quiet"]
SPARSE = [
    *("--estimator", "triplet"),
    *("--loss", "bpr", "--negatives", "uniform", "--batch-size", "4096"),
    *("--learning-rate", "0.02", "--epochs", "8", "--validation-fraction", "0"),
    *("--n-threads", "1", "--quiet", "--sparse-gradients"),
]


@pytest.fixture(scope="module")
def split(anime_tv):
    train, test = tr.random_split(anime_tv, test_size=0.2, random_state=42)
    return train.positives(7), test.positives(7)


def torchrun(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node 2 ARGS`` with one thread per process."""
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARIABLES}
    env["OMP_NUM_THREADS"] = "1"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    result = subprocess.run(
        [*command, "--nproc_per_node", "2", *args],
        env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def cli_auc(capsys, *args: str) -> float:
    assert main(["train", *args]) == 0
    out = capsys.readouterr().out
    return float(out.split("test AUC ")[1].split()[0])


# ---------------------------------------------------------------------- two processes
@needs_gloo
@pytest.mark.slow
def test_torchrun_two_processes_match_one(tmp_path, capsys, split):
    one = cli_auc(capsys, *DENSE)
    out = tmp_path / "ddp"
    result = torchrun("-m", "tripletrec", "train", *DENSE, "--out", str(out))
    assert result.stdout.count("test AUC") == 1  # rank 0 alone evaluates and prints
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["backend"] == "gloo"
    assert metrics["gradients"] == "dense" and metrics["peak_rss_mb"] > 0
    assert abs(metrics["auc"] - one) < 0.005, (metrics["auc"], one)
    # Validation ran on rank 0 during training, as in one process.
    assert "validation_auc" in json.loads((out / "history.json").read_text())[-1]
    model = tr.load_model(out)
    assert isinstance(model, tr.TripletRecommender)
    items, _ = model.recommend([1], k=5)
    assert items.shape == (1, 5) and not np.isin(items[0], [-1]).any()
    assert tr.evaluate(model, *split)["auc"] == pytest.approx(metrics["auc"], abs=1e-9)


@needs_gloo
@pytest.mark.slow
def test_torchrun_sparse_gradients_match_one_process(tmp_path, capsys):
    one = cli_auc(capsys, *SPARSE)
    out = tmp_path / "sparse"
    torchrun("-m", "tripletrec", "train", *SPARSE, "--out", str(out))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["gradients"] == "sparse"
    assert abs(metrics["auc"] - one) < 0.005, (metrics["auc"], one)


@needs_gloo
@pytest.mark.slow  # starts two torchrun processes
def test_ddp_averages_dense_and_sparse_gradients_over_ranks():
    # Half a batch on each of 2 ranks = the whole batch in one process, to float rounding.
    result = torchrun(str(HERE / "ddp_gradients_script.py"))
    assert "rank 0 ok" in result.stdout


# ---------------------------------------------------------------------- one process
def test_one_process_dense_trains_what_fit_trains(split):
    train, test = split
    # Two float32 paths drift apart with the step size; this one, with a little weight
    # decay to damp the drift, keeps them within 1e-4 (without it: 10 weights in 590,080
    # differ by up to 5e-4).
    settings = dict(
        epochs=2, batch_size=2048, learning_rate=0.02, l2=3.5e-5, random_state=0, n_threads=1
    )
    fused = tr.TripletRecommender(**settings).fit(train)
    parallel = fit_data_parallel(tr.TripletRecommender(**settings), train)
    assert parallel.data_parallel_ == {
        "world_size": 1, "backend": None, "gradients": "dense", "sparse_tables": [],
    }  # fmt: skip
    np.testing.assert_allclose(
        parallel.module_.user_embedding.weight.detach(),
        fused.module_.user_embedding.weight.detach(),
        atol=1e-4,
    )
    assert tr.evaluate(parallel, train, test)["auc"] == pytest.approx(
        tr.evaluate(fused, train, test)["auc"], abs=1e-4
    )


def test_sparse_gradients_train_saves_and_loads(split, tmp_path):
    train, test = split
    model = tr.TripletRecommender(
        loss="bpr", negatives="uniform", batch_size=4096, learning_rate=0.02, epochs=4,
        random_state=0, n_threads=1,
    )  # fmt: skip
    fit_data_parallel(model, train, sparse_gradients=True)
    assert model.data_parallel_["gradients"] == "sparse"
    assert model.data_parallel_["sparse_tables"] == [
        "user_embedding",
        "item_embedding",
        "item_bias",
    ]
    assert not model.module_.user_embedding.sparse  # back to normal for serving
    auc = tr.evaluate(model, train, test)["auc"]
    assert auc > 0.81  # a couple of points below what this fit reaches
    model.save(tmp_path / "m")
    again = tr.load_model(tmp_path / "m")
    assert tr.evaluate(again, train, test)["auc"] == pytest.approx(auc, abs=1e-12)


def test_sparse_step_moves_only_the_rows_of_the_batch():
    scorer = BilinearScorer(50, 40, 8, "dot", True, 0.05, torch.Generator().manual_seed(0))
    plan = DataParallelPlan(DistributedContext(), sparse_gradients=True)
    schedule = TrainingSchedule(1, 2, learning_rate=0.1, l2=1e-3)
    step = plan.training_step(
        StepInputs(scorer, resolve_loss("bpr", 1.0, "uniform", 40), schedule, 1, None)
    )
    assert all(table.sparse for table in (scorer.user_embedding, scorer.item_embedding))
    before = [p.detach().clone() for p in scorer.parameters()]
    users, positives, negatives = torch.tensor([3, 7]), torch.tensor([1, 2]), torch.tensor([5, 1])
    step(users, positives, negatives)
    moved = [
        torch.nonzero((p.detach() != b).any(dim=1)).flatten().tolist()
        for p, b in zip(scorer.parameters(), before)
    ]
    assert moved == [[3, 7], [1, 2, 5], [1, 2, 5]]
    plan.after_training(scorer)
    assert not any(table.sparse for table in (scorer.user_embedding, scorer.item_embedding))


def test_which_tables_can_be_sparse():
    generator = torch.Generator().manual_seed(0)
    dot = BilinearScorer(5, 4, 2, "dot", True, 0.05, generator)
    cosine = BilinearScorer(5, 4, 2, "cosine", False, 0.05, generator)
    uniform, in_batch = resolve_loss("bpr"), resolve_loss("softmax", 1.0, "in_batch")
    assert sparse_embeddings(dot, uniform) == [
        dot.user_embedding,
        dot.item_embedding,
        dot.item_bias,
    ]
    full_softmax = resolve_loss("softmax", 1.0, "all")  # reads every item
    assert sparse_embeddings(dot, full_softmax) == [dot.user_embedding]
    assert sparse_embeddings(cosine, in_batch) == [cosine.user_embedding]
    fm = FactorizationMachineScorer(5, 4, 2, 0.05, generator)
    assert sparse_embeddings(fm, uniform) == [
        fm.user_embedding, fm.user_linear, fm.item_embedding, fm.item_bias,
    ]  # fmt: skip
    deep = DeepScorer(5, 4, 2, 3, (4,), 0.0, 0.05, generator, dot_factors=2)
    assert sparse_embeddings(deep, full_softmax) == [deep.user_embedding, deep.user_dot]


def test_a_data_parallel_plan_splits_the_batch_and_the_positives():
    plan = DataParallelPlan(DistributedContext(rank=1, world_size=3, backend="gloo"))
    schedule = plan.per_process(TrainingSchedule(2, 10, 0.1, lr_schedule="linear"))
    assert (schedule.batch_size, schedule.lr_schedule) == (3, "linear")
    with pytest.raises(tr.ParameterError, match="batch_size 2 is smaller than 3 processes"):
        plan.per_process(TrainingSchedule(2, 2, 0.1))
    users, items = np.arange(10), np.arange(10) + 100
    rng = np.random.default_rng(0)
    mine, their_items, _ = plan.shard(users, items, rng)
    assert len(mine) == 3 and set(mine) <= set(users) and (their_items == mine + 100).all()
    others = [DataParallelPlan(DistributedContext(r, 3, backend="gloo")) for r in (0, 2)]
    shards = [p.shard(users, items, np.random.default_rng(0))[0] for p in others]
    assert not set(mine) & set(shards[0]) and not set(mine) & set(shards[1])
    with pytest.raises(tr.DataError, match="2 training positives cannot feed 3 processes"):
        plan.shard(users[:2], items[:2], np.random.default_rng(0))


def test_fit_data_parallel_in_one_process_is_the_fit_pipeline_with_autograd(split):
    # The same pipeline as fit: with a loss the fused step cannot train, the same weights.
    train, _ = split
    settings = dict(loss="warp", negatives="uniform", n_negatives=3, epochs=1, random_state=0,
                    n_threads=1, batch_size=4096)  # fmt: skip
    fitted = tr.TripletRecommender(**settings).fit(train)
    parallel = fit_data_parallel(tr.TripletRecommender(**settings), train)
    for name, value in fitted.module_.state_dict().items():
        torch.testing.assert_close(parallel.module_.state_dict()[name], value, rtol=0, atol=0)
    assert [r["loss"] for r in parallel.history_] == [r["loss"] for r in fitted.history_]


def test_row_sparse_adam_is_sparse_adam():
    generator = torch.Generator().manual_seed(0)
    ours = torch.nn.Parameter(torch.randn(30, 4, generator=generator))
    theirs = torch.nn.Parameter(ours.detach().clone())
    optimizers = [RowSparseAdam([ours], lr=0.05), torch.optim.SparseAdam([theirs], lr=0.05)]
    for _ in range(5):
        rows = torch.randint(0, 30, (12,), generator=generator)  # repeats: summed
        values = torch.randn(12, 4, generator=generator)
        for parameter, optimizer in zip((ours, theirs), optimizers):
            parameter.grad = torch.sparse_coo_tensor(
                rows[None], values, (30, 4), check_invariants=True
            )
            optimizer.step()
    torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=1e-5, atol=1e-6)


def test_outside_torchrun_there_is_one_process(monkeypatch):
    for name in TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    context = init_distributed()
    assert (context.rank, context.world_size, context.backend) == (0, 1, None)
    assert context.is_main and not context.distributed


@pytest.mark.slow  # trains on anime-tv, twice
def test_cli_sparse_gradients_in_one_process(tmp_path, capsys):
    out = tmp_path / "run"
    args = [*SPARSE, "--epochs", "2", "--out", str(out)]
    assert main(["train", *args]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 1 and metrics["gradients"] == "sparse"
    # The config the run saved replays it with sparse gradients, without the flag.
    config = json.loads((out / "config.json").read_text())
    assert config["training"] == {"sparse_gradients": True}
    again = tmp_path / "again"
    assert main(["train", "--config", str(out / "config.json"), "--out", str(again)]) == 0
    replayed = json.loads((again / "metrics.json").read_text())
    assert replayed["gradients"] == "sparse" and replayed["auc"] == metrics["auc"]
    capsys.readouterr()


def test_one_process_with_side_features_trains_what_fit_trains(split, anime_tv):
    from tripletrec.data.datasets import dataset_features

    _, items = dataset_features("anime-tv", anime_tv)
    train, test = split
    settings = dict(epochs=2, random_state=0, n_threads=1)
    fused = tr.TripletRecommender(**settings).fit(train, item_features=items)
    parallel = fit_data_parallel(tr.TripletRecommender(**settings), train, item_features=items)
    assert parallel.item_encoder_.feature_names_ == fused.item_encoder_.feature_names_
    assert tr.evaluate(parallel, train, test)["auc"] == pytest.approx(
        tr.evaluate(fused, train, test)["auc"], abs=1e-4
    )
