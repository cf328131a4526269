"""Scoring networks (user, item) -> score, and the triplet network that trains them.

A *scorer* maps aligned user and item index tensors to one score per pair; it is the
notebook's "match model". :class:`TripletNet` wraps a scorer and scores (user, positive,
negative) triplets with the very same weights, so training the triplet network trains the
scorer.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np
import scipy.sparse as sp
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


class FeatureEmbedding(nn.Module):
    """Entity vectors as weighted sums of feature embeddings (LightFM-style).

    Row ``i`` of a sparse ``(n_entities, n_features)`` matrix lists the features of entity
    ``i`` (side features and its identity column, see :mod:`tripletrec.data.features`) with
    their weights; the entity's vector is ``matrix[i] @ table``. It stands in for an
    ``nn.Embedding`` of ``n_entities`` rows: calling it with indices gives their vectors,
    and ``weight`` gives every entity's vector (computed, not a parameter).

    Parameters
    ----------
    matrix : scipy.sparse.csr_matrix
        The entities' feature weights.
    dim : int
        Embedding dimension.
    init_scale : float
        Feature embeddings start uniform in ``[-init_scale, init_scale]``; 0 starts them
        at zero (biases).
    generator : torch.Generator
        Source of the initial weights.

    Attributes
    ----------
    identity_dropout : float
        In training mode, the share of identity entries (columns from ``first_identity``
        on) dropped at random in each call, so that the side features alone must
        represent the entity part of the time, as they will for entities added after
        training (DropoutNet, Volkovs et al., 2017). 0 (the default) drops nothing.
    first_identity : int or None
        The first identity column (the estimator sets it; None: no identity columns).
    """

    identity_dropout: float = 0.0
    first_identity: int | None = None

    def __init__(
        self, matrix: sp.csr_matrix, dim: int, init_scale: float, generator: torch.Generator
    ) -> None:
        super().__init__()
        self.table = nn.Embedding(matrix.shape[1], dim)
        with torch.no_grad():
            if init_scale > 0:
                self.table.weight.uniform_(-init_scale, init_scale, generator=generator)
            else:
                self.table.weight.zero_()
        self.set_matrix(matrix)

    def set_matrix(self, matrix: sp.csr_matrix) -> None:
        """Use ``matrix`` (same feature columns, any number of rows) from now on."""
        matrix = sp.csr_matrix(matrix, dtype=np.float32)
        if matrix.shape[1] != self.table.num_embeddings:
            raise ValueError(
                f"matrix has {matrix.shape[1]} feature columns, "
                f"the table {self.table.num_embeddings}"
            )
        # Not persistent: the matrices are data, saved once by the estimator rather than
        # once per embedding that reads them.
        device = self.table.weight.device
        for name, array, dtype in (
            ("indptr", matrix.indptr, torch.int64),
            ("indices", matrix.indices, torch.int64),
            ("values", matrix.data, torch.float32),
        ):
            tensor = torch.as_tensor(array, dtype=dtype, device=device)
            self.register_buffer(name, tensor, persistent=False)
        self.num_embeddings = matrix.shape[0]

    @property
    def embedding_dim(self) -> int:
        return self.table.embedding_dim

    def _bags(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Feature columns, bag offsets and weights of the rows ``idx`` (flat)."""
        starts = self.indptr[idx]
        lengths = self.indptr[idx + 1] - starts
        offsets = torch.cumsum(lengths, 0) - lengths
        total = int(lengths.sum())
        position = torch.arange(total, device=idx.device) + torch.repeat_interleave(
            starts - offsets, lengths, output_size=total
        )
        return self.indices[position], offsets, self.values[position]

    def _inputs(self, idx: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Bag inputs of rows ``idx`` (flat; all rows when None), identity dropout applied."""
        if idx is None:
            columns, offsets, weights = self.indices, self.indptr[:-1], self.values
        else:
            columns, offsets, weights = self._bags(idx)
        if self.training and self.identity_dropout > 0 and self.first_identity is not None:
            dropped = (columns >= self.first_identity) & (
                torch.rand(columns.shape, device=columns.device) < self.identity_dropout
            )
            weights = weights.masked_fill(dropped, 0.0)
        return columns, offsets, weights

    def _sum(self, table: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        columns, offsets, weights = self._inputs(idx)
        return F.embedding_bag(columns, table, offsets, mode="sum", per_sample_weights=weights)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        flat = self._sum(self.table.weight, idx.reshape(-1))
        return flat.reshape(*idx.shape, self.embedding_dim)

    @property
    def weight(self) -> torch.Tensor:
        """Every entity's vector, ``(n_entities, dim)``."""
        return self._sum(self.table.weight, None)

    def vectors_of(self, matrix: sp.csr_matrix) -> torch.Tensor:
        """Vectors of entities outside the table's rows, from their own feature rows."""
        matrix = sp.csr_matrix(matrix, dtype=np.float32)
        device = self.table.weight.device
        return F.embedding_bag(
            torch.as_tensor(matrix.indices, dtype=torch.int64, device=device),
            self.table.weight,
            torch.as_tensor(matrix.indptr[:-1], dtype=torch.int64, device=device),
            mode="sum",
            per_sample_weights=torch.as_tensor(matrix.data, device=device),
        )

    def pairwise(self, idx: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Vectors and the FM interaction among each entity's own features.

        Returns ``(v, p)`` with ``v = sum_f x_f e_f`` and
        ``p = sum_{f < g} x_f x_g <e_f, e_g> = (|v|^2 - sum_f x_f^2 |e_f|^2) / 2``, the
        O(k n) form of Rendle (2010).
        """
        columns, offsets, weights = self._inputs(None if idx is None else idx.reshape(-1))
        vectors = F.embedding_bag(
            columns, self.table.weight, offsets, mode="sum", per_sample_weights=weights
        )
        squares = F.embedding_bag(
            columns, (self.table.weight**2).sum(1, keepdim=True), offsets, mode="sum",
            per_sample_weights=weights * weights,
        )  # fmt: skip
        pairs = 0.5 * ((vectors**2).sum(-1) - squares.squeeze(-1))
        if idx is None:
            return vectors, pairs
        return vectors.reshape(*idx.shape, -1), pairs.reshape(idx.shape)


def entity_embedding(
    n: int,
    dim: int,
    init_scale: float,
    generator: torch.Generator,
    features: sp.csr_matrix | None = None,
) -> nn.Embedding | FeatureEmbedding:
    """An id embedding of ``n`` rows, or, with a feature matrix, a :class:`FeatureEmbedding`."""
    if features is None:
        if init_scale > 0:
            return _uniform_embedding(n, dim, init_scale, generator)
        embedding = nn.Embedding(n, dim)
        nn.init.zeros_(embedding.weight)
        return embedding
    if features.shape[0] != n:
        raise ValueError(f"feature matrix has {features.shape[0]} rows for {n} entities")
    return FeatureEmbedding(features, dim, init_scale, generator)


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
    user_features, item_features : scipy.sparse.csr_matrix, optional
        Feature weights per user / item (identity columns included, see
        :mod:`tripletrec.data.features`): the embeddings (and item biases) become sums of feature
        embeddings (:class:`FeatureEmbedding`).
    ranking_bias_scale : float
        Weight of the item bias in eval mode, where scores rank items; training (train
        mode) always uses the whole bias. See :meth:`_ranking_bias`.
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
        *,
        user_features: sp.csr_matrix | None = None,
        item_features: sp.csr_matrix | None = None,
        ranking_bias_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if similarity not in ("cosine", "dot"):
            raise ValueError(f"similarity must be 'cosine' or 'dot', not {similarity!r}")
        generator = generator or torch.Generator().manual_seed(0)
        self.n_users, self.n_items, self.similarity = n_users, n_items, similarity
        self.ranking_bias_scale = float(ranking_bias_scale)
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
            if similarity != "cosine":
                raise ValueError("learn_temperature applies to similarity='cosine' only")
            self.log_scale = nn.Parameter(torch.zeros(()))

    @property
    def fusable(self) -> bool:
        """No temperature, not a subclass: :mod:`tripletrec.training.fused` can train it."""
        return type(self) is BilinearScorer and self.log_scale is None

    def _scaled(self, similarities: torch.Tensor) -> torch.Tensor:
        return similarities if self.log_scale is None else similarities * self.log_scale.exp()

    def _users(self, users: torch.Tensor) -> torch.Tensor:
        vectors = self.user_embedding(users)
        return F.normalize(vectors, dim=-1) if self.similarity == "cosine" else vectors

    def query_vectors(self, vectors: torch.Tensor) -> torch.Tensor:
        """User vectors from outside the model (folded in, exported) as they meet
        :meth:`_items`: normalised for cosine, times the learned inverse temperature, so
        ``query_vectors(u) @ _items(None).T + bias`` is the model's score. The temperature
        is detached: the model's weights get no gradient through these vectors."""
        if self.similarity == "cosine":
            vectors = F.normalize(vectors, dim=-1)
        return vectors if self.log_scale is None else vectors * self.log_scale.detach().exp()

    def _items(self, items: torch.Tensor | None) -> torch.Tensor:
        vectors = self.item_embedding.weight if items is None else self.item_embedding(items)
        return F.normalize(vectors, dim=-1) if self.similarity == "cosine" else vectors

    def _bias(self, items: torch.Tensor | None) -> torch.Tensor | float:
        """The item-only part of the score as trained (the maximum-likelihood bias)."""
        if self.item_bias is None:
            return 0.0
        bias = self.item_bias.weight if items is None else self.item_bias(items)
        return bias.squeeze(-1)

    def _ranking_bias(self, items: torch.Tensor | None) -> torch.Tensor | float:
        """:meth:`_bias` as scores use it: times ``ranking_bias_scale`` in eval mode.

        A softmax-trained bias measures how often an item is among everything users
        consume. The items left to rank for a user are the ones they have *not* consumed
        yet, and there a popular item is less likely than its overall popularity says
        (had the user wanted it, they would often have it already), so ranking with a
        shrunken bias ranks held-out positives better. Like dropout, this differs between
        train mode (the loss sees the whole bias) and eval mode.
        """
        return self._for_ranking(self._bias(items))

    def _for_ranking(self, bias: torch.Tensor | float) -> torch.Tensor | float:
        if self.training or self.ranking_bias_scale == 1.0:
            return bias
        return bias * self.ranking_bias_scale

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        similarities = (self._users(users) * self._items(items)).sum(-1)
        return self._scaled(similarities) + self._ranking_bias(items)

    def score_all(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        similarities = self._users(users) @ self._items(items).T
        return self._scaled(similarities) + self._ranking_bias(items)

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
        positive_scores = positive_scores + self._ranking_bias(positives)
        negative_scores = negative_scores + self._ranking_bias(negatives)
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
    user_features, item_features : scipy.sparse.csr_matrix, optional
        Feature weights per user / item, as in :class:`BilinearScorer`.
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
            _glorot_uniform(layer, generator)
        self.user_dot = self.item_dot = None
        if dot_factors > 0:
            self.user_dot = entity_embedding(
                n_users, dot_factors, init_scale, generator, user_features
            )
            self.item_dot = entity_embedding(
                n_items, dot_factors, init_scale, generator, item_features
            )

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


class FactorizationMachineScorer(BilinearScorer):
    """A factorization machine (Rendle, 2010) over a user field and an item field.

    The input of a (user, item) pair is the concatenation of the user's feature row and the
    item's (identity columns included, see :mod:`tripletrec.data.features`), and

    ``s(u, i) = sum_f w_f x_f + sum_{f < g} x_f x_g <v_f, v_g>``.

    Split by field, with ``a_u = sum_{f in u} x_f v_f`` and ``b_i`` likewise, the pairwise
    term is ``<a_u, b_i>`` (user-item interactions) plus the interactions within the user's
    features and within the item's (genre x genre, identity x genre), each computed in
    O(k n) as ``(|a|^2 - sum x_f^2 |v_f|^2) / 2``. The user-only terms cannot change a
    user's ranking but are kept, so that scores are the model's. Without side features it
    is a biased matrix factorisation (a single feature has no pairs). Scoring and fold-in
    reuse the bilinear model's dot product, with the item terms as the item bias.

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
        Weight of the item terms in eval mode (see :class:`BilinearScorer`).
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
        super().__init__(
            n_users, n_items, n_factors, "dot", True, init_scale, generator,
            user_features=user_features, item_features=item_features,
            ranking_bias_scale=ranking_bias_scale,
        )  # fmt: skip
        generator = generator or torch.Generator().manual_seed(0)
        self.user_linear = entity_embedding(n_users, 1, 0.0, generator, user_features)

    @staticmethod
    def _field(
        embedding: nn.Module, idx: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | float]:
        """Factor sums and within-field interactions of entities ``idx`` (all when None)."""
        if isinstance(embedding, FeatureEmbedding):
            return embedding.pairwise(idx)
        vectors = embedding.weight if idx is None else embedding(idx)
        return vectors, 0.0  # one feature: no pairs

    def _bias(self, items: torch.Tensor | None) -> torch.Tensor:
        linear = super()._bias(items)
        return linear + self._field(self.item_embedding, items)[1]

    # Each side's factor sums and its within-field pairs come from one pass over its
    # features: one computation, and with identity dropout one draw for both.
    def _user_side(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """User factor sums and user-only terms (linear + within-user pairs)."""
        vectors, pairs = self._field(self.user_embedding, users)
        return vectors, self.user_linear(users).squeeze(-1) + pairs

    def _item_side(self, items: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Item factor sums and item-only terms, as ranking weighs them."""
        vectors, pairs = self._field(self.item_embedding, items)
        return vectors, self._for_ranking(super()._bias(items) + pairs)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        (user_vectors, user_terms), (item_vectors, item_terms) = (
            self._user_side(users),
            self._item_side(items),
        )
        return (user_vectors * item_vectors).sum(-1) + user_terms + item_terms

    def score_all(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        (user_vectors, user_terms), (item_vectors, item_terms) = (
            self._user_side(users),
            self._item_side(items),
        )
        return user_vectors @ item_vectors.T + item_terms + user_terms[:, None]

    def triplet_scores(
        self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        user_vectors, user_terms = self._user_side(users)
        positive_vectors, positive_terms = self._item_side(positives)
        negative_vectors, negative_terms = self._item_side(negatives)
        return (
            (user_vectors * positive_vectors).sum(-1) + positive_terms + user_terms,
            (user_vectors * negative_vectors).sum(-1) + negative_terms + user_terms,
        )


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
