"""The scorer interface: what training, fold-in, retrieval and data-parallel training may
ask of a scoring network, :func:`scoring`, the context for ranking-time scores, and
:class:`TripletNet`, which trains any scorer on (user, positive, negative) triplets
through that interface alone.

Scores for training and scores for ranking may differ (the bilinear model shrinks its item
bias when ranking): every scoring method says which it wants with ``for_ranking``, never
through the module's train/eval mode, which governs dropout alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, TypeVar

import scipy.sparse as sp
import torch
from torch import nn

from tripletrec.exceptions import ParameterError
from tripletrec.models.embeddings import FeatureEmbedding
from tripletrec.models.frozen import FrozenItems, FrozenVectorSpace, VectorSpace

Side = Literal["user", "item"]
ModuleT = TypeVar("ModuleT", bound=nn.Module)


@contextmanager
def scoring(module: ModuleT) -> Iterator[ModuleT]:
    """Score with ``module`` in eval mode (no dropout) and without autograd, then restore
    the mode it had: scoring in the middle of training leaves training as it was."""
    training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        module.train(training)


class Scorer(nn.Module):
    """Interface of the scoring networks.

    Besides scoring, a scorer tells its users what they need without reaching into it:
    which embeddings belong to users and to items (:meth:`entity_embeddings`), its vector
    space for retrieval (:meth:`vector_space`), and its frozen item side for fold-in
    (:meth:`frozen_items`).
    """

    n_users: int
    n_items: int

    def forward(
        self, users: torch.Tensor, items: torch.Tensor, *, for_ranking: bool = False
    ) -> torch.Tensor:
        """Scores of aligned (user, item) pairs; ``for_ranking``: as ranking weighs them."""
        raise NotImplementedError

    def score_all(
        self, users: torch.Tensor, items: torch.Tensor | None = None, *, for_ranking: bool
    ) -> torch.Tensor:
        """Scores of every user in ``users`` against ``items`` (all items when None).

        Returns a ``(len(users), n_candidate_items)`` tensor. ``for_ranking``: scores as
        recommendations rank items (True) or as the training loss sees them (False).
        """
        raise NotImplementedError

    def triplet_scores(
        self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training scores of (user, positive) and (user, negative); override to share work."""
        return self(users, positives), self(users, negatives)

    def item_vectors(self) -> torch.Tensor:
        """One vector per item, compared by cosine to find similar items."""
        raise NotImplementedError

    def entity_embeddings(self) -> dict[Side, list[nn.Module]]:
        """The embeddings of each side (id or feature embeddings, biases included)."""
        raise NotImplementedError

    def user_parts(self) -> list[nn.Module]:
        """The user embeddings whose concatenation is a user vector of :meth:`frozen_items`."""
        raise NotImplementedError

    def user_vectors(self) -> torch.Tensor:
        """Every trained user's vector, ``(n_users, user_dim)`` (see :meth:`user_parts`)."""
        return torch.cat([part.weight for part in self.user_parts()], dim=1)

    def vector_space(self, *, for_ranking: bool) -> VectorSpace | None:
        """Item vectors and terms whose dot product with :meth:`query_vectors` is the score
        (up to per-user terms); None when the model has none (the deep MLP)."""
        return None

    def query_vectors(self, user_vectors: torch.Tensor) -> torch.Tensor:
        """User vectors as they meet :meth:`vector_space` (scorers that have one)."""
        raise ParameterError(f"a {type(self).__name__} has no user/item vector space")

    def frozen_items(self, *, for_ranking: bool = False) -> FrozenItems:
        """The item side, detached, for fitting and scoring new user vectors (fold-in)."""
        raise ParameterError(f"cannot fold in users for a {type(self).__name__}")

    def set_item_features(self, matrix: sp.csr_matrix) -> None:
        """Use these item feature rows from now on (items added after training)."""
        for module in self.entity_embeddings()["item"]:
            if isinstance(module, FeatureEmbedding):
                module.set_matrix(matrix)
        self.n_items = matrix.shape[0]

    @property
    def fusable(self) -> bool:
        """Whether :mod:`tripletrec.models.triplet.fused` can train it."""
        return False

    @property
    def reads_item_rows_only(self) -> bool:
        """Whether training reads item embeddings only at the rows of the batch (so they
        may have sparse gradients, unless the loss scores every item)."""
        return True


class VectorSpaceScorer(Scorer):
    """A scorer of the form ``<query(u), item vector(i)> + item terms(i) [+ user terms(u)]``.

    Subclasses give :meth:`_item_side`; fold-in, its scores and retrieval then work on the
    vector space. ``ranking_bias_scale`` weighs the item terms when ranking.
    """

    ranking_bias_scale: float = 1.0
    #: Whether :meth:`query_vectors` is the identity (dot products of raw vectors).
    linear_query: bool = True

    def _item_side(
        self, items: torch.Tensor | None, *, for_ranking: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Item vectors and item terms (None: none) of ``items`` (all when None)."""
        raise NotImplementedError

    def _for_ranking(self, terms: torch.Tensor, for_ranking: bool) -> torch.Tensor:
        """``terms`` whole for training, times ``ranking_bias_scale`` for ranking."""
        if not for_ranking or self.ranking_bias_scale == 1.0:
            return terms
        return terms * self.ranking_bias_scale

    def query_vectors(self, user_vectors: torch.Tensor) -> torch.Tensor:
        return user_vectors

    def vector_space(self, *, for_ranking: bool) -> VectorSpace:
        return VectorSpace(*self._item_side(None, for_ranking=for_ranking))

    def frozen_items(self, *, for_ranking: bool = False) -> FrozenItems:
        with scoring(self):
            space = self.vector_space(for_ranking=for_ranking)
        return FrozenVectorSpace(self.query_vectors, space, linear=self.linear_query)


class TripletNet(nn.Module):
    """Scores (user, positive, negative) triplets with a shared scorer (training scores).

    The scorer's weights are this network's weights: there is no copy to keep in sync, and
    training the triplet network trains the scorer.
    """

    def __init__(self, scorer: Scorer) -> None:
        super().__init__()
        self.scorer = scorer

    def forward(
        self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if negatives.dim() == 2:  # K negatives per user: score them as a (B, K) block
            negative_scores = self.scorer(users[:, None].expand_as(negatives), negatives)
            return self.scorer(users, positives), negative_scores
        return self.scorer.triplet_scores(users, positives, negatives)
