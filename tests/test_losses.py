import math

import pytest
import torch

from tripletrec.exceptions import TripletrecError
from tripletrec.training.losses import (
    adaptive_hinge_loss,
    bpr_loss,
    get_loss,
    margin_loss,
    sampled_softmax_loss,
    warp_loss,
)


def test_margin_loss_matches_hand_computation():
    pos = torch.tensor([0.9, 0.2, 0.5])
    neg = torch.tensor([0.1, 0.4, 0.5])
    # max(0, 1 - 0.9 + 0.1) = 0.2; max(0, 1 - 0.2 + 0.4) = 1.2; max(0, 1 - 0.5 + 0.5) = 1.0
    assert margin_loss(pos, neg, margin=1.0).item() == pytest.approx((0.2 + 1.2 + 1.0) / 3)
    # with margin 0.5: 0, 0.7, 0.5
    assert margin_loss(pos, neg, margin=0.5).item() == pytest.approx((0.0 + 0.7 + 0.5) / 3)


def test_margin_loss_is_zero_beyond_the_margin():
    assert margin_loss(torch.tensor([3.0]), torch.tensor([1.0]), margin=1.0).item() == 0.0


def test_bpr_loss_matches_hand_computation():
    pos, neg = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0])
    # -log sigmoid(2) = log(1 + e^-2) = 0.126928; -log sigmoid(0) = log 2 = 0.693147
    assert bpr_loss(pos, neg).item() == pytest.approx((0.126928 + 0.693147) / 2, abs=1e-6)


def test_get_loss_binds_margin_and_rejects_unknown_names():
    pos, neg = torch.tensor([0.0]), torch.tensor([0.0])
    assert get_loss("margin", margin=0.3)(pos, neg).item() == pytest.approx(0.3)
    with pytest.raises(TripletrecError, match="unknown loss 'hinge'"):
        get_loss("hinge")


def test_losses_accept_several_negatives_per_positive():
    pos = torch.tensor([1.0, 0.0])
    neg = torch.tensor([[0.5, 1.5], [0.0, -2.0]])
    # margin 1: row 0 -> max(0, 0.5), max(0, 1.5); row 1 -> 1.0, 0.0; mean of four
    assert margin_loss(pos, neg, 1.0).item() == pytest.approx((0.5 + 1.5 + 1.0 + 0.0) / 4)
    # one column equals the 1-d form
    assert margin_loss(pos, neg[:, 0], 1.0).item() == pytest.approx((0.5 + 1.0) / 2)


def test_adaptive_hinge_uses_the_hardest_negative():
    pos = torch.tensor([1.0, 0.0])
    neg = torch.tensor([[0.5, 1.5, -1.0], [0.0, -2.0, -0.5]])
    # hardest: 1.5 and 0.0 -> max(0, 1 - 1 + 1.5) = 1.5, max(0, 1 - 0 + 0) = 1.0
    assert adaptive_hinge_loss(pos, neg, 1.0).item() == pytest.approx((1.5 + 1.0) / 2)


def test_warp_weights_the_first_violator_by_its_estimated_rank():
    pos = torch.tensor([2.0, 2.0, 2.0])
    neg = torch.tensor(
        [
            [1.5, 0.0, 0.0, 0.0],  # first draw violates (1.5 > 2 - 1): N = 1
            [0.0, 0.0, 1.2, 3.0],  # third draw is the first violator: N = 3
            [0.0, 0.0, 0.0, 0.0],  # no violator: no loss
        ]
    )
    n_items = 101
    # N=1: rank floor(100/1) = 100, weight H(100); hinge 1 - 2 + 1.5 = 0.5
    # N=3: rank floor(100/3) = 33, weight H(33); hinge 1 - 2 + 1.2 = 0.2
    h = [math.fsum(1 / j for j in range(1, r + 1)) for r in (100, 33)]
    expected = (h[0] * 0.5 + h[1] * 0.2 + 0.0) / 3
    assert warp_loss(pos, neg, 1.0, n_items).item() == pytest.approx(expected, rel=1e-5)


def test_sampled_softmax_matches_cross_entropy_and_corrects_for_log_q():
    pos = torch.tensor([2.0])
    neg = torch.tensor([[1.0, 0.0]])
    # -log(e^2 / (e^2 + e^1 + e^0))
    expected = -math.log(math.exp(2) / (math.exp(2) + math.exp(1) + 1))
    assert sampled_softmax_loss(pos, neg).item() == pytest.approx(expected, rel=1e-6)
    # a constant log q changes nothing; a popular negative (higher q) is discounted
    log_q = torch.tensor([-1.0]), torch.tensor([[-1.0, -1.0]])
    assert sampled_softmax_loss(pos, neg, *log_q).item() == pytest.approx(expected, rel=1e-6)
    discounted = sampled_softmax_loss(pos, neg, torch.tensor([-3.0]), torch.tensor([[0.0, -3.0]]))
    # logits: 2 + 3 = 5, 1 - 0 = 1, 0 + 3 = 3
    assert discounted.item() == pytest.approx(
        -math.log(math.exp(5) / (math.exp(5) + math.exp(1) + math.exp(3))), rel=1e-5
    )


def test_in_batch_softmax_step_matches_hand_computation():
    from tripletrec.models.scorers import BilinearScorer, TripletNet
    from tripletrec.training.loop import TrainingSchedule, autograd_step

    scorer = BilinearScorer(3, 4, 2, "dot", generator=torch.Generator().manual_seed(0))
    users, positives = torch.tensor([0, 2]), torch.tensor([1, 3])
    log_q = torch.tensor([0.0, -1.0, 0.0, -2.0])
    with torch.no_grad():
        scores = scorer.score_all(users, positives)  # 2 x 2: user b against positive c
    logits = scores - log_q[positives][None, :]
    expected = -torch.log_softmax(logits, dim=1).diagonal().mean()
    step = autograd_step(
        TripletNet(scorer), get_loss("softmax"), TrainingSchedule(1, 2, 1e-3), log_q, in_batch=True
    )
    assert step(users, positives, None).item() == pytest.approx(expected.item(), rel=1e-6)
