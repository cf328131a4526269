import pytest
import torch

from tripletrec.models.scorers import BilinearScorer, DeepScorer, TripletNet, count_parameters


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
    if scorer.item_bias is not None if hasattr(scorer, "item_bias") else False:
        torch.nn.init.normal_(scorer.item_bias.weight)
    users = torch.tensor([0, 3, 6])
    all_scores = scorer.score_all(users)
    pairs_u = users.repeat_interleave(5)
    pairs_i = torch.arange(5).repeat(3)
    torch.testing.assert_close(all_scores.reshape(-1), scorer(pairs_u, pairs_i))
    subset = torch.tensor([4, 1])
    torch.testing.assert_close(scorer.score_all(users, subset), all_scores[:, subset])


def test_cosine_scores_are_bounded():
    scores = BilinearScorer(20, 10, 8, "cosine").score_all(torch.arange(20))
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
