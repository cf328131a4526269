"""The factorization machine scorer (Rendle, 2010) over a user field and an item field."""

from __future__ import annotations

import scipy.sparse as sp
import torch
from torch import nn

from tripletrec.models.embeddings import FeatureEmbedding, entity_embedding
from tripletrec.models.interface import Side, VectorSpaceScorer


class FactorizationMachineScorer(VectorSpaceScorer):
    """A factorization machine (Rendle, 2010) over a user field and an item field.

    The input of a (user, item) pair is the concatenation of the user's feature row and the
    item's (identity columns included, see :mod:`tripletrec.data.features`), and

    ``s(u, i) = sum_f w_f x_f + sum_{f < g} x_f x_g <v_f, v_g>``.

    Split by field, with ``a_u = sum_{f in u} x_f v_f`` and ``b_i`` likewise, the pairwise
    term is ``<a_u, b_i>`` (user-item interactions) plus the interactions within the user's
    features and within the item's (genre x genre, identity x genre), each computed in
    O(k n) as ``(|a|^2 - sum x_f^2 |v_f|^2) / 2``. The user-only terms cannot change a
    user's ranking but are kept, so that scores are the model's. Without side features it
    is a biased matrix factorisation (a single feature has no pairs). Its vector space is
    the dot product of ``a_u`` and ``b_i``, with the item-only terms as the item terms:
    fold-in and retrieval work on it as on the bilinear model's.

    Parameters
    ----------
    n_users, n_items : int
    n_factors : int
        Dimension of the factors ``v_f``.
    init_scale : float
        Factors start uniform in ``[-init_scale, init_scale]``; linear weights at zero.
    generator : torch.Generator, optional
    user_features, item_features : scipy.sparse.csr_matrix, optional
        Feature weights per user / item; None: identity only.
    ranking_bias_scale : float
        Weight of the item terms in scores ``for_ranking`` (see
        :class:`~tripletrec.models.scorers.BilinearScorer`).
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        n_factors: int = 64,
        init_scale: float = 0.05,
        generator: torch.Generator | None = None,
        *,
        user_features: sp.csr_matrix | None = None,
        item_features: sp.csr_matrix | None = None,
        ranking_bias_scale: float = 1.0,
    ) -> None:
        super().__init__()
        generator = generator or torch.Generator().manual_seed(0)
        self.n_users, self.n_items = n_users, n_items
        self.ranking_bias_scale = float(ranking_bias_scale)
        # The same modules, in the same order, as the bilinear dot model with item biases
        # (``item_bias`` holds the items' linear weights): saved models keep their names.
        self.user_embedding = entity_embedding(
            n_users, n_factors, init_scale, generator, user_features
        )
        self.item_embedding = entity_embedding(
            n_items, n_factors, init_scale, generator, item_features
        )
        self.item_bias = entity_embedding(n_items, 1, 0.0, generator, item_features)
        self.user_linear = entity_embedding(n_users, 1, 0.0, generator, user_features)

    def entity_embeddings(self) -> dict[Side, list[nn.Module]]:
        return {
            "user": [self.user_embedding, self.user_linear],
            "item": [self.item_embedding, self.item_bias],
        }

    def user_parts(self) -> list[nn.Module]:
        return [self.user_embedding]

    @staticmethod
    def _field(
        embedding: nn.Module, idx: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | float]:
        """Factor sums and within-field interactions of entities ``idx`` (all when None)."""
        if isinstance(embedding, FeatureEmbedding):
            return embedding.pairwise(idx)
        vectors = embedding.weight if idx is None else embedding(idx)
        return vectors, 0.0  # one feature: no pairs

    # Each side's factor sums and its within-field pairs come from one pass over its
    # features: one computation, and with identity dropout one draw for both.
    def _user_side(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """User factor sums and user-only terms (linear + within-user pairs)."""
        vectors, pairs = self._field(self.user_embedding, users)
        return vectors, self.user_linear(users).squeeze(-1) + pairs

    def _item_side(
        self, items: torch.Tensor | None, *, for_ranking: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Item factor sums and item-only terms (linear + within-item pairs)."""
        vectors, pairs = self._field(self.item_embedding, items)
        linear = self.item_bias.weight if items is None else self.item_bias(items)
        return vectors, self._for_ranking(linear.squeeze(-1) + pairs, for_ranking)

    def forward(
        self, users: torch.Tensor, items: torch.Tensor, *, for_ranking: bool = False
    ) -> torch.Tensor:
        (user_vectors, user_terms), (item_vectors, item_terms) = (
            self._user_side(users),
            self._item_side(items, for_ranking=for_ranking),
        )
        return (user_vectors * item_vectors).sum(-1) + user_terms + item_terms

    def score_all(
        self, users: torch.Tensor, items: torch.Tensor | None = None, *, for_ranking: bool
    ) -> torch.Tensor:
        (user_vectors, user_terms), (item_vectors, item_terms) = (
            self._user_side(users),
            self._item_side(items, for_ranking=for_ranking),
        )
        scores = user_vectors @ item_vectors.T + item_terms
        # A user's own terms are one constant over the items: they rank nothing, and
        # without them ranking scores are those of the vector space (an index's).
        return scores if for_ranking else scores + user_terms[:, None]

    def item_vectors(self) -> torch.Tensor:
        return self.item_embedding.weight

    def triplet_scores(
        self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        user_vectors, user_terms = self._user_side(users)
        positive_vectors, positive_terms = self._item_side(positives, for_ranking=False)
        negative_vectors, negative_terms = self._item_side(negatives, for_ranking=False)
        return (
            (user_vectors * positive_vectors).sum(-1) + positive_terms + user_terms,
            (user_vectors * negative_vectors).sum(-1) + negative_terms + user_terms,
        )
