"""Ranking losses as plain functions of positive and negative scores.

Every loss takes ``positive_scores`` of shape ``(B,)`` (one (user, positive item) pair per
row) and ``negative_scores`` of shape ``(B,)`` or ``(B, K)`` (K sampled negatives for the same
user) and returns the mean loss over the batch, so losses and models can be swapped
independently.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from tripletrec.exceptions import TripletrecError

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_EULER_GAMMA = 0.5772156649015329


def _columns(negative_scores: torch.Tensor) -> torch.Tensor:
    return negative_scores if negative_scores.dim() == 2 else negative_scores[:, None]


def margin_loss(
    positive_scores: torch.Tensor, negative_scores: torch.Tensor, margin: float = 1.0
) -> torch.Tensor:
    """The triplet hinge loss of the reference notebook.

    ``mean over (b, k) of max(0, margin - s(u_b, pos_b) + s(u_b, neg_bk))``
    """
    return F.relu(margin - positive_scores[:, None] + _columns(negative_scores)).mean()


def bpr_loss(positive_scores: torch.Tensor, negative_scores: torch.Tensor) -> torch.Tensor:
    """Bayesian personalised ranking (Rendle et al. 2009).

    ``mean over (b, k) of -log sigmoid(s(u_b, pos_b) - s(u_b, neg_bk))``, written with
    ``softplus`` for numerical stability.
    """
    return F.softplus(_columns(negative_scores) - positive_scores[:, None]).mean()


def adaptive_hinge_loss(
    positive_scores: torch.Tensor, negative_scores: torch.Tensor, margin: float = 1.0
) -> torch.Tensor:
    """Hinge loss against the hardest of K sampled negatives (Spotlight's adaptive hinge).

    ``mean over b of max(0, margin - s(u_b, pos_b) + max_k s(u_b, neg_bk))``
    """
    hardest = _columns(negative_scores).max(dim=1).values
    return F.relu(margin - positive_scores + hardest).mean()


def warp_loss(
    positive_scores: torch.Tensor,
    negative_scores: torch.Tensor,
    margin: float = 1.0,
    n_items: int | None = None,
) -> torch.Tensor:
    """Weighted approximate-rank pairwise loss (Weston et al. 2011), K draws at most.

    The K negatives stand for draws made one after another until one violates the margin
    (``s(neg) > s(pos) - margin``). If the first violator is draw ``N``, the positive's rank
    among ``n_items - 1`` others is estimated as ``r = floor((n_items - 1) / N)`` and the
    triplet's hinge is weighted by ``L(r) = sum_{j=1..r} 1/j``, so positives ranked far down
    get large updates and well-ranked ones small ones. Rows without a violator add 0.

    ``mean over b of L(r_b) * max(0, margin - s(u_b, pos_b) + s(u_b, neg_{b, N_b}))``
    """
    negatives = _columns(negative_scores)
    n_draws = negatives.shape[1]
    n_items = n_items or n_draws + 1
    violates = negatives > (positive_scores[:, None] - margin)
    any_violation = violates.any(dim=1)
    # First violating column (argmax of a boolean returns the first True).
    first = violates.to(torch.int8).argmax(dim=1)
    violator_scores = negatives.gather(1, first[:, None]).squeeze(1)
    draws = (first + 1).to(positive_scores.dtype)
    rank = torch.floor((n_items - 1) / draws).clamp_min(1)
    # L(r) = H(r), the r-th harmonic number, = digamma(r + 1) + Euler's gamma.
    weight = torch.special.digamma(rank + 1) + _EULER_GAMMA
    hinge = F.relu(margin - positive_scores + violator_scores)
    return (weight.detach() * hinge * any_violation).mean()


def sampled_softmax_loss(
    positive_scores: torch.Tensor,
    negative_scores: torch.Tensor,
    log_q_positive: torch.Tensor | None = None,
    log_q_negative: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy of the positive against K sampled negatives, with the log-q correction.

    Logits are ``s - log q(item)`` where ``q`` is the probability that the sampler proposes
    the item (Bengio & Senecal 2008; Yi et al. 2019): without it, popular items, sampled
    more often as negatives, would be pushed down too hard. Uniform sampling needs no
    correction (``q`` is constant).

    ``mean over b of -log softmax([s_pos - log q_pos, s_neg_1 - log q_neg_1, ...])[0]``
    """
    negatives = _columns(negative_scores)
    if log_q_positive is not None:
        positive_scores = positive_scores - log_q_positive
    if log_q_negative is not None:
        negatives = negatives - _columns(log_q_negative)
    logits = torch.cat([positive_scores[:, None], negatives], dim=1)
    return (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()


def full_softmax_loss(all_scores: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the positive against every item of the catalogue.

    ``mean over b of logsumexp_i s(u_b, i) - s(u_b, pos_b)``: the softmax loss without
    sampling, affordable when a batch's users x items scores fit in memory.
    """
    return F.cross_entropy(all_scores, positives)


LOSSES = ("margin", "bpr", "adaptive_hinge", "warp", "softmax")


def get_loss(name: str, margin: float = 1.0, n_items: int | None = None) -> LossFunction:
    """The loss called ``name`` as ``loss(positive_scores, negative_scores)``.

    ``margin`` is bound for the hinge losses and ``n_items`` for WARP's rank estimate.
    """
    if name == "margin":
        return lambda pos, neg: margin_loss(pos, neg, margin)
    if name == "bpr":
        return bpr_loss
    if name == "adaptive_hinge":
        return lambda pos, neg: adaptive_hinge_loss(pos, neg, margin)
    if name == "warp":
        return lambda pos, neg: warp_loss(pos, neg, margin, n_items)
    if name == "softmax":
        return sampled_softmax_loss
    raise TripletrecError(f"unknown loss {name!r}; choose from {', '.join(LOSSES)}")
