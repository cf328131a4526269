"""Scoring networks (user, item) -> score.

A *scorer* maps aligned user and item index tensors to one score per pair; it is the
notebook's "match model" (the interface: :mod:`tripletrec.models.interface`, which also
holds :class:`TripletNet`, the triplet network that trains a scorer). The factorization
machine is in :mod:`tripletrec.models.fm`, the embeddings in
:mod:`tripletrec.models.embeddings`; these, ``Scorer`` and ``TripletNet`` are importable
from here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Final, Literal, get_args

import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from tripletrec._checks import fraction, one_of
from tripletrec.exceptions import ParameterError
from tripletrec.models.embeddings import (
    FeatureEmbedding,
    count_parameters,
    embedding_tables,
    entity_embedding,
    glorot_uniform,
)
from tripletrec.models.fm import FactorizationMachineScorer
from tripletrec.models.frozen import ACTIVATION_BUDGET, FrozenItems, FrozenMLP, pairwise_blocks
from tripletrec.models.interface import Scorer, Side, TripletNet, VectorSpaceScorer, scoring

__all__ = [
    "ACTIVATION_BUDGET",
    "COSINE",
    "DOT",
    "SIMILARITIES",
    "BilinearScorer",
    "DeepScorer",
    "FactorizationMachineScorer",
    "FeatureEmbedding",
    "Scorer",
    "Similarity",
    "TripletNet",
    "VectorSpaceScorer",
    "count_parameters",
    "embedding_tables",
    "entity_embedding",
    "scoring",
]

#: How :class:`BilinearScorer` compares a user and an item embedding. The values are plain
#: strings because saved models and run configs store them as such.
Similarity = Literal["cosine", "dot"]
COSINE: Final = "cosine"
DOT: Final = "dot"
SIMILARITIES: tuple[Similarity, ...] = get_args(Similarity)


class BilinearScorer(VectorSpaceScorer):
    """Score = similarity of a user embedding and an item embedding (+ an item bias).

    Parameters
    ----------
    n_users, n_items : int
    n_factors : int
        Embedding dimension.
    similarity : {"cosine", "dot"}
        Cosine of the embeddings (the notebook's ``Dot(normalize=True)``) or their dot
        product.
    item_bias : bool
        Add a learned per-item bias (popularity) to the score.
    init_scale : float
        Embeddings start uniform in ``[-init_scale, init_scale]``.
    generator : torch.Generator, optional
        Source of the initial weights.
    learn_temperature : bool
        Cosine only: multiply the cosine by a learned ``exp(log_scale)`` (one inverse
        temperature for the model, starting at 1), so softmax-type losses can sharpen
        scores that are otherwise confined to [-1, 1].
    user_features, item_features : scipy.sparse.csr_matrix, optional
        Feature weights per user / item (identity columns included, see
        :mod:`tripletrec.data.features`): the embeddings (and item biases) become sums of
        feature embeddings (:class:`FeatureEmbedding`).
    ranking_bias_scale : float
        Weight of the item bias in scores ``for_ranking``; training always uses the whole
        bias. A softmax-trained bias measures how often an item is among everything users
        consume. The items left to rank for a user are the ones they have *not* consumed
        yet, and there a popular item is less likely than its overall popularity says
        (had the user wanted it, they would often have it already), so ranking with a
        shrunken bias ranks held-out positives better.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        n_factors: int = 64,
        similarity: Similarity = COSINE,
        item_bias: bool = False,
        init_scale: float = 0.05,
        generator: torch.Generator | None = None,
        learn_temperature: bool = False,
        *,
        user_features: sp.csr_matrix | None = None,
        item_features: sp.csr_matrix | None = None,
        ranking_bias_scale: float = 1.0,
    ) -> None:
        super().__init__()
        one_of("similarity", similarity, SIMILARITIES)
        generator = generator or torch.Generator().manual_seed(0)
        self.n_users, self.n_items, self.similarity = n_users, n_items, similarity
        self.ranking_bias_scale = float(ranking_bias_scale)
        self.linear_query = similarity == DOT
        self.user_embedding = entity_embedding(
            n_users, n_factors, init_scale, generator, user_features
        )
        self.item_embedding = entity_embedding(
            n_items, n_factors, init_scale, generator, item_features
        )
        self.item_bias = None
        if item_bias:
            self.item_bias = entity_embedding(n_items, 1, 0.0, generator, item_features)
        self.log_scale = None
        if learn_temperature:
            if similarity != COSINE:
                raise ParameterError(f"learn_temperature applies to similarity={COSINE!r} only")
            self.log_scale = nn.Parameter(torch.zeros(()))

    @property
    def fusable(self) -> bool:
        """No temperature, not a subclass: :mod:`tripletrec.models.triplet.fused` can train
        it, if it has the similarity's gradients (``FusedBilinearStep.similarities``, which
        ``FusedBilinearStep.can_train`` checks: this module does not import the step)."""
        return type(self) is BilinearScorer and self.log_scale is None

    @property
    def reads_item_rows_only(self) -> bool:
        # Cosine normalises the whole item table when batches outnumber the items.
        return self.similarity != COSINE

    def entity_embeddings(self) -> dict[Side, list[nn.Module]]:
        items = [self.item_embedding] + ([] if self.item_bias is None else [self.item_bias])
        return {"user": [self.user_embedding], "item": items}

    def user_parts(self) -> list[nn.Module]:
        return [self.user_embedding]

    def _scaled(self, similarities: torch.Tensor) -> torch.Tensor:
        return similarities if self.log_scale is None else similarities * self.log_scale.exp()

    def _users(self, users: torch.Tensor) -> torch.Tensor:
        vectors = self.user_embedding(users)
        return F.normalize(vectors, dim=-1) if self.similarity == COSINE else vectors

    def query_vectors(self, user_vectors: torch.Tensor) -> torch.Tensor:
        """User vectors from outside the model (folded in, exported) as they meet the
        item vectors: normalised for cosine, times the learned inverse temperature, so
        ``query_vectors(u) @ item_vectors.T + item_terms`` is the model's score. The
        temperature is detached: the model's weights get no gradient through these."""
        if self.similarity == COSINE:
            user_vectors = F.normalize(user_vectors, dim=-1)
        if self.log_scale is None:
            return user_vectors
        return user_vectors * self.log_scale.detach().exp()

    def _items(self, items: torch.Tensor | None) -> torch.Tensor:
        vectors = self.item_embedding.weight if items is None else self.item_embedding(items)
        return F.normalize(vectors, dim=-1) if self.similarity == COSINE else vectors

    def _item_bias(self, items: torch.Tensor | None, for_ranking: bool) -> torch.Tensor | None:
        """The item bias (None without one), whole or as ranking weighs it."""
        if self.item_bias is None:
            return None
        bias = self.item_bias.weight if items is None else self.item_bias(items)
        return self._for_ranking(bias.squeeze(-1), for_ranking)

    def _bias(self, items: torch.Tensor | None, for_ranking: bool) -> torch.Tensor | float:
        bias = self._item_bias(items, for_ranking)
        return 0.0 if bias is None else bias

    def _item_side(
        self, items: torch.Tensor | None, *, for_ranking: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self._items(items), self._item_bias(items, for_ranking)

    def forward(
        self, users: torch.Tensor, items: torch.Tensor, *, for_ranking: bool = False
    ) -> torch.Tensor:
        similarities = (self._users(users) * self._items(items)).sum(-1)
        return self._scaled(similarities) + self._bias(items, for_ranking)

    def score_all(
        self, users: torch.Tensor, items: torch.Tensor | None = None, *, for_ranking: bool
    ) -> torch.Tensor:
        similarities = self._users(users) @ self._items(items).T
        return self._scaled(similarities) + self._bias(items, for_ranking)

    def item_vectors(self) -> torch.Tensor:
        return self.item_embedding.weight

    def triplet_scores(
        self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # The user vector is looked up (and normalised) once for both items, and for cosine
        # with batches larger than the catalogue, normalising the whole item table once is
        # cheaper than normalising two gathered rows per triplet.
        user_vectors = self._users(users)
        if self.similarity == COSINE and 2 * len(users) > self.n_items:
            table = F.normalize(self.item_embedding.weight, dim=-1)
            positive_vectors, negative_vectors = table[positives], table[negatives]
        else:
            positive_vectors, negative_vectors = self._items(positives), self._items(negatives)
        positive_scores = self._scaled((user_vectors * positive_vectors).sum(-1))
        negative_scores = self._scaled((user_vectors * negative_vectors).sum(-1))
        positive_scores = positive_scores + self._bias(positives, False)
        negative_scores = negative_scores + self._bias(negatives, False)
        return positive_scores, negative_scores


class DeepScorer(Scorer):
    """Score = MLP(concat(user embedding, item embedding)), the notebook's deep match model.

    Parameters
    ----------
    n_users, n_items : int
    user_dim, item_dim : int
        Embedding dimensions.
    hidden_layers : sequence of int
        Widths of the hidden layers (ReLU, then dropout, after each).
    dropout : float
        Dropout rate after each hidden layer.
    init_scale : float
        Embeddings start uniform in ``[-init_scale, init_scale]``.
    generator : torch.Generator, optional
        Source of the initial weights.
    dot_factors : int
        If positive, a dot product of separate ``dot_factors``-dimensional user and item
        embeddings is added to the MLP's output (NeuMF-style: the MLP learns what the dot
        product cannot, and the dot product gives the MLP a strong bilinear baseline).
    user_features, item_features : scipy.sparse.csr_matrix, optional
        Feature weights per user / item, as in :class:`BilinearScorer`.

    It has no item-only term, so ``for_ranking`` changes nothing; there is no vector
    space either (retrieval scores it exactly).
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        user_dim: int = 32,
        item_dim: int = 64,
        hidden_layers: Sequence[int] = (128,),
        dropout: float = 0.1,
        init_scale: float = 0.05,
        generator: torch.Generator | None = None,
        dot_factors: int = 0,
        *,
        user_features: sp.csr_matrix | None = None,
        item_features: sp.csr_matrix | None = None,
    ) -> None:
        super().__init__()
        fraction("dropout", dropout)
        generator = generator or torch.Generator().manual_seed(0)
        self.n_users, self.n_items = n_users, n_items
        self.user_embedding = entity_embedding(
            n_users, user_dim, init_scale, generator, user_features
        )
        self.item_embedding = entity_embedding(
            n_items, item_dim, init_scale, generator, item_features
        )
        widths = [user_dim + item_dim, *hidden_layers]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(widths))
        self.output = nn.Linear(widths[-1], 1)
        self.dropout = nn.Dropout(dropout)
        for layer in [*self.hidden, self.output]:
            glorot_uniform(layer, generator)
        self.user_dot = self.item_dot = None
        if dot_factors > 0:
            self.user_dot = entity_embedding(
                n_users, dot_factors, init_scale, generator, user_features
            )
            self.item_dot = entity_embedding(
                n_items, dot_factors, init_scale, generator, item_features
            )

    def entity_embeddings(self) -> dict[Side, list[nn.Module]]:
        return {
            "user": [m for m in (self.user_embedding, self.user_dot) if m is not None],
            "item": [m for m in (self.item_embedding, self.item_dot) if m is not None],
        }

    def user_parts(self) -> list[nn.Module]:
        return self.entity_embeddings()["user"]

    def _mlp_after_first(self, h: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden[1:]:
            h = self.dropout(F.relu(layer(h)))
        return self.output(h).squeeze(-1)

    def _first_layer(self) -> nn.Linear:
        return self.hidden[0] if len(self.hidden) else self.output

    def _head(self, pre: torch.Tensor) -> torch.Tensor:
        """The scores from the first layer's pre-activation on."""
        if not len(self.hidden):
            return pre.squeeze(-1)
        return self._mlp_after_first(self.dropout(F.relu(pre)))

    def forward(
        self, users: torch.Tensor, items: torch.Tensor, *, for_ranking: bool = False
    ) -> torch.Tensor:
        x = torch.cat([self.user_embedding(users), self.item_embedding(items)], dim=-1)
        if not len(self.hidden):
            scores = self.output(x).squeeze(-1)
        else:
            scores = self._mlp_after_first(self.dropout(F.relu(self.hidden[0](x))))
        if self.user_dot is not None:
            scores = scores + (self.user_dot(users) * self.item_dot(items)).sum(-1)
        return scores

    def score_all(
        self, users: torch.Tensor, items: torch.Tensor | None = None, *, for_ranking: bool
    ) -> torch.Tensor:
        # W [u; i] + b = W_u u + (W_i i + b): the first layer is applied once per user and once
        # per item, then broadcast, instead of once per (user, item) pair.
        first = self._first_layer()
        user_dim = self.user_embedding.embedding_dim
        item_vectors = self.item_embedding.weight if items is None else self.item_embedding(items)
        user_part = self.user_embedding(users) @ first.weight[:, :user_dim].T
        item_part = item_vectors @ first.weight[:, user_dim:].T + first.bias
        scores = pairwise_blocks(user_part, item_part, self._head)
        if self.user_dot is not None:
            item_dot = self.item_dot.weight if items is None else self.item_dot(items)
            scores = scores + self.user_dot(users) @ item_dot.T
        return scores

    def item_vectors(self) -> torch.Tensor:
        if self.item_dot is None:
            return self.item_embedding.weight
        return torch.cat([self.item_embedding.weight, self.item_dot.weight], dim=1)

    def frozen_items(self, *, for_ranking: bool = False) -> FrozenItems:
        with scoring(self):
            first = self._first_layer()
            user_dim = self.user_embedding.embedding_dim
            # The item half of the first layer, plus the bias, once per item.
            item_part = self.item_embedding.weight @ first.weight[:, user_dim:].T + first.bias
            later = [(layer.weight, layer.bias) for layer in self.hidden[1:]]
            output = (self.output.weight, self.output.bias) if len(self.hidden) else None
            item_dot = None if self.item_dot is None else self.item_dot.weight
            return FrozenMLP(first.weight[:, :user_dim], item_part, later, output, item_dot)
