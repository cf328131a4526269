import pytest
import torch

from tripletrec.models.scorers import (
    BilinearScorer,
    DeepScorer,
    FactorizationMachineScorer,
    TripletNet,
    count_parameters,
    scoring,
)


def test_bilinear_parameter_count_matches_the_notebook():
    # The notebook's bilinear model on 9,220 users x 303 anime, 64-d: 609,472 parameters.
    assert count_parameters(BilinearScorer(9220, 303, 64)) == 609_472


def test_deep_parameter_count():
    model = DeepScorer(9220, 303, user_dim=32, item_dim=64, hidden_layers=(128,))
    embeddings = 9220 * 32 + 303 * 64
    mlp = (96 * 128 + 128) + (128 * 1 + 1)
    assert count_parameters(model) == embeddings + mlp


@pytest.mark.parametrize(
    "scorer",
    [
        BilinearScorer(7, 5, 4, "cosine"),
        BilinearScorer(7, 5, 4, "dot", item_bias=True),
        DeepScorer(7, 5, 3, 4, hidden_layers=(6, 5)),
        DeepScorer(7, 5, 3, 4, hidden_layers=()),
        DeepScorer(7, 5, 3, 4, hidden_layers=(6,), dot_factors=3),
    ],
)
def test_score_all_agrees_with_pairwise_forward(scorer):
    scorer.eval()
    if getattr(scorer, "item_bias", None) is not None:  # a zero bias would test nothing
        torch.nn.init.normal_(scorer.item_bias.weight)
    users = torch.tensor([0, 3, 6])
    all_scores = scorer.score_all(users, for_ranking=False)
    pairs_u = users.repeat_interleave(5)
    pairs_i = torch.arange(5).repeat(3)
    torch.testing.assert_close(all_scores.reshape(-1), scorer(pairs_u, pairs_i))
    subset = torch.tensor([4, 1])
    subset_scores = scorer.score_all(users, subset, for_ranking=False)
    torch.testing.assert_close(subset_scores, all_scores[:, subset])


def test_cosine_scores_are_bounded():
    scores = BilinearScorer(20, 10, 8, "cosine").score_all(torch.arange(20), for_ranking=False)
    assert scores.abs().max() <= 1.0 + 1e-6


@pytest.mark.parametrize("batch", [3, 64])  # below and above the item-table shortcut
def test_triplet_net_shares_weights_with_the_scorer(batch):
    scorer = BilinearScorer(30, 10, 8, "cosine")
    net = TripletNet(scorer)
    users = torch.randint(0, 30, (batch,))
    pos, neg = torch.randint(0, 10, (batch,)), torch.randint(0, 10, (batch,))
    pos_scores, neg_scores = net(users, pos, neg)
    torch.testing.assert_close(pos_scores, scorer(users, pos))
    torch.testing.assert_close(neg_scores, scorer(users, neg))
    assert {id(p) for p in net.parameters()} == {id(p) for p in scorer.parameters()}


@pytest.mark.parametrize("kind", ["bilinear", "fm"])
def test_for_ranking_shrinks_the_item_terms_and_only_that(kind):
    generator = torch.Generator().manual_seed(0)
    if kind == "bilinear":
        scorer = BilinearScorer(6, 5, 4, "dot", True, 0.5, generator, ranking_bias_scale=0.25)
    else:
        scorer = FactorizationMachineScorer(6, 5, 4, 0.5, generator, ranking_bias_scale=0.25)
    torch.nn.init.normal_(scorer.item_bias.weight, generator=generator)
    bias = scorer.item_bias.weight.detach()[:, 0]
    users, items = torch.arange(6), torch.tensor([4, 0, 2])
    for training in (True, False):  # the module's mode plays no part
        scorer.train(training)
        with torch.no_grad():
            trained = scorer.score_all(users, for_ranking=False)
            ranked = scorer.score_all(users, for_ranking=True)
            torch.testing.assert_close(trained - ranked, (0.75 * bias).expand(6, 5))
            pairs = scorer(users[:3], items, for_ranking=True)
            torch.testing.assert_close(pairs, ranked[users[:3], items])
            positives, _ = scorer.triplet_scores(users[:3], items, items)
            torch.testing.assert_close(positives, trained[users[:3], items])
            space = scorer.vector_space(for_ranking=True)
            vectors = scorer.query_vectors(scorer.user_vectors()) @ space.item_vectors.T
            # Up to the FM's user-only terms, which no ranking sees.
            difference = ranked - (vectors + space.item_terms)
            torch.testing.assert_close(difference, difference[:, :1].expand(6, 5))


def test_deep_scores_ignore_for_ranking_and_have_no_vector_space():
    scorer = DeepScorer(7, 5, 3, 4, hidden_layers=(6,), dot_factors=2).eval()
    users = torch.arange(7)
    with torch.no_grad():
        torch.testing.assert_close(
            scorer.score_all(users, for_ranking=True), scorer.score_all(users, for_ranking=False)
        )
    assert scorer.vector_space(for_ranking=True) is None
    assert scorer.entity_embeddings() == {
        "user": [scorer.user_embedding, scorer.user_dot],
        "item": [scorer.item_embedding, scorer.item_dot],
    }


def test_scoring_turns_dropout_off_and_restores_the_mode():
    scorer = DeepScorer(7, 5, 3, 4, hidden_layers=(16,), dropout=0.5)
    users = torch.arange(7)
    with scoring(scorer) as module:
        assert module is scorer and not scorer.training and not torch.is_grad_enabled()
        first = scorer.score_all(users, for_ranking=True)
        torch.testing.assert_close(scorer.score_all(users, for_ranking=True), first)
    assert scorer.training and all(m.training for m in scorer.modules())
    scorer.eval()
    with pytest.raises(RuntimeError, match="inside"), scoring(scorer):
        raise RuntimeError("inside")
    assert not scorer.training  # an eval-mode module stays in eval mode
