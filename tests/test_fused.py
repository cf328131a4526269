"""The fused bilinear step must train exactly the model autograd + torch.optim.Adam would."""

import copy

import pytest
import torch

from tripletrec.exceptions import ParameterError
from tripletrec.models import scorers
from tripletrec.models.scorers import COSINE, DOT, SIMILARITIES, BilinearScorer, TripletNet
from tripletrec.models.triplet.fused import FusedBilinearStep
from tripletrec.training.loop import TrainingSchedule, autograd_step
from tripletrec.training.losses import resolve_loss
from tripletrec.training.sparse import row_sparse_step, sparse_embeddings


@pytest.mark.parametrize("similarity", FusedBilinearStep.similarities)
@pytest.mark.parametrize("loss", ["margin", "bpr"])
@pytest.mark.parametrize("item_bias", [False, True])
@pytest.mark.parametrize("l2", [0.0, 0.01])
@pytest.mark.parametrize("block_budget", [0, 1 << 22])  # the per-triplet and the block path
def test_fused_step_equals_autograd_adam(similarity, loss, item_bias, l2, block_budget):
    generator = torch.Generator().manual_seed(0)
    reference = BilinearScorer(
        40, 15, n_factors=8, similarity=similarity, item_bias=item_bias, init_scale=0.5,
        generator=generator,
    )  # fmt: skip
    if item_bias:
        torch.nn.init.normal_(reference.item_bias.weight, std=0.1, generator=generator)
    fused_model = copy.deepcopy(reference)
    schedule = TrainingSchedule(epochs=1, batch_size=32, learning_rate=0.05, l2=l2)
    slow = autograd_step(TripletNet(reference), resolve_loss(loss, 0.7), schedule)
    fast = FusedBilinearStep(fused_model, resolve_loss(loss, 0.7), 0.05, l2)
    fast.block_budget = block_budget

    data = torch.Generator().manual_seed(1)
    for _ in range(5):  # several steps: Adam's moments must agree too
        # repeated users and items in a batch exercise the scatter-add
        users = torch.randint(0, 40, (32,), generator=data)
        pos = torch.randint(0, 15, (32,), generator=data)
        neg = torch.randint(0, 15, (32,), generator=data)
        loss_slow, loss_fast = slow(users, pos, neg), fast(users, pos, neg)
        torch.testing.assert_close(loss_fast, loss_slow, rtol=1e-5, atol=1e-6)
    for name, weights in reference.state_dict().items():
        torch.testing.assert_close(fused_model.state_dict()[name], weights, rtol=1e-4, atol=1e-6)


def test_fused_step_rejects_other_losses():
    for loss in (resolve_loss("warp"), resolve_loss("softmax", negatives="popularity")):
        with pytest.raises(ParameterError, match="fused step supports"):
            FusedBilinearStep(BilinearScorer(3, 3, 2), loss, 0.01, 0.0)
    bpr = resolve_loss("bpr")
    assert FusedBilinearStep.can_train(BilinearScorer(3, 3, 2), bpr, n_negatives=1)
    assert not FusedBilinearStep.can_train(BilinearScorer(3, 3, 2), bpr, n_negatives=2)
    with_temperature = BilinearScorer(3, 3, 2, learn_temperature=True)
    assert not FusedBilinearStep.can_train(with_temperature, bpr, n_negatives=1)


def test_the_similarity_constants_name_the_literal_and_the_fused_ones_are_known():
    assert (COSINE, DOT) == SIMILARITIES
    assert set(FusedBilinearStep.similarities) <= set(SIMILARITIES)


def test_a_similarity_without_fused_gradients_is_refused(monkeypatch):
    # A similarity added to the scorer alone must never get the step's dot-product
    # gradients: can_train, which picks the step for a fit, says no, so autograd trains it.
    monkeypatch.setattr(scorers, "SIMILARITIES", (*SIMILARITIES, "euclidean"))
    scorer = BilinearScorer(3, 3, n_factors=2, similarity="euclidean")
    for loss in (resolve_loss("bpr"), resolve_loss("softmax", negatives="all")):
        assert not FusedBilinearStep.can_train(scorer, loss, n_negatives=1)
        with pytest.raises(ParameterError, match="with similarity 'euclidean'"):
            FusedBilinearStep(scorer, loss, 0.01, 0.0)


