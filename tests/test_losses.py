import pytest
import torch

from tripletrec.exceptions import TripletrecError
from tripletrec.losses import bpr_loss, get_loss, margin_loss


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
