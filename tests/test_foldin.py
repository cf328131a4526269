"""Fold-in of new users from their histories (item side frozen)."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import tripletrec as tr
from tripletrec.evaluation.metrics import auc_per_user
from tripletrec.exceptions import DataError, ParameterError
from tripletrec.models.foldin import fold_in, score_user_vectors
from tripletrec.models.scorers import BilinearScorer, DeepScorer, FactorizationMachineScorer
from tripletrec.training.losses import resolve_loss


@pytest.fixture(scope="module")
def held_out(anime_tv):
    """Models trained without 200 users, and those users' positives split in halves."""
    data = anime_tv.positives(7)
    rng = np.random.default_rng(0)
    held = rng.choice(data.n_users, 200, replace=False)
    train = data.subset(np.flatnonzero(~np.isin(data.users, held)))
    csr = data.to_csr()[held]
    histories, rest = [], []
    for row in range(len(held)):  # test setup only
        items = rng.permutation(csr[row].indices)
        if len(items) >= 4:
            histories.append(list(data.item_map.ids[items[: len(items) // 2]]))
            rest.append(items[len(items) // 2 :])
    models = {
        preset: tr.TripletRecommender.from_preset(preset, random_state=0, epochs=3).fit(train)
        for preset in ("bilinear", "deep")
    }
    return models, histories, rest, data


@pytest.mark.parametrize("preset", ["bilinear", "deep"])
def test_folded_in_users_rank_their_other_half_well(held_out, preset):
    models, histories, rest, data = held_out
    model = models[preset]
    rows = np.concatenate([[i] * len(h) for i, h in enumerate(histories)]).astype(np.int64)
    items = model.item_map_.to_index([x for h in histories for x in h])
    scores = model.score_from_history(histories)
    rest_rows = np.concatenate([[i] * len(r) for i, r in enumerate(rest)]).astype(np.int64)
    rest_items = model.item_map_.to_index(data.item_map.ids[np.concatenate(rest)])
    relevant = sp.csr_matrix((np.ones(len(rest_rows)), (rest_rows, rest_items)), scores.shape)
    seen = sp.csr_matrix((np.ones(len(rows)), (rows, items)), scores.shape)
    auc = np.nanmean(auc_per_user(scores, relevant, seen))
    # Random ranking gives 0.5; the floors are a couple of points below what each reaches.
    assert auc > {"bilinear": 0.76, "deep": 0.78}[preset]


def test_fold_in_is_deterministic_and_batch_independent(held_out):
    models, histories, _, _ = held_out
    model = models["bilinear"]
    a_items, a_scores = model.recommend_from_history(histories[:5], k=7)
    b_items, b_scores = model.recommend_from_history(histories[:5], k=7)
    np.testing.assert_array_equal(a_items, b_items)
    np.testing.assert_array_equal(a_scores, b_scores)
    alone_items, alone_scores = model.recommend_from_history([histories[3]], k=7)
    np.testing.assert_array_equal(alone_items[0], a_items[3])
    np.testing.assert_allclose(alone_scores[0], a_scores[3], rtol=1e-5, atol=1e-6)
    other_seed = model.recommend_from_history(histories[:5], k=7, random_state=1)[1]
    assert not np.array_equal(other_seed, a_scores)


def test_history_items_are_filtered_and_unknown_ids_ignored(held_out):
    models, histories, _, _ = held_out
    model = models["deep"]
    history = histories[0]
    items, _ = model.recommend_from_history([history], k=20)
    assert not set(items[0].tolist()) & set(history)
    with_unknown, _ = model.recommend_from_history([[*history, 10**12, "nope"]], k=20)
    np.testing.assert_array_equal(with_unknown, items)
    kept, _ = model.recommend_from_history([history], k=model.n_items_, filter_history=False)
    assert set(history) <= set(kept[0].tolist())


@pytest.mark.parametrize(
    "histories",
    [[], [[]], [[10**12]], ["abc"], 5, [[1], 7]],
)
def test_bad_histories_raise_clear_errors(held_out, histories):
    model = held_out[0]["bilinear"]
    with pytest.raises(DataError, match="histor"):
        model.recommend_from_history(histories, k=5)


def test_bad_k_raises(held_out):
    model = held_out[0]["bilinear"]
    with pytest.raises(ParameterError, match="k must be"):
        model.recommend_from_history([[1]], k=0)


@pytest.mark.parametrize(
    "module",
    [
        lambda g: BilinearScorer(40, 30, 8, "cosine", False, 0.5, g),
        lambda g: BilinearScorer(40, 30, 8, "cosine", True, 0.5, g, learn_temperature=True),
        lambda g: BilinearScorer(40, 30, 8, "dot", True, 0.5, g),
        lambda g: DeepScorer(40, 30, 4, 6, (), 0.0, 0.5, g),
        lambda g: DeepScorer(40, 30, 4, 6, (16, 8), 0.0, 0.5, g),
        lambda g: DeepScorer(40, 30, 4, 6, (16,), 0.0, 0.5, g, dot_factors=5),
        lambda g: BilinearScorer(40, 30, 8, "dot", True, 0.5, g, ranking_bias_scale=0.5),
        lambda g: FactorizationMachineScorer(40, 30, 8, 0.5, g, ranking_bias_scale=0.5),
    ],
    ids=[
        "cosine",
        "cosine-temperature",
        "dot-bias",
        "deep-linear",
        "deep-2-layers",
        "deep-dot-factors",
        "dot-shrunk-bias",
        "fm",
    ],
)
def test_frozen_item_side_scores_trained_users_like_the_model(module):
    module = module(torch.Generator().manual_seed(0)).eval()
    with torch.no_grad():
        if getattr(module, "item_bias", None) is not None:
            module.item_bias.weight.normal_(generator=torch.Generator().manual_seed(1))
        if getattr(module, "log_scale", None) is not None:
            module.log_scale.fill_(1.5)  # a learned inverse temperature of e^1.5
        vectors = module.user_vectors()
        expected = module.score_all(torch.arange(40), for_ranking=True).numpy()
        trained = module.score_all(torch.arange(40), for_ranking=False).numpy()
    got = score_user_vectors(module, vectors)
    fm = isinstance(module, FactorizationMachineScorer)
    if fm:  # equal up to the FM's user-only terms, which no ranking sees
        got, expected = got - got[:, :1], expected - expected[:, :1]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # The fold-in loop's scores are the training scores (the whole bias).
    frozen = module.frozen_items()
    assert frozen.user_dim == vectors.shape[1]
    users, items = torch.arange(40), torch.arange(40) % 30
    with torch.no_grad():
        pairs = frozen.pair_scores(frozen.user_side(vectors)[users], items).numpy()
        scored = frozen.all_scores(frozen.user_side(vectors)).numpy()
    if fm:
        pairs, trained = pairs - scored[users, 0], trained - trained[:, :1]
        scored = scored - scored[:, :1]
    np.testing.assert_allclose(pairs, trained[users, items], atol=1e-5)
    np.testing.assert_allclose(scored, trained, atol=1e-5)


def test_frozen_item_side_is_detached_and_keeps_the_mode():
    module = DeepScorer(40, 30, 4, 6, (16,), 0.5, 0.5, torch.Generator().manual_seed(0))
    module.train()
    frozen = module.frozen_items()
    assert module.training  # built in eval mode, then the mode is back
    users = torch.nn.Parameter(torch.randn(3, frozen.user_dim))
    frozen.all_scores(frozen.user_side(users)).sum().backward()
    assert users.grad is not None
    assert all(p.grad is None for p in module.parameters())  # nothing reaches the model


def test_scorers_without_an_item_side_cannot_fold_in():
    from tripletrec.models.interface import Scorer

    with pytest.raises(ParameterError, match="cannot fold in users for a Scorer"):
        fold_in(Scorer(), np.zeros(1, np.int64), np.zeros(1, np.int64), 1)


def test_softmax_fold_in_is_the_regularised_maximum_likelihood(anime_tv):
    data = anime_tv.positives(7)
    held = np.random.default_rng(1).choice(data.n_users, 100, replace=False)
    model = tr.TripletRecommender(random_state=0, epochs=3)
    model.fit(data.subset(np.flatnonzero(~np.isin(data.users, held))))
    csr = data.to_csr()[held]
    keep = np.diff(csr.indptr) >= 4
    histories, rest = [], []
    rng = np.random.default_rng(2)
    for row in np.flatnonzero(keep):  # test setup only
        items = rng.permutation(csr[row].indices)
        histories.append(list(data.item_map.ids[items[: len(items) // 2]]))
        rest.append(items[len(items) // 2 :])
    scores = model.score_from_history(histories)
    n = len(histories)
    relevant = sp.lil_matrix((n, model.n_items_))
    seen = sp.lil_matrix((n, model.n_items_))
    for row in range(n):
        relevant[row, rest[row]] = 1
        seen[row, model.item_map_.to_index(histories[row])] = 1
    assert np.nanmean(auc_per_user(scores, relevant.tocsr(), seen.tocsr())) > 0.82

    # The returned vector is a stationary point of the fold-in objective.
    from tripletrec.models.foldin import FoldInSettings

    items = model.item_map_.to_index(histories[0])
    table = model.module_.item_embedding.weight.detach()
    bias = model.module_.item_bias.weight.detach().T

    def gradient_norm(vector: torch.Tensor) -> float:
        u = vector.clone().requires_grad_(True)
        logits = u @ table.T + bias
        log_likelihood = (logits[0, items] - torch.logsumexp(logits, 1)[0]).sum()
        (FoldInSettings().l2 * (u**2).sum() - log_likelihood).backward()
        return float(u.grad.norm())

    loss = resolve_loss("softmax", 1.0, "all", model.n_items_)
    folded = fold_in(model.module_, np.zeros(len(items), np.int64), items, 1, loss=loss)
    assert gradient_norm(folded) < 0.05 * gradient_norm(torch.zeros_like(folded))
