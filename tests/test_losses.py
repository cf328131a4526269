import math
import typing

import pytest
import torch
import torch.nn.functional as F

from tripletrec.exceptions import ParameterError, TripletrecError
from tripletrec.training.losses import (
    LOSSES,
    Loss,
    LossName,
    adaptive_hinge_loss,
    bpr_loss,
    full_softmax_loss,
    get_loss,
    margin_loss,
    resolve_loss,
    sampled_softmax_loss,
    softmax_cross_entropy,
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


@pytest.mark.parametrize("shifted", [False, True])
def test_softmax_cross_entropy_is_cross_entropy_in_value_and_gradient(shifted):
    generator = torch.Generator().manual_seed(0)
    scores = (5 * torch.randn(6, 9, generator=generator)).requires_grad_()
    targets = torch.tensor([0, 8, 3, 3, 1, 7])
    shift = torch.randn(9, generator=generator) if shifted else None
    loss = softmax_cross_entropy(scores, targets, shift)
    (2 * loss).backward()
    ours = scores.grad
    scores.grad = None
    expected = F.cross_entropy(scores + (0 if shift is None else shift[None, :]), targets)
    (2 * expected).backward()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(ours, scores.grad)


def test_softmax_cross_entropy_refuses_a_second_backward_pass():
    scores = torch.randn(3, 4, requires_grad=True)
    loss = softmax_cross_entropy(scores, torch.tensor([0, 1, 2]))
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="once per forward pass"):
        loss.backward()


def test_in_batch_softmax_step_matches_hand_computation():
    from tripletrec.models.scorers import BilinearScorer, TripletNet
    from tripletrec.training.loop import TrainingSchedule, autograd_step

    scorer = BilinearScorer(3, 4, 2, "dot", generator=torch.Generator().manual_seed(0))
    users, positives = torch.tensor([0, 2]), torch.tensor([1, 3])
    log_q = torch.tensor([0.0, -1.0, 0.0, -2.0])
    with torch.no_grad():  # 2 x 2: user b against positive c
        scores = scorer.score_all(users, positives, for_ranking=False)
    logits = scores - log_q[positives][None, :]
    expected = -torch.log_softmax(logits, dim=1).diagonal().mean()
    loss = resolve_loss("softmax", 1.0, "in_batch", 4)
    step = autograd_step(TripletNet(scorer), loss, TrainingSchedule(1, 2, 1e-3), log_q)
    assert step(users, positives, None).item() == pytest.approx(expected.item(), rel=1e-6)


# ---------------------------------------------------------------------- Loss
@pytest.mark.parametrize(
    ("name", "negatives", "kind"),
    [
        ("margin", "uniform", "pairwise"),
        ("warp", "exclude_positives", "pairwise"),
        ("softmax", "uniform", "sampled_softmax"),
        ("softmax", "popularity", "sampled_softmax"),
        ("softmax", "all", "full_softmax"),
        ("softmax", "in_batch", "in_batch_softmax"),
    ],
)
def test_resolve_loss_gives_each_sampler_its_kind(name, negatives, kind):
    loss = resolve_loss(name, 0.5, negatives, 7)
    assert loss == Loss(name, 0.5, kind, 7)
    assert loss.is_softmax == (name == "softmax")
    # Fold-in draws uniform negatives: the same loss, against samples.
    sampled = loss.sampled(9)
    assert sampled.kind == ("sampled_softmax" if name == "softmax" else "pairwise")
    assert (sampled.name, sampled.margin, sampled.n_items) == (name, 0.5, 9)


def test_every_loss_name_of_the_literal_has_a_loss():
    assert typing.get_args(LossName) == LOSSES
    positive, negative = torch.tensor([0.5, -0.2]), torch.tensor([0.1, 0.3])
    for name in LOSSES:  # a pairwise name without its _PAIRWISE entry would fail here
        assert torch.isfinite(get_loss(name, 0.5, n_items=5)(positive, negative))


@pytest.mark.parametrize("negatives", ["all", "in_batch"])
@pytest.mark.parametrize("name", [n for n in LOSSES if n != "softmax"])
def test_pairwise_losses_need_drawn_negatives(name, negatives):
    with pytest.raises(ParameterError, match="needs loss='softmax'"):
        resolve_loss(name, 1.0, negatives)


