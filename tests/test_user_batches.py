"""batch_by: per-user batches of the full softmax (each user's positives together, one
normaliser per user and batch) train the same objective as shuffled positives; "auto"
groups by user only where shuffled positives cost too much; resolved once, saved."""

import copy
import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tripletrec import TripletRecommender
from tripletrec.exceptions import ParameterError
from tripletrec.models.scorers import BilinearScorer
from tripletrec.models.triplet.fused import FusedBilinearStep
from tripletrec.persistence import load_model
from tripletrec.training import losses
from tripletrec.training.loop import TrainingSchedule, epoch_order
from tripletrec.training.losses import (
    FULL_SOFTMAX_PAIR_BUDGET,
    PER_POSITIVE_PAIR_BUDGET,
    full_softmax_pairs,
    resolve_batch_by,
    resolve_loss,
    resolve_negatives,
)

SMALL = dict(n_factors=4, epochs=2, batch_size=16, random_state=3)


@pytest.fixture(scope="module")
def data(small_positives) -> sp.csr_matrix:
    return small_positives


def _users(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 50, 400)


def test_user_order_keeps_each_users_positives_together():
    users = _users()
    order = epoch_order(users, np.random.default_rng(1), "user")
    np.testing.assert_array_equal(np.sort(order), np.arange(len(users)))  # a permutation
    visited = users[order]
    runs = visited[np.r_[True, visited[1:] != visited[:-1]]]
    assert len(runs) == len(np.unique(users))  # one run per user: contiguous
    # users come in a random order, not sorted, and the order changes with the draw
    assert not np.all(np.diff(runs) > 0)
    other = epoch_order(users, np.random.default_rng(2), "user")
    assert not np.array_equal(order, other)
    np.testing.assert_array_equal(order, epoch_order(users, np.random.default_rng(1), "user"))


@pytest.mark.parametrize("n_users", [50, 70_000])  # 16-bit user ranks, and wider ones
def test_user_order_is_the_stable_sort_of_the_drawn_user_ranks(n_users):
    users = np.random.default_rng(5).integers(0, n_users, 3_000)
    rng = np.random.default_rng(6)
    order = rng.permutation(len(users))
    user_rank = rng.permutation(int(users.max()) + 1)
    expected = order[np.argsort(user_rank[users[order]], kind="stable")]
    np.testing.assert_array_equal(epoch_order(users, np.random.default_rng(6), "user"), expected)


def test_positive_order_is_the_plain_shuffle():
    users = _users()
    expected = np.random.default_rng(4).permutation(len(users))
    np.testing.assert_array_equal(
        epoch_order(users, np.random.default_rng(4), "positive"), expected
    )


@pytest.mark.parametrize("similarity", ["cosine", "dot"])
def test_a_per_user_batch_has_the_loss_and_gradients_of_the_per_positive_form(similarity):
    # The fused step scores each distinct user of a batch once (one normaliser per user);
    # on a batch of two users' positives it must give the per-positive loss
    # mean_t(logsumexp_i s(u_t, i) - s(u_t, pos_t)) and its gradients, as autograd does.
    generator = torch.Generator().manual_seed(0)
    scorer = BilinearScorer(6, 12, 5, similarity, True, init_scale=0.5, generator=generator)
    torch.nn.init.normal_(scorer.item_bias.weight, std=0.1, generator=generator)
    reference = copy.deepcopy(scorer)
    users = torch.tensor([2, 2, 2, 2, 5, 5, 5])
    positives = torch.tensor([0, 3, 7, 11, 1, 3, 9])

    step = FusedBilinearStep(scorer, resolve_loss("softmax", 1.0, "all", 12), 0.01, 0.0)
    step.optimizer.step = lambda: None  # keep the gradients, skip the update
    fused_loss = step(users, positives, None)

    scores = reference.score_all(users, None, for_ranking=False)
    per_positive = (torch.logsumexp(scores, 1) - scores[torch.arange(7), positives]).mean()
    per_positive.backward()
    torch.testing.assert_close(fused_loss, per_positive.detach(), rtol=1e-6, atol=1e-7)
    for (name, mine), theirs in zip(scorer.named_parameters(), reference.parameters()):
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize(
    ("n_positives", "n_items", "expected"),
    [
        (91_591, 293, "positive"),  # anime-tv
        (44_000, 1_682, "positive"),  # MovieLens-100k, about
        (203_702, 7_157, "user"),  # the bundled anime-5k
    ],
)
def test_the_rule_on_the_benchmark_shapes(n_positives, n_items, expected):
    assert resolve_batch_by("auto", "all", n_positives, n_items) == expected


def test_the_rule_at_its_budget_and_for_other_negatives():
    assert resolve_batch_by("auto", "all", PER_POSITIVE_PAIR_BUDGET, 1) == "positive"
    assert resolve_batch_by("auto", "all", PER_POSITIVE_PAIR_BUDGET + 1, 1) == "user"
    for negatives in ("uniform", "in_batch", "popularity"):
        assert resolve_batch_by("auto", negatives, PER_POSITIVE_PAIR_BUDGET + 1, 1) == "positive"
    assert resolve_batch_by("user", "uniform", 1, 1) == "user"  # explicit: kept
    with pytest.raises(ParameterError, match="in-batch negatives"):
        resolve_batch_by("user", "in_batch", 1, 1)