@pytest.mark.parametrize("similarity", FusedBilinearStep.similarities)
@pytest.mark.parametrize("item_bias", [False, True])
def test_fused_full_softmax_equals_autograd(similarity, item_bias):
    generator = torch.Generator().manual_seed(0)
    reference = BilinearScorer(
        40, 15, n_factors=8, similarity=similarity, item_bias=item_bias, init_scale=0.5,
        generator=generator,
    )  # fmt: skip
    fused_model = copy.deepcopy(reference)
    schedule = TrainingSchedule(epochs=1, batch_size=32, learning_rate=0.05, l2=0.01)
    full_softmax = resolve_loss("softmax", 1.0, "all", 15)
    slow = autograd_step(TripletNet(reference), full_softmax, schedule)
    fast = FusedBilinearStep(fused_model, full_softmax, 0.05, 0.01)
    data = torch.Generator().manual_seed(1)
    for _ in range(5):
        users = torch.randint(0, 40, (32,), generator=data)
        pos = torch.randint(0, 15, (32,), generator=data)
        torch.testing.assert_close(
            fast(users, pos, None), slow(users, pos, None), rtol=1e-5, atol=1e-6
        )
    for name, weights in reference.state_dict().items():
        torch.testing.assert_close(fused_model.state_dict()[name], weights, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("similarity", FusedBilinearStep.similarities)
@pytest.mark.parametrize("history", [False, True])
@pytest.mark.parametrize("gradients", ["sparse", "dense"])
def test_fused_in_batch_softmax_equals_autograd(similarity, history, gradients):
    generator = torch.Generator().manual_seed(0)
    features = {"user_features": _feature_matrix(40, 15, 1)} if history else {}
    reference = BilinearScorer(
        40, 15, n_factors=8, similarity=similarity, item_bias=True, init_scale=0.5,
        generator=generator, **features,
    )  # fmt: skip
    torch.nn.init.normal_(reference.item_bias.weight, std=0.1, generator=generator)
    fused_model = copy.deepcopy(reference)
    in_batch = resolve_loss("softmax", 1.0, "in_batch", 15)
    log_q = torch.log(torch.rand(15, generator=generator) + 0.1)
    if gradients == "sparse":  # the tables a step with sparse gradients updates row by row
        tables = sparse_embeddings(reference, in_batch)
        for table in tables:
            table.sparse = True
        schedule = TrainingSchedule(epochs=1, batch_size=12, learning_rate=0.05, l2=0.01)
        slow = row_sparse_step(TripletNet(reference), in_batch, schedule, log_q, tables,
                               max_norm=1.0)  # fmt: skip
        fast = FusedBilinearStep(
            fused_model, in_batch, 0.05, 0.01, sparse=sparse_embeddings(fused_model, in_batch),
            log_q=log_q, max_norm=1.0,
        )  # fmt: skip
    else:
        schedule = TrainingSchedule(epochs=1, batch_size=12, learning_rate=0.05, l2=0.01)
        slow = autograd_step(TripletNet(reference), in_batch, schedule, log_q)
        fast = FusedBilinearStep(fused_model, in_batch, 0.05, 0.01, log_q=log_q)
    data = torch.Generator().manual_seed(1)
    for _ in range(5):
        users = torch.randint(0, 40, (12,), generator=data)
        users[1] = users[0]  # a user with two triplets: one row of scores, two targets
        pos = torch.randint(0, 15, (12,), generator=data)
        pos[3] = pos[2]  # an item twice among the batch's positives
        torch.testing.assert_close(fast(users, pos, None), slow(users, pos, None))
    for name, weights in reference.state_dict().items():
        torch.testing.assert_close(fused_model.state_dict()[name], weights, rtol=1e-4, atol=1e-6)


def test_pairwise_losses_with_sparse_gradients_are_left_to_autograd():
    bpr = resolve_loss("bpr")
    assert not FusedBilinearStep.can_train(BilinearScorer(3, 3, 2), bpr, 1, sparse=True)
    with pytest.raises(ParameterError, match="with sparse gradients"):
        FusedBilinearStep(BilinearScorer(3, 3, 2), bpr, 0.01, 0.0,
                          sparse=[torch.nn.Embedding(3, 2)])  # fmt: skip


def _feature_matrix(n: int, n_features: int, seed: int):
    """Random side features (mean-normalised rows) with identity columns after them."""
    import numpy as np
    import scipy.sparse as sp

    from tripletrec.data.features import with_identity

    rng = np.random.default_rng(seed)
    dense = (rng.random((n, n_features)) < 0.3).astype(np.float32)
    counts = np.maximum(dense.sum(1, keepdims=True), 1)
    return with_identity(sp.csr_matrix(dense / counts), n)


@pytest.mark.parametrize("similarity", FusedBilinearStep.similarities)
@pytest.mark.parametrize("loss", ["margin", "softmax"])
@pytest.mark.parametrize("block_budget", [0, 1 << 22])
def test_fused_step_with_side_features_equals_autograd(similarity, loss, block_budget):
    generator = torch.Generator().manual_seed(0)
    reference = BilinearScorer(
        40, 15, n_factors=8, similarity=similarity, item_bias=True, init_scale=0.5,
        generator=generator,
        user_features=_feature_matrix(40, 5, 1), item_features=_feature_matrix(15, 6, 2),
    )  # fmt: skip
    torch.nn.init.normal_(reference.item_bias.table.weight, std=0.1, generator=generator)
    fused_model = copy.deepcopy(reference)
    schedule = TrainingSchedule(epochs=1, batch_size=32, learning_rate=0.05, l2=0.01)
    negatives = "all" if loss == "softmax" else "uniform"
    resolved = resolve_loss(loss, 0.7, negatives, 15)
    slow = autograd_step(TripletNet(reference), resolved, schedule)
    fast = FusedBilinearStep(fused_model, resolved, 0.05, 0.01)
    fast.block_budget = block_budget
    data = torch.Generator().manual_seed(1)
    for _ in range(5):
        users = torch.randint(0, 40, (32,), generator=data)
        pos = torch.randint(0, 15, (32,), generator=data)
        neg = None if loss == "softmax" else torch.randint(0, 15, (32,), generator=data)
        torch.testing.assert_close(
            fast(users, pos, neg), slow(users, pos, neg), rtol=1e-5, atol=1e-6
        )
    for name, weights in reference.state_dict().items():
        torch.testing.assert_close(fused_model.state_dict()[name], weights, rtol=1e-4, atol=1e-6)
