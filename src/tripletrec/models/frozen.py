"""The item side of a fitted scorer, frozen: what new user vectors are fitted and scored against.

A scorer builds its own frozen item side (:meth:`~tripletrec.models.scorers.Scorer.frozen_items`):
detached tensors, so fold-in (:mod:`tripletrec.models.foldin`) can optimise free user vectors
against them without writing gradients into the model, and without knowing which model it
folds in for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

import torch
import torch.nn.functional as F

#: Largest number of first-layer activations materialised at once when scoring all pairs.
ACTIVATION_BUDGET = 1 << 24


class VectorSpace(NamedTuple):
    """Item vectors whose dot product with a query vector, plus the item terms, is the
    model's score (up to a per-user constant)."""

    item_vectors: torch.Tensor
    #: The item-only part of the score, ``(n_items,)``; None when there is none.
    item_terms: torch.Tensor | None


def pairwise_blocks(
    user_part: torch.Tensor, item_part: torch.Tensor, head: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """``head(user_part[u] + item_part[i])`` for every (user, item) pair, ``(users, items)``.

    The ``(users, items, width)`` sums are the memory peak: they are made for a block of
    users at a time, bounded by :data:`ACTIVATION_BUDGET`.
    """
    step = max(1, ACTIVATION_BUDGET // max(1, item_part.numel()))
    blocks = [head(block[:, None, :] + item_part[None, :, :]) for block in user_part.split(step)]
    return torch.cat(blocks)


class FrozenItems(Protocol):
    """Scores of free user vectors against a fitted model's items (no gradient to the model).

    A *user vector* has :attr:`user_dim` entries, the concatenation of the model's user
    embeddings (:meth:`~tripletrec.models.scorers.Scorer.user_parts`).
    """

    #: Length of a user vector.
    user_dim: int
    #: Whether scoring every item is cheap enough for the full-softmax fold-in.
    supports_full_softmax: bool

    @property
    def linear_items(self) -> torch.Tensor | None:
        """The item vectors when a score is ``<user vector, item vector> + item term``
        with the user vector as it is (a dot product: Newton's method applies)."""

    def user_side(self, users: torch.Tensor) -> torch.Tensor:
        """Per-user work, done once per user rather than once per (user, item) pair."""

    def pair_scores(self, row_vectors: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of pairs, from :meth:`user_side` rows gathered per pair and item indices."""

    def all_scores(self, row_vectors: torch.Tensor) -> torch.Tensor:
        """Scores of :meth:`user_side` rows against every item, ``(rows, n_items)``."""


class FrozenVectorSpace:
    """The frozen item side of a scorer with a vector space (bilinear, FM).

    Parameters
    ----------
    query : callable
        The scorer's :meth:`~tripletrec.models.scorers.Scorer.query_vectors`.
    space : VectorSpace
        Detached item vectors and terms.
    linear : bool
        Whether ``query`` is the identity (a dot-product model).
    """

    supports_full_softmax = True

    def __init__(
        self, query: Callable[[torch.Tensor], torch.Tensor], space: VectorSpace, linear: bool
    ) -> None:
        self.query = query
        self.item_vectors = space.item_vectors.detach()
        self.item_terms = None if space.item_terms is None else space.item_terms.detach()
        self.user_dim = self.item_vectors.shape[1]
        self.linear = linear

    @property
    def linear_items(self) -> torch.Tensor | None:
        return self.item_vectors if self.linear else None

    def user_side(self, users: torch.Tensor) -> torch.Tensor:
        return self.query(users)

    def pair_scores(self, row_vectors: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        scores = (row_vectors * self.item_vectors[items]).sum(-1)
        return scores if self.item_terms is None else scores + self.item_terms[items]

    def all_scores(self, row_vectors: torch.Tensor) -> torch.Tensor:
        scores = row_vectors @ self.item_vectors.T
        return scores if self.item_terms is None else scores + self.item_terms


class FrozenMLP:
    """The frozen item side of the deep model: the MLP on ``[user; item]``, dropout off.

    The first layer splits as ``W [u; i] + b = W_u u + (W_i i + b)``: the item half is
    computed once per item here, the user half once per user (:meth:`user_side`). With a
    dot-product branch, a user vector is the MLP embedding followed by the dot embedding.

    Parameters
    ----------
    w_user : torch.Tensor
        The first layer's user columns, ``(width, user_dim)``.
    item_part : torch.Tensor
        The first layer on every item, bias included, ``(n_items, width)``.
    later : list of (weight, bias)
        The hidden layers after the first.
    output : (weight, bias) or None
        The output layer; None when the first layer is the output (no hidden layers).
    item_dot : torch.Tensor or None
        The dot-product branch's item embeddings.
    """

    supports_full_softmax = False
    linear_items = None

    def __init__(
        self,
        w_user: torch.Tensor,
        item_part: torch.Tensor,
        later: list[tuple[torch.Tensor, torch.Tensor]],
        output: tuple[torch.Tensor, torch.Tensor] | None,
        item_dot: torch.Tensor | None,
    ) -> None:
        # Detached copies: backpropagating into the user vectors must not write
        # gradients into the shared model's weights.
        self.w_user = w_user.detach()
        self.item_part = item_part.detach()
        self.later = [(weight.detach(), bias.detach()) for weight, bias in later]
        self.output = None if output is None else (output[0].detach(), output[1].detach())
        self.item_dot = None if item_dot is None else item_dot.detach()
        self.split = self.w_user.shape[1]
        self.width = self.w_user.shape[0]
        self.user_dim = self.split + (0 if self.item_dot is None else self.item_dot.shape[1])

    def user_side(self, users: torch.Tensor) -> torch.Tensor:
        first = users[:, : self.split] @ self.w_user.T
        return torch.cat([first, users[:, self.split :]], dim=1)

    def mlp(self, pre: torch.Tensor) -> torch.Tensor:
        """The scores from the first layer's pre-activation on."""
        if self.output is None:
            return pre.squeeze(-1)
        h = F.relu(pre)
        for weight, bias in self.later:
            h = F.relu(F.linear(h, weight, bias))
        return F.linear(h, *self.output).squeeze(-1)

    def pair_scores(self, row_vectors: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        scores = self.mlp(row_vectors[:, : self.width] + self.item_part[items])
        if self.item_dot is not None:
            scores = scores + (row_vectors[:, self.width :] * self.item_dot[items]).sum(-1)
        return scores

    def all_scores(self, row_vectors: torch.Tensor) -> torch.Tensor:
        scores = pairwise_blocks(row_vectors[:, : self.width], self.item_part, self.mlp)
        if self.item_dot is not None:
            scores = scores + row_vectors[:, self.width :] @ self.item_dot.T
        return scores