@pytest.mark.parametrize(
    ("n_positives", "n_users", "n_items", "batch_by", "expected"),
    [
        (203_702, 4_714, 7_157, "auto", "all"),  # the bundled anime-5k, grouped by user
        (300_000, 15_000, 30_000, "auto", "all"),  # grouped: 4.5e8 pairs an epoch
        (300_000, 15_000, 30_000, "positive", "in_batch"),  # shuffled: 9e9
        (1_000_000, 50_000, 100_000, "auto", "in_batch"),  # grouped, still 5e9
    ],
)
def test_per_user_batches_keep_the_full_softmax_on_larger_catalogues(
    n_positives, n_users, n_items, batch_by, expected
):
    got = resolve_negatives(
        "auto", "softmax", n_positives, n_items, n_users=n_users, batch_by=batch_by
    )
    assert got == expected


def test_full_softmax_pairs_count_users_only_when_grouped():
    assert full_softmax_pairs("positive", 10**9, 10, 7) == 7 * 10**9
    assert full_softmax_pairs("user", 10**9, 10, 7) == 70
    assert full_softmax_pairs("auto", 10, 2, 7) == 70  # small: "auto" keeps positives
    big = PER_POSITIVE_PAIR_BUDGET + 1
    assert full_softmax_pairs("auto", big, 3, 1) == 3
    assert full_softmax_pairs("auto", FULL_SOFTMAX_PAIR_BUDGET, 3, 1) == 3


def test_bad_batch_by_values_fail_before_any_work(data):
    with pytest.raises(ParameterError, match="batch_by must be one of"):
        TripletRecommender(**SMALL, batch_by="item").fit(data)
    with pytest.raises(ParameterError, match="in-batch negatives"):
        TripletRecommender(**SMALL, batch_by="user", negatives="in_batch").fit(data)
    with pytest.raises(ParameterError, match="batch_by must be one of"):
        TrainingSchedule(1, 1, 0.1, batch_by="auto")


def test_auto_groups_by_user_above_the_budget(data, monkeypatch):
    assert TripletRecommender(**SMALL).fit(data).batch_by_ == "positive"
    monkeypatch.setattr(losses, "PER_POSITIVE_PAIR_BUDGET", data.nnz * data.shape[1] - 1)
    model = TripletRecommender(**SMALL).fit(data)
    assert model.batch_by_ == "user" and model.get_params()["batch_by"] == "auto"
    explicit = TripletRecommender(**SMALL, batch_by="user").fit(data)
    np.testing.assert_array_equal(explicit.score([0, 1], [2, 3]), model.score([0, 1], [2, 3]))


def test_per_user_batches_are_deterministic_and_learn(data):
    a = TripletRecommender(**SMALL, batch_by="user").fit(data)
    b = TripletRecommender(**SMALL, batch_by="user").fit(data)
    np.testing.assert_array_equal(a.score([0, 1, 2], [3, 4, 5]), b.score([0, 1, 2], [3, 4, 5]))
    shuffled = TripletRecommender(**SMALL, batch_by="positive").fit(data)
    assert not np.array_equal(a.score([0, 1], [2, 3]), shuffled.score([0, 1], [2, 3]))
    longer = TripletRecommender(**{**SMALL, "epochs": 20}, batch_by="user").fit(data)
    losses_seen = [record["loss"] for record in longer.history_]
    assert losses_seen[-1] < losses_seen[0]


def test_save_load_and_fit_partial_keep_the_resolved_grouping(data, monkeypatch, tmp_path):
    monkeypatch.setattr(losses, "PER_POSITIVE_PAIR_BUDGET", 1)
    model = TripletRecommender(**SMALL).fit(data)
    model.save(tmp_path / "m")
    monkeypatch.undo()  # within the budget now: neither loading nor fit_partial re-resolves
    loaded = load_model(tmp_path / "m")
    assert loaded.batch_by == "auto" and loaded.batch_by_ == "user"
    loaded.fit_partial(data, epochs=1)
    assert loaded.batch_by_ == "user"


def test_a_model_saved_before_batch_by_loads_as_shuffled_positives(data, tmp_path):
    model = TripletRecommender(**SMALL).fit(data)
    model.save(tmp_path / "old")
    manifest_path = tmp_path / "old" / "model.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["fit"]["batch_by"], manifest["params"]["batch_by"]  # an older file
    manifest_path.write_text(json.dumps(manifest))
    loaded = load_model(tmp_path / "old")
    assert loaded.batch_by == "auto" and loaded.batch_by_ == "positive"
    np.testing.assert_array_equal(loaded.score([0, 1], [2, 3]), model.score([0, 1], [2, 3]))
