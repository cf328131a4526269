"""Pairwise ranking losses as plain functions of positive and negative scores.

Each loss takes the scores of (user, positive item) and (user, negative item) pairs, row
aligned, and returns the mean loss over the batch, so losses and models can be swapped
independently.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from tripletrec.exceptions import TripletrecError

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def margin_loss(
    positive_scores: torch.Tensor, negative_scores: torch.Tensor, margin: float = 1.0
) -> torch.Tensor:
    """The triplet hinge loss of the reference notebook.

    ``mean(max(0, margin - s(u, pos) + s(u, neg)))``
    """
    return F.relu(margin - positive_scores + negative_scores).mean()


def bpr_loss(positive_scores: torch.Tensor, negative_scores: torch.Tensor) -> torch.Tensor:
    """Bayesian personalised ranking (Rendle et al. 2009).

    ``mean(-log sigmoid(s(u, pos) - s(u, neg)))``, written with ``softplus`` for stability.
    """
    return F.softplus(negative_scores - positive_scores).mean()


LOSSES: dict[str, Callable[..., torch.Tensor]] = {"margin": margin_loss, "bpr": bpr_loss}


def get_loss(name: str, margin: float = 1.0) -> LossFunction:
    """The loss called ``name``, with ``margin`` bound where the loss takes one."""
    if name not in LOSSES:
        raise TripletrecError(f"unknown loss {name!r}; choose from {', '.join(LOSSES)}")
    if name == "margin":
        return lambda pos, neg: margin_loss(pos, neg, margin)
    return LOSSES[name]
