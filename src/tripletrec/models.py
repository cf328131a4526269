"""Scoring networks (user, item) -> score, and the triplet network that trains them.

A *scorer* maps aligned user and item index tensors to one score per pair; it is the
notebook's "match model". :class:`TripletNet` wraps a scorer and scores (user, positive,
negative) triplets with the very same weights, so training the triplet network trains the
scorer.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

#: Largest number of first-layer activations materialised at once when scoring all pairs.
_ACTIVATION_BUDGET = 1 << 24


def _uniform_embedding(n: int, dim: int, scale: float, generator: torch.Generator) -> nn.Embedding:
    # Keras' default embedding initialiser, U(-0.05, 0.05), which the notebook relies on.
    embedding = nn.Embedding(n, dim)
    with torch.no_grad():
        embedding.weight.uniform_(-scale, scale, generator=generator)
    return embedding


class Scorer(nn.Module):
    """Interface of the scoring networks."""

    n_users: int
    n_items: int

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def score_all(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        """Scores of every user in ``users`` against ``items`` (all items when None).

        Returns a ``(len(users), n_candidate_items)`` tensor.
        """
        raise NotImplementedError

    def item_vectors(self) -> torch.Tensor:
        """One vector per item, compared by cosine to find similar items."""
        raise NotImplementedError

    def triplet_scores(
        self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores of (user, positive) and (user, negative); override to share work."""
        return self(users, positives), self(users, negatives)