@pytest.mark.parametrize("margin", [float("nan"), "1", None])
def test_resolve_loss_rejects_a_margin_that_is_not_a_number(margin):
    with pytest.raises(ParameterError, match="margin must be a finite number"):
        resolve_loss("margin", margin)


def test_a_loss_computes_what_its_function_computes():
    pos, neg = torch.tensor([1.0, 0.0]), torch.tensor([[0.5, 1.5], [0.0, -2.0]])
    assert resolve_loss("margin", 0.3)(pos, neg) == margin_loss(pos, neg, 0.3)
    assert resolve_loss("bpr")(pos, neg) == bpr_loss(pos, neg)
    assert resolve_loss("adaptive_hinge", 0.7)(pos, neg) == adaptive_hinge_loss(pos, neg, 0.7)
    assert resolve_loss("warp", 0.7, n_items=50)(pos, neg) == warp_loss(pos, neg, 0.7, 50)
    log_q = torch.tensor([-1.0, -2.0]), torch.tensor([[-0.5, -3.0], [-1.0, -1.0]])
    softmax = resolve_loss("softmax", negatives="popularity")
    assert softmax(pos, neg, log_q_pos=log_q[0], log_q_neg=log_q[1]) == sampled_softmax_loss(
        pos, neg, *log_q
    )
    with pytest.raises(ParameterError, match="log-q"):
        resolve_loss("bpr")(pos, neg, log_q_pos=log_q[0])
    with pytest.raises(ParameterError, match="scores a matrix"):
        resolve_loss("softmax", negatives="all")(pos, neg)


def test_loss_of_a_batch_applies_the_log_q_correction_of_the_softmax_only():
    generator = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(4, generator=generator), torch.randn(4, 3, generator=generator)
    positives, negatives = torch.tensor([0, 1, 2, 3]), torch.tensor([[1, 2, 3]] * 4)
    log_q = torch.log(torch.tensor([0.1, 0.2, 0.3, 0.4]))
    corrected = resolve_loss("softmax").of_batch((pos, neg), positives, negatives, log_q)
    expected = sampled_softmax_loss(pos, neg, log_q[positives], log_q[negatives])
    assert corrected == expected != sampled_softmax_loss(pos, neg)
    # Pairwise losses are not corrected: popularity-sampled negatives are their choice.
    bpr = resolve_loss("bpr").of_batch((pos, neg), positives, negatives, log_q)
    assert bpr == bpr_loss(pos, neg)
    matrix = torch.randn(4, 6, generator=generator)
    full = resolve_loss("softmax", negatives="all").of_batch(matrix, positives, None)
    assert full == full_softmax_loss(matrix, positives)
    square = torch.randn(4, 4, generator=generator)
    in_batch = resolve_loss("softmax", negatives="in_batch").of_batch(
        square, positives, None, log_q
    )
    shifted = square - log_q[positives][None, :]
    assert in_batch == full_softmax_loss(shifted, torch.arange(4))


def test_only_margin_and_bpr_have_a_closed_form_slope():
    pos = torch.tensor([0.2, 1.5, -0.3], requires_grad=True)
    neg = torch.tensor([0.4, 0.1, -0.3], requires_grad=True)
    for name in ("margin", "bpr"):
        loss = resolve_loss(name, 0.7)
        value, slope = loss.pairwise_slope(pos.detach(), neg.detach())
        (grad_neg,) = torch.autograd.grad(loss(pos, neg), neg)
        torch.testing.assert_close(value, loss(pos, neg).detach())
        torch.testing.assert_close(slope, grad_neg)
    for name, negatives in [("warp", "uniform"), ("adaptive_hinge", "uniform"),
                            ("softmax", "uniform"), ("softmax", "all")]:  # fmt: skip
        assert resolve_loss(name, 1.0, negatives).pairwise_slope is None


def test_a_loss_of_an_impossible_kind_cannot_be_made():
    with pytest.raises(ParameterError, match="kind of the 'bpr' loss"):
        Loss("bpr", kind="full_softmax")
    with pytest.raises(ParameterError, match="kind of the 'softmax' loss"):
        Loss("softmax")  # the pairwise default
    with pytest.raises(ParameterError, match="loss must be one of"):
        Loss("hinge")
