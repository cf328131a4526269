"""Entity embeddings: id embeddings, feature embeddings (LightFM-style), initialisers."""

from __future__ import annotations

import warnings
from typing import Any, cast

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from tripletrec.exceptions import ParameterError


def uniform_embedding(n: int, dim: int, scale: float, generator: torch.Generator) -> nn.Embedding:
    """An ``n x dim`` embedding uniform in ``[-scale, scale]``."""
    # Keras' default embedding initialiser, U(-0.05, 0.05), which the notebook relies on.
    embedding = nn.Embedding(n, dim)
    with torch.no_grad():
        embedding.weight.uniform_(-scale, scale, generator=generator)
    return embedding


def glorot_uniform(layer: nn.Linear, generator: torch.Generator) -> None:
    """Glorot-uniform weights and a zero bias, in place."""
    # Keras' Dense default, as in the notebook.
    fan_out, fan_in = layer.weight.shape
    limit = (6.0 / (fan_in + fan_out)) ** 0.5
    with torch.no_grad():
        layer.weight.uniform_(-limit, limit, generator=generator)
        layer.bias.zero_()


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
            raise ParameterError(
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
            # A read-only (memory-mapped, loaded) array cannot back a tensor, which torch
            # assumes writeable: such a buffer is a copy (torch copies on dtype change too).
            source = array if array.flags.writeable else array.copy()
            tensor = torch.as_tensor(source, dtype=dtype, device=device)
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

    def bag_inputs(
        self, idx: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(columns, offsets, weights)`` of rows ``idx`` (flat; all rows when None), as
        ``F.embedding_bag`` takes them, identity dropout applied (in training mode).

        Every vector of a call is built from one such draw; the fused training step
        calls it too, so its hand-written backward pass sees the forward pass's draw.
        """
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
        columns, offsets, weights = self.bag_inputs(idx)
        if self.table.sparse and table.requires_grad and torch.is_grad_enabled():
            return cast(torch.Tensor, _RowSparseBagSum.apply(table, columns, offsets, weights))
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
        columns, offsets, weights = self.bag_inputs(None if idx is None else idx.reshape(-1))
        sparse = self.table.sparse
        vectors = F.embedding_bag(
            columns, self.table.weight, offsets, mode="sum", per_sample_weights=weights,
            sparse=sparse,
        )  # fmt: skip
        if sparse:  # the rows read only, so that the table's gradient stays row-sparse
            rows = F.embedding(columns, self.table.weight, sparse=True)
            squared = rows.square().sum(1, keepdim=True)
            columns = torch.arange(len(columns), device=columns.device)  # row j of squared
        else:
            squared = (self.table.weight**2).sum(1, keepdim=True)
        squares = F.embedding_bag(
            columns, squared, offsets, mode="sum", per_sample_weights=weights * weights
        )
        pairs = 0.5 * ((vectors**2).sum(-1) - squares.squeeze(-1))
        if idx is None:
            return vectors, pairs
        return vectors.reshape(*idx.shape, -1), pairs.reshape(idx.shape)


class _RowSparseBagSum(torch.autograd.Function):
    """``F.embedding_bag(columns, table, offsets, mode="sum", per_sample_weights=weights)``
    whose table gradient is row-sparse and coalesced: one row per distinct feature.

    ``embedding_bag``'s own sparse gradient holds a row per (bag, feature) entry, each a
    copy of its bag's gradient: with users' histories as features, a batch of users whose
    histories hold hundreds of items each writes hundreds of times the batch's gradient,
    which the optimiser then sorts and sums. Here :func:`bag_gradient_rows` sums them.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        table: torch.Tensor,
        columns: torch.Tensor,
        offsets: torch.Tensor,
        weights: torch.Tensor,
    ) -> torch.Tensor:
        ctx.save_for_backward(columns, offsets, weights)
        ctx.table_shape = table.shape
        return F.embedding_bag(columns, table, offsets, mode="sum", per_sample_weights=weights)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        rows, summed = bag_gradient_rows(*ctx.saved_tensors, grad)
        table_grad = torch.sparse_coo_tensor(
            rows[None], summed, ctx.table_shape, is_coalesced=True, check_invariants=False
        )
        return table_grad, None, None, None


def bag_gradient_rows(
    columns: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor, grad: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The table rows that the weighted bags ``(columns, offsets, weights)`` read, distinct
    and increasing, and the gradient each gets from the bags' gradient ``grad``.

    The transposed weights (rows read x bags) times ``grad``, a sparse product: one sort of
    the entries and one pass over them, and memory for the distinct rows only.
    """
    bag = bag_of_entries(offsets, len(columns))
    ordered, order = torch.sort(columns, stable=True)
    rows, counts = torch.unique_consecutive(ordered, return_counts=True)
    starts = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
    summed = _transposed_product(
        starts, bag[order], weights[order], grad.detach().contiguous(), len(rows)
    )
    return rows, summed


def bag_of_entries(offsets: torch.Tensor, n_entries: int) -> torch.Tensor:
    """The bag of each of ``n_entries`` entries, given the bags' start ``offsets``."""
    lengths = torch.diff(offsets, append=offsets.new_tensor([n_entries]))
    return torch.repeat_interleave(
        torch.arange(len(offsets), device=offsets.device), lengths, output_size=n_entries
    )


def _transposed_product(
    starts: torch.Tensor,
    bags: torch.Tensor,
    weights: torch.Tensor,
    grad: torch.Tensor,
    n_rows: int,
) -> torch.Tensor:
    """``W @ grad`` for the CSR matrix ``W`` (``n_rows`` x bags) of ``(starts, bags,
    weights)``; on a CPU by scipy's kernel, about twice as fast there as torch's."""
    if grad.device.type == "cpu":
        matrix = sp.csr_matrix(
            (weights.numpy(), bags.numpy(), starts.numpy()), shape=(n_rows, len(grad))
        )
        return torch.from_numpy(np.asarray(matrix @ grad.numpy(), dtype=np.float32))
    with warnings.catch_warnings():  # torch calls its sparse CSR support "beta"
        warnings.simplefilter("ignore", UserWarning)
        matrix = torch.sparse_csr_tensor(starts, bags, weights, size=(n_rows, len(grad)))
    return matrix @ grad


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
            return uniform_embedding(n, dim, init_scale, generator)
        embedding = nn.Embedding(n, dim)
        nn.init.zeros_(embedding.weight)
        return embedding
    if features.shape[0] != n:
        raise ParameterError(f"feature matrix has {features.shape[0]} rows for {n} entities")
    return FeatureEmbedding(features, dim, init_scale, generator)


def embedding_tables(module: nn.Module, dense_only: bool = False) -> list[torch.Tensor]:
    """The weights of every embedding with more than one dimension (biases left out);
    ``dense_only``: of those whose gradients are dense (``sparse`` not set)."""
    return [
        m.weight
        for m in module.modules()
        if isinstance(m, nn.Embedding) and m.embedding_dim > 1 and not (dense_only and m.sparse)
    ]


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
