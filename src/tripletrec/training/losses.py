"""Ranking losses, and :class:`Loss`: the training loss of a model, resolved once.

The pairwise losses are plain functions of ``positive_scores`` of shape ``(B,)`` (one
(user, positive item) pair per row) and ``negative_scores`` of shape ``(B,)`` or ``(B, K)``
(K sampled negatives for the same user); each returns the mean loss over the batch, so
losses and models can be swapped independently. The softmax comes in three kinds: against
sampled negatives (log-q corrected), against every item (the full softmax) and against the
batch's other positives (in-batch negatives).

:func:`resolve_loss` turns the estimator's ``(loss, margin, negatives)`` settings into one
:class:`Loss` that the training steps, fold-in and data-parallel training all receive. It
is the only code that knows which sampler makes which softmax. A new pairwise loss is one
function, its name in ``LossName`` and one entry in ``_PAIRWISE``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

import torch
import torch.nn.functional as F

from tripletrec._checks import finite_number, one_of
from tripletrec.exceptions import ParameterError

#: The estimator's ``loss`` values: every pairwise loss of ``_PAIRWISE``, and the softmax.
LossName = Literal["margin", "bpr", "adaptive_hinge", "warp", "softmax"]
LossKind = Literal["pairwise", "sampled_softmax", "full_softmax", "in_batch_softmax"]
#: The loss and ``dL/ds_neg`` per triplet of a batch (``dL/ds_pos`` is its negation).
Slope = tuple[torch.Tensor, torch.Tensor]

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
    return softmax_cross_entropy(all_scores, positives)


def softmax_cross_entropy(
    scores: torch.Tensor, targets: torch.Tensor, column_shift: torch.Tensor | None = None
) -> torch.Tensor:
    """``F.cross_entropy(scores + column_shift, targets)``, in fewer passes over the matrix.

    ``mean over b of logsumexp_c (s_bc + shift_c) - (s_b,t_b + shift_t_b)``. The softmax
    matrices of training are the step's largest arrays (batch x batch in-batch, batch x
    items in full): here the exponentials are computed once, in a copy that the backward
    pass turns into the gradient in place, where ``cross_entropy`` after a shift
    allocates and exponentiates twice. ``column_shift`` (the log-q correction's minus
    log-probabilities) takes no gradient. The backward pass runs once per forward pass.
    """
    return cast(torch.Tensor, _SoftmaxCrossEntropy.apply(scores, targets, column_shift))


class _SoftmaxCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, scores: torch.Tensor, targets: torch.Tensor, shift: torch.Tensor | None
    ) -> torch.Tensor:
        work = scores.clone() if shift is None else scores + shift[None, :]
        rows = torch.arange(len(work), device=work.device)
        target_scores = work[rows, targets]
        top = work.amax(dim=1, keepdim=True)
        exponentials = work.sub_(top).exp_()
        totals = exponentials.sum(dim=1)
        ctx.save_for_backward(exponentials, totals, targets)
        ctx.spent = False
        return (top[:, 0] + totals.log() - target_scores).mean()

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        if ctx.spent:  # the gradient was made in the saved exponentials' memory
            raise RuntimeError("softmax_cross_entropy: backward runs once per forward pass")
        ctx.spent = True
        exponentials, totals, targets = ctx.saved_tensors
        share = grad_loss / len(totals)
        grad = exponentials.mul_(share / totals[:, None])
        grad[torch.arange(len(grad), device=grad.device), targets] -= share
        return grad, None, None


def _margin_slope(s_pos: torch.Tensor, s_neg: torch.Tensor, margin: float) -> Slope:
    violation = margin - s_pos + s_neg
    return violation.clamp_min(0).mean(), (violation > 0).to(s_pos.dtype) / len(s_pos)


def _bpr_slope(s_pos: torch.Tensor, s_neg: torch.Tensor, margin: float) -> Slope:
    difference = s_neg - s_pos
    return F.softplus(difference).mean(), torch.sigmoid(difference) / len(s_pos)


@dataclass(frozen=True)
class _Pairwise:
    """A pairwise loss: ``value(pos, neg, margin, n_items)``, and its closed-form slope
    for one negative per positive (None: only autograd trains it)."""

    value: Callable[[torch.Tensor, torch.Tensor, float, int | None], torch.Tensor]
    slope: Callable[[torch.Tensor, torch.Tensor, float], Slope] | None = None


_PAIRWISE: dict[LossName, _Pairwise] = {
    "margin": _Pairwise(lambda pos, neg, m, n: margin_loss(pos, neg, m), _margin_slope),
    "bpr": _Pairwise(lambda pos, neg, m, n: bpr_loss(pos, neg), _bpr_slope),
    "adaptive_hinge": _Pairwise(lambda pos, neg, m, n: adaptive_hinge_loss(pos, neg, m)),
    "warp": _Pairwise(warp_loss),
}

LOSSES: tuple[LossName, ...] = get_args(LossName)
_SOFTMAX_KINDS = ("sampled_softmax", "full_softmax", "in_batch_softmax")
#: The kinds scored as a matrix (every item, or the batch's positives), not as pairs.
MATRIX_KINDS = ("full_softmax", "in_batch_softmax")


@dataclass(frozen=True)
class Loss:
    """A model's training loss, resolved once by :func:`resolve_loss`.

    Attributes
    ----------
    name : str
        One of :data:`LOSSES`.
    margin : float
        Margin of the hinge losses (margin, adaptive hinge, WARP).
    kind : {"pairwise", "sampled_softmax", "full_softmax", "in_batch_softmax"}
        Pairwise and sampled-softmax losses score (positive, sampled negatives) pairs; the
        full softmax scores every item and the in-batch softmax the batch's positives.
    n_items : int or None
        Catalogue size, for WARP's rank estimate.
    """

    name: LossName
    margin: float = 1.0
    kind: LossKind = "pairwise"
    n_items: int | None = None

    def __post_init__(self) -> None:
        one_of("loss", self.name, LOSSES)
        kinds = ("pairwise",) if self.name in _PAIRWISE else _SOFTMAX_KINDS
        one_of(f"the kind of the {self.name!r} loss", self.kind, kinds)

    def __call__(
        self,
        positive_scores: torch.Tensor,
        negative_scores: torch.Tensor,
        *,
        log_q_pos: torch.Tensor | None = None,
        log_q_neg: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The mean loss of (positive, sampled negatives) scores.

        ``log_q_pos`` / ``log_q_neg``: the sampler's log-probability of each scored item,
        the sampled softmax's correction; the pairwise losses take none.
        """
        if self.kind == "sampled_softmax":
            return sampled_softmax_loss(positive_scores, negative_scores, log_q_pos, log_q_neg)
        if self.kind != "pairwise":
            raise ParameterError(f"the {self.kind} loss scores a matrix: use Loss.of_matrix")
        if log_q_pos is not None or log_q_neg is not None:
            raise ParameterError("the log-q correction applies to the softmax losses only")
        return _PAIRWISE[self.name].value(
            positive_scores, negative_scores, self.margin, self.n_items
        )

    def of_matrix(
        self,
        scores: torch.Tensor,
        positives: torch.Tensor,
        *,
        log_q_columns: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The full or in-batch softmax of a ``(B, columns)`` score matrix.

        For the full softmax the columns are every item and row ``b``'s target is item
        ``positives[b]``; in-batch, column ``c`` is the batch's positive ``c``, row ``b``'s
        target is column ``b``, and ``log_q_columns`` (the log-probability of each
        column's item being in a batch) is subtracted from every row.
        """
        if self.kind == "full_softmax":
            return full_softmax_loss(scores, positives)
        if self.kind != "in_batch_softmax":
            raise ParameterError(f"the {self.kind} loss scores pairs: call the Loss")
        target = torch.arange(len(positives), device=positives.device)
        shift = None if log_q_columns is None else -log_q_columns
        return softmax_cross_entropy(scores, target, shift)

    def of_batch(
        self,
        scores: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
        positives: torch.Tensor,
        negatives: torch.Tensor | None,
        log_q: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The loss of a training batch from its scores.

        ``scores`` is the score matrix of the matrix kinds, or the pair ``(positive
        scores, negative scores)``; ``log_q`` is the sampler's log-probability per item
        (None: uniform), applied by the softmax kinds (the log-q correction) and not
        used by the pairwise losses.
        """
        if self.kind in MATRIX_KINDS:
            columns = None if log_q is None else log_q[positives]
            return self.of_matrix(cast(torch.Tensor, scores), positives, log_q_columns=columns)
        positive_scores, negative_scores = scores
        if log_q is None or self.kind == "pairwise":
            return self(positive_scores, negative_scores)
        return self(
            positive_scores, negative_scores, log_q_pos=log_q[positives], log_q_neg=log_q[negatives]
        )

    @property
    def is_softmax(self) -> bool:
        """Any of the softmax kinds."""
        return self.kind != "pairwise"

    @property
    def pairwise_slope(self) -> Callable[[torch.Tensor, torch.Tensor], Slope] | None:
        """``slope(s_pos, s_neg) -> (loss, dL/ds_neg)`` in closed form for one negative
        per positive (what :mod:`tripletrec.models.triplet.fused` needs); None where the loss
        has none (WARP, the adaptive hinge, the softmax kinds)."""
        entry = _PAIRWISE.get(self.name) if self.kind == "pairwise" else None
        if entry is None or entry.slope is None:
            return None
        slope, margin = entry.slope, self.margin
        return lambda s_pos, s_neg: slope(s_pos, s_neg, margin)

    def with_n_items(self, n_items: int) -> Loss:
        """This loss for a catalogue of ``n_items``."""
        return dataclasses.replace(self, n_items=int(n_items))

    def sampled(self, n_items: int | None = None) -> Loss:
        """The same loss against sampled negatives (fold-in draws uniform ones)."""
        kind: LossKind = "sampled_softmax" if self.is_softmax else "pairwise"
        return dataclasses.replace(self, kind=kind, n_items=n_items or self.n_items)


#: Samplers that draw nothing: the training step builds the negatives from the batch.
_IMPLICIT_NEGATIVES: dict[str, LossKind] = {"all": "full_softmax", "in_batch": "in_batch_softmax"}


def resolve_loss(
    name: str, margin: float = 1.0, negatives: str = "uniform", n_items: int | None = None
) -> Loss:
    """The :class:`Loss` of the estimator settings ``loss``, ``margin`` and ``negatives``.

    ``loss="softmax"`` is the full softmax with ``negatives="all"``, the in-batch softmax
    with ``"in_batch"`` and the sampled softmax with any sampler; the pairwise losses need
    sampled negatives.

    Raises
    ------
    ParameterError
        For an unknown loss, a margin that is not a finite number, or a pairwise loss with
        implicit negatives.
    """
    if name not in LOSSES:
        raise ParameterError(f"unknown loss {name!r}; choose from {', '.join(LOSSES)}")
    margin = finite_number("margin", margin)
    implicit = _IMPLICIT_NEGATIVES.get(negatives) if isinstance(negatives, str) else None
    if name != "softmax":
        if implicit is not None:
            raise ParameterError(f"negatives={negatives!r} needs loss='softmax'")
        return Loss(name, margin, "pairwise", n_items)
    return Loss(name, margin, implicit or "sampled_softmax", n_items)


#: ``negatives="auto"`` keeps the full softmax while the score pairs of one epoch
#: (:func:`full_softmax_pairs`, times the factors its cost) are at most this; beyond it an
#: epoch is too slow and "auto" takes the in-batch softmax. Per-user batches count about
#: users x items pairs, so the bundled anime-5k (about 3.4e7) and synthetic catalogues of
#: 30,000 items (``benchmarks/perf/catalogue_size.py``) keep the full softmax; 100,000 items
#: with 50,000 users do not.
FULL_SOFTMAX_PAIR_BUDGET = 2_000_000_000

#: ``batch_by="auto"`` keeps shuffled positives for the full softmax while
#: ``n_positives * n_items`` is at most this, and groups each user's positives above it.
#: Shuffled positives rank slightly better where they are affordable, grouping is many
#: times faster above (``benchmarks/studies/user_batches.py`` has both, on validation splits):
#: MovieLens-100k stays below it, the bundled anime-5k is above.
PER_POSITIVE_PAIR_BUDGET = 250_000_000


def check_batch_by(batch_by: str, negatives: str) -> None:
    """Raise ``ParameterError`` for ``batch_by="user"`` with in-batch negatives: a batch
    of few users would make their own positives each other's negatives."""
    if batch_by == "user" and negatives == "in_batch":
        raise ParameterError(
            "batch_by='user' cannot train in-batch negatives: a user's positives would be "
            "each other's negatives; use batch_by='positive'"
        )


def resolve_batch_by(batch_by: str, negatives: str, n_positives: int, n_items: int) -> str:
    """What a fit's batches group: ``batch_by`` itself, or ``"auto"`` resolved.

    ``"auto"`` is ``"user"`` for the full softmax (``negatives="all"``) when
    ``n_positives * n_items > PER_POSITIVE_PAIR_BUDGET``, else ``"positive"``: only the
    full softmax scores every item once per distinct user of a batch.

    Raises
    ------
    ParameterError
        As :func:`check_batch_by`.
    """
    if batch_by == "auto":
        pairs = int(n_positives) * int(n_items)
        return "user" if negatives == "all" and pairs > PER_POSITIVE_PAIR_BUDGET else "positive"
    check_batch_by(batch_by, negatives)
    return batch_by


def full_softmax_pairs(batch_by: str, n_positives: int, n_users: int, n_items: int) -> int:
    """The (user, item) scores of one full-softmax epoch: ``n_positives * n_items`` for
    shuffled positives, about ``n_users * n_items`` for per-user batches (``batch_by``
    ``"auto"`` resolved as for the full softmax)."""
    # Python integers: the product of two large counts must not overflow.
    grouped = resolve_batch_by(batch_by, "all", n_positives, n_items) == "user"
    return (int(n_users) if grouped else int(n_positives)) * int(n_items)


def resolve_negatives(
    negatives: str,
    loss: str,
    n_positives: int,
    n_items: int,
    *,
    n_users: int | None = None,
    batch_by: str = "positive",
) -> str:
    """The negatives a fit uses: ``negatives`` itself, or ``"auto"`` resolved from the shape.

    ``"auto"`` with ``loss="softmax"`` is ``"all"`` (the full softmax) when its epoch
    scores at most ``FULL_SOFTMAX_PAIR_BUDGET`` pairs (:func:`full_softmax_pairs` with
    ``batch_by``; without ``n_users``, ``n_positives * n_items``), else ``"in_batch"``
    (the in-batch softmax, log-q corrected); with a pairwise loss it is ``"uniform"``.
    """
    if negatives != "auto":
        return negatives
    if loss != "softmax":
        return "uniform"
    if n_users is None:
        pairs = int(n_positives) * int(n_items)
    else:
        pairs = full_softmax_pairs(batch_by, n_positives, n_users, n_items)
    return "all" if pairs <= FULL_SOFTMAX_PAIR_BUDGET else "in_batch"


def get_loss(name: str, margin: float = 1.0, n_items: int | None = None) -> Loss:
    """The loss called ``name`` against sampled negatives, callable as
    ``loss(positive_scores, negative_scores)``."""
    return resolve_loss(name, margin, "uniform", n_items)