class BilinearScorer(Scorer):
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
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        n_factors: int = 64,
        similarity: str = "cosine",
        item_bias: bool = False,
        init_scale: float = 0.05,
        generator: torch.Generator | None = None,
        learn_temperature: bool = False,
    ) -> None:
        super().__init__()
        if similarity not in ("cosine", "dot"):
            raise ValueError(f"similarity must be 'cosine' or 'dot', not {similarity!r}")
        generator = generator or torch.Generator().manual_seed(0)
        self.n_users, self.n_items, self.similarity = n_users, n_items, similarity
        self.user_embedding = _uniform_embedding(n_users, n_factors, init_scale, generator)
        self.item_embedding = _uniform_embedding(n_items, n_factors, init_scale, generator)
        self.item_bias = nn.Embedding(n_items, 1) if item_bias else None
        if self.item_bias is not None:
            nn.init.zeros_(self.item_bias.weight)
        self.log_scale = None
        if learn_temperature:
            if similarity != "cosine":
                raise ValueError("learn_temperature applies to similarity='cosine' only")
            self.log_scale = nn.Parameter(torch.zeros(()))

    def _scaled(self, similarities: torch.Tensor) -> torch.Tensor:
        return similarities if self.log_scale is None else similarities * self.log_scale.exp()

    def _users(self, users: torch.Tensor) -> torch.Tensor:
        vectors = self.user_embedding(users)
        return F.normalize(vectors, dim=-1) if self.similarity == "cosine" else vectors

    def _items(self, items: torch.Tensor | None) -> torch.Tensor:
        vectors = self.item_embedding.weight if items is None else self.item_embedding(items)
        return F.normalize(vectors, dim=-1) if self.similarity == "cosine" else vectors

    def _bias(self, items: torch.Tensor | None) -> torch.Tensor | float:
        if self.item_bias is None:
            return 0.0
        bias = self.item_bias.weight if items is None else self.item_bias(items)
        return bias.squeeze(-1)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        similarities = (self._users(users) * self._items(items)).sum(-1)
        return self._scaled(similarities) + self._bias(items)

    def score_all(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        return self._scaled(self._users(users) @ self._items(items).T) + self._bias(items)

    def item_vectors(self) -> torch.Tensor:
        return self.item_embedding.weight

    def triplet_scores(
        self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # The user vector is looked up (and normalised) once for both items, and for cosine
        # with batches larger than the catalogue, normalising the whole item table once is
        # cheaper than normalising two gathered rows per triplet.
        user_vectors = self._users(users)
        if self.similarity == "cosine" and 2 * len(users) > self.n_items:
            table = F.normalize(self.item_embedding.weight, dim=-1)
            positive_vectors, negative_vectors = table[positives], table[negatives]
        else:
            positive_vectors, negative_vectors = self._items(positives), self._items(negatives)
        positive_scores = self._scaled((user_vectors * positive_vectors).sum(-1))
        negative_scores = self._scaled((user_vectors * negative_vectors).sum(-1))
        positive_scores = positive_scores + self._bias(positives)
        negative_scores = negative_scores + self._bias(negatives)
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
    dot_factors : int
        If positive, a dot product of separate ``dot_factors``-dimensional user and item
        embeddings is added to the MLP's output (NeuMF-style: the MLP learns what the dot
        product cannot, and the dot product gives the MLP a strong bilinear baseline).
    init_scale : float
        Embeddings start uniform in ``[-init_scale, init_scale]``.
    generator : torch.Generator, optional
        Source of the initial weights.
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
    ) -> None:
        super().__init__()
        generator = generator or torch.Generator().manual_seed(0)
        self.n_users, self.n_items = n_users, n_items
        self.user_embedding = _uniform_embedding(n_users, user_dim, init_scale, generator)
        self.item_embedding = _uniform_embedding(n_items, item_dim, init_scale, generator)
        widths = [user_dim + item_dim, *hidden_layers]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(widths))
        self.output = nn.Linear(widths[-1], 1)
        self.dropout = nn.Dropout(dropout)
        for layer in [*self.hidden, self.output]:
            _glorot_uniform(layer, generator)
        self.user_dot = self.item_dot = None
        if dot_factors > 0:
            self.user_dot = _uniform_embedding(n_users, dot_factors, init_scale, generator)
            self.item_dot = _uniform_embedding(n_items, dot_factors, init_scale, generator)

    def _mlp_after_first(self, h: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden[1:]:
            h = self.dropout(F.relu(layer(h)))
        return self.output(h).squeeze(-1)

    def _first_layer(self) -> nn.Linear:
        return self.hidden[0] if len(self.hidden) else self.output

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.user_embedding(users), self.item_embedding(items)], dim=-1)
        if not len(self.hidden):
            scores = self.output(x).squeeze(-1)
        else:
            scores = self._mlp_after_first(self.dropout(F.relu(self.hidden[0](x))))
        if self.user_dot is not None:
            scores = scores + (self.user_dot(users) * self.item_dot(items)).sum(-1)
        return scores

    def score_all(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        # W [u; i] + b = W_u u + (W_i i + b): the first layer is applied once per user and once
        # per item, then broadcast, instead of once per (user, item) pair.
        first = self._first_layer()
        user_dim = self.user_embedding.embedding_dim
        item_vectors = self.item_embedding.weight if items is None else self.item_embedding(items)
        user_part = self.user_embedding(users) @ first.weight[:, :user_dim].T
        item_part = item_vectors @ first.weight[:, user_dim:].T + first.bias
        # The (users, items, hidden) activations are the memory peak: bound them.
        step = max(1, _ACTIVATION_BUDGET // max(1, item_part.numel()))
        blocks = []
        for user_block in user_part.split(step):
            pre = user_block[:, None, :] + item_part[None, :, :]
            if not len(self.hidden):
                blocks.append(pre.squeeze(-1))
            else:
                blocks.append(self._mlp_after_first(self.dropout(F.relu(pre))))
        scores = torch.cat(blocks)
        if self.user_dot is not None:
            item_dot = self.item_dot.weight if items is None else self.item_dot(items)
            scores = scores + self.user_dot(users) @ item_dot.T
        return scores

    def item_vectors(self) -> torch.Tensor:
        if self.item_dot is None:
            return self.item_embedding.weight
        return torch.cat([self.item_embedding.weight, self.item_dot.weight], dim=1)


def _glorot_uniform(layer: nn.Linear, generator: torch.Generator) -> None:
    # Keras' Dense default (Glorot uniform weights, zero bias), as in the notebook.
    fan_out, fan_in = layer.weight.shape
    limit = (6.0 / (fan_in + fan_out)) ** 0.5
    with torch.no_grad():
        layer.weight.uniform_(-limit, limit, generator=generator)
        layer.bias.zero_()


class TripletNet(nn.Module):
    """Scores (user, positive, negative) triplets with a shared scorer.

    The scorer's weights are this network's weights: there is no copy to keep in sync.
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


def embedding_tables(module: nn.Module) -> list[torch.Tensor]:
    """The weights of every embedding with more than one dimension (biases left out)."""
    return [
        m.weight for m in module.modules() if isinstance(m, nn.Embedding) and m.embedding_dim > 1
    ]


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
