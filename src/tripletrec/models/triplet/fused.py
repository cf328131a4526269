"""A fused training step for the bilinear model: hand-written gradients, no autograd.

For an embedding model the autograd graph costs more than the arithmetic: every step
records and replays a dozen small kernels, normalisation included. This step computes the
same gradients in closed form, scatters them into the embedding tables with ``index_add_``
(or, for tables updated row by row, sums them per row read) and hands them to the same
optimiser as the autograd path (``torch.optim.Adam``, dense, with L2 as weight decay, or
:class:`~tripletrec.training.sparse.RowSparseAdam` with sparse gradients), so it trains
exactly the model autograd would, several times faster (see ``tests/test_fused.py``,
which checks it against autograd step by step).

Gradients, for a batch of B triplets with scores ``s_pos``, ``s_neg``:

* a pairwise loss gives ``dL/ds_neg = -dL/ds_pos`` per triplet in closed form
  (:attr:`tripletrec.training.losses.Loss.pairwise_slope`: margin and BPR have one);
* full softmax ``mean(logsumexp_i s_i - s_pos)``: ``dL/ds_i = (softmax(s)_i - [i = pos]) / B``;
  the in-batch softmax is the same over the batch's positives instead of every item, each
  column shifted by minus its log-q;
* ``s = <u', i'> + b_i`` with ``x' = x / |x|`` for cosine (``x' = x`` for dot):
  ``dL/du' = dL/ds_pos i'_pos + dL/ds_neg i'_neg``, ``dL/di' = dL/ds u'``, and through the
  normalisation ``dL/dx = (dL/dx' - x' <x', dL/dx'>) / |x|``;
* with side features, an entity's vector is ``x = sum_f w_f e_f`` over its feature row,
  so a row gradient reaches the feature table as ``dL/de_f = sum_x w_f dL/dx`` (a
  scatter-add by feature column).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar, cast

import torch
import torch.nn.functional as F
from torch import nn

from tripletrec.exceptions import ParameterError
from tripletrec.models.embeddings import FeatureEmbedding, bag_gradient_rows, bag_of_entries
from tripletrec.models.scorers import COSINE, DOT, BilinearScorer, Scorer, Similarity
from tripletrec.training.loop import make_adam
from tripletrec.training.losses import Loss
from tripletrec.training.sparse import OptimizerGroup, row_sparse_optimizer

#: The same floor as ``torch.nn.functional.normalize``.
_NORM_EPS = 1e-12

#: Adds row gradients into a table gradient and returns it: ``backward(grad_rows,
#: table_grad)``; with ``table_grad`` None, returns the table gradient the rows make (the
#: rows' gradient itself when they are the whole table: no zeroed table to add it to).
RowsBackward = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
#: The row-sparse way back: ``backward(grad_rows) -> (rows, values)``, the table rows read
#: (distinct, increasing) and the gradient each gets.
SparseRowsBackward = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class _Rows:
    """Rows of an id embedding or of a :class:`FeatureEmbedding`, and the way back.

    ``rows(idx)`` returns the vectors of entities ``idx`` (every entity when None) and a
    function that adds their gradients into the gradient of the trainable table
    (:data:`RowsBackward`): for an id embedding a scatter-add by index, for a feature
    embedding a scatter-add by feature column, weighted (the transpose of the feature
    matrix), with the same identity dropout draw as the forward pass.

    The table gradient a scatter starts from is one buffer kept across steps, of which only
    the rows the previous step wrote are cleared: a batch writes a few thousand rows of a
    table that can hold users + items rows (the history features'), and zeroing all of
    it at every step cost more than the optimiser's pass over it.
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.features = isinstance(module, FeatureEmbedding)
        self.parameter = module.table.weight if self.features else module.weight
        self._gradient: torch.Tensor | None = None
        self._written: list[torch.Tensor] = []

    def _into(self, into: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor:
        """``into``, or the table's gradient buffer, cleared; ``rows`` are then written."""
        if into is None:
            table, gradient = self.parameter.data, self._gradient
            if gradient is None or gradient.shape != table.shape or gradient.device != table.device:
                gradient = self._gradient = torch.zeros_like(table)
            else:
                for written in self._written:
                    gradient.index_fill_(0, written, 0.0)
            self._written = []
            into = gradient
        if into is self._gradient:
            self._written.append(rows)
        return into

    def rows(self, idx: torch.Tensor | None) -> tuple[torch.Tensor, RowsBackward]:
        table = self.parameter.data
        if not self.features:
            if idx is None:
                return table, lambda grad, into: grad if into is None else into.add_(grad)
            return table[idx], lambda grad, into: self._into(into, idx).index_add_(0, idx, grad)
        columns, offsets, weights = self.module.bag_inputs(idx)
        vectors = F.embedding_bag(columns, table, offsets, mode="sum", per_sample_weights=weights)
        bag = bag_of_entries(offsets, len(columns))

        def backward(grad: torch.Tensor, into: torch.Tensor | None) -> torch.Tensor:
            target = self._into(into, columns)
            return target.index_add_(0, columns, grad[bag] * weights[:, None])

        return vectors, backward

    def sparse_rows(self, idx: torch.Tensor) -> tuple[torch.Tensor, SparseRowsBackward]:
        """The vectors of entities ``idx``, and the way back to the table as row-sparse
        gradients (:data:`SparseRowsBackward`), for a row-wise optimiser."""
        table = self.parameter.data
        if not self.features:
            rows, inverse = torch.unique(idx, return_inverse=True)

            def summed(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                return rows, grad.new_zeros((len(rows), grad.shape[1])).index_add_(0, inverse, grad)

            return table[idx], summed
        columns, offsets, weights = self.module.bag_inputs(idx)
        vectors = F.embedding_bag(columns, table, offsets, mode="sum", per_sample_weights=weights)
        return vectors, lambda grad: bag_gradient_rows(columns, offsets, weights, grad)


class FusedBilinearStep:
    """One optimiser step of a :class:`BilinearScorer` on a batch of triplets.

    Parameters
    ----------
    scorer : BilinearScorer
        The model; its weights are updated in place.
    loss : Loss
        The loss to minimise: the full softmax (``negatives`` None), the in-batch softmax
        (the batch's positives as every triplet's negatives, log-q corrected), or a
        pairwise loss with a closed-form slope
        (:attr:`~tripletrec.training.losses.Loss.pairwise_slope`: margin, BPR) against one
        negative per positive.
    learning_rate, l2 : float
        Adam's step size and weight decay, as in ``torch.optim.Adam``.
    sparse : sequence of nn.Embedding, optional
        Tables updated at the rows a batch reads, by
        :class:`~tripletrec.training.sparse.RowSparseAdam` bounded by ``max_norm`` (the
        softmax kinds only): the optimiser of the autograd step with sparse gradients
        (:func:`~tripletrec.training.sparse.row_sparse_optimizer`), with the same updates.
    log_q : torch.Tensor, optional
        The sampler's log-probability per item: the in-batch softmax's correction.
    max_norm : float, optional
        The bound on the rows of the ``sparse`` tables (the caller bounds the others).
    """

    #: The similarities whose gradients this step has in closed form. A scorer with another
    #: trains by autograd (:meth:`can_train`), never with these gradients.
    similarities: ClassVar[tuple[Similarity, ...]] = (COSINE, DOT)

    #: Largest (distinct users in a batch) x (items) block scored at once; above it the
    #: step works per triplet instead.
    block_budget = 1 << 22

    def __init__(
        self,
        scorer: BilinearScorer,
        loss: Loss,
        learning_rate: float,
        l2: float,
        *,
        sparse: Sequence[nn.Embedding] = (),
        log_q: torch.Tensor | None = None,
        max_norm: float | None = None,
    ) -> None:
        if not self.can_train(scorer, loss, n_negatives=1, sparse=bool(sparse)):
            similarities = " or ".join(map(repr, self.similarities))
            similarity = getattr(scorer, "similarity", None)
            raise ParameterError(
                "the fused step supports the full and in-batch softmax, and margin or BPR "
                "losses with dense gradients, on a bilinear model without temperature, with "
                f"similarity {similarities}; not the {loss.name!r} loss ({loss.kind}) on a "
                f"{type(scorer).__name__}"
                + ("" if similarity is None else f" with similarity {similarity!r}")
                + (" with sparse gradients" if sparse else "")
            )
        self.scorer, self.loss, self.log_q = scorer, loss, log_q
        self._slope = loss.pairwise_slope
        self.cosine = scorer.similarity == COSINE
        self.user_rows = _Rows(scorer.user_embedding)
        self.item_rows = _Rows(scorer.item_embedding)
        self.bias_rows = None if scorer.item_bias is None else _Rows(scorer.item_bias)
        # In the order the gradient methods below return their gradients.
        lookups = [self.user_rows, self.item_rows, self.bias_rows]
        self.parameters = [rows.parameter for rows in lookups if rows is not None]
        self._sparse = {id(table.weight) for table in sparse}
        if sparse:
            self.optimizer: torch.optim.Optimizer | OptimizerGroup = row_sparse_optimizer(
                self.parameters, sparse, learning_rate, l2, max_norm
            )
        else:
            self.optimizer = make_adam(self.parameters, learning_rate, l2)

    @staticmethod
    def can_train(scorer: Scorer, loss: Loss, n_negatives: int, sparse: bool = False) -> bool:
        """Whether this step trains ``scorer`` with ``loss`` and ``n_negatives`` per positive
        (with some tables updated row by row if ``sparse``: the softmax kinds only)."""
        if not scorer.fusable:
            return False
        if cast(BilinearScorer, scorer).similarity not in FusedBilinearStep.similarities:
            return False
        if loss.kind in ("full_softmax", "in_batch_softmax"):
            return True
        return not sparse and loss.pairwise_slope is not None and n_negatives == 1

    def _normalised(self, vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        norms = vectors.norm(dim=1, keepdim=True).clamp_min(_NORM_EPS)
        return vectors / norms, norms

    @staticmethod
    def _through_normalisation(
        grad: torch.Tensor, unit: torch.Tensor, norms: torch.Tensor
    ) -> torch.Tensor:
        return (grad - unit * (unit * grad).sum(1, keepdim=True)) / norms

    @torch.no_grad()
    def __call__(
        self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor | None
    ) -> torch.Tensor:
        """Update the weights on one batch; return the batch's loss (before the update).

        ``negatives`` None means every item is a negative (loss ``"softmax"`` only).
        """
        batch_users, user_of_triplet = torch.unique(users, return_inverse=True)
        if self.loss.kind == "in_batch_softmax":
            # The batch's positives are the columns: a triplet's target is its own column
            # (a user with several triplets shares one row, as in the full softmax).
            own_column = torch.arange(len(positives), device=positives.device)
            grads, loss = self._block_gradients(
                batch_users, user_of_triplet, own_column, None, columns=positives
            )
        elif negatives is None:  # full softmax: the block of all items is the loss itself
            grads, loss = self._block_gradients(batch_users, user_of_triplet, positives, None)
        elif len(batch_users) * self.scorer.n_items <= self.block_budget:
            grads, loss = self._block_gradients(batch_users, user_of_triplet, positives, negatives)
        else:
            grads, loss = self._gathered_gradients(users, positives, negatives)
        for parameter, grad in zip(self.parameters, grads):
            parameter.grad = grad
        self.optimizer.step()
        return loss

    def _loss_slope(
        self, s_pos: torch.Tensor, s_neg: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch loss and ``dL/ds_neg`` per triplet (``dL/ds_pos`` is its negation)."""
        if self._slope is None:
            raise ParameterError(f"the {self.loss.kind} loss needs drawn negatives here")
        return self._slope(s_pos, s_neg)

    @staticmethod
    def _full_softmax_slopes(
        scores: torch.Tensor, user_of_triplet: torch.Tensor, positives: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and ``dL/dscores`` of the full softmax, per batch user and item.

        A user with ``c`` triplets in the batch contributes ``c * softmax(s_u) - counts_u``
        (``counts_u``: how often each item is that user's positive here), over ``B``.
        ``scores`` is overwritten: the slopes take its memory (the block is the step's
        largest array, and each temporary of its size costs a pass over memory).
        """
        batch = len(positives)
        positive_scores = scores[user_of_triplet, positives]
        # One exponential pass for the loss and the slopes: exp(s - max), summed into the
        # normaliser, then scaled in place into the softmax.
        top = scores.amax(dim=1, keepdim=True)
        exponentials = scores.sub_(top).exp_()
        totals = exponentials.sum(dim=1)
        loss = (top[:, 0] + totals.log())[user_of_triplet].sub(positive_scores).mean()
        share = torch.bincount(user_of_triplet, minlength=len(scores)).to(scores.dtype) / batch
        slopes = exponentials.mul_((share / totals)[:, None])
        slopes.index_put_(
            (user_of_triplet, positives),
            torch.full_like(positives, -1.0 / batch, dtype=scores.dtype),
            accumulate=True,
        )
        return loss, slopes

    def _block_gradients(
        self,
        batch_users: torch.Tensor,
        user_of_triplet: torch.Tensor,
        positives: torch.Tensor,
        negatives: torch.Tensor | None,
        columns: torch.Tensor | None = None,
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        # Score every (batch user, item) pair with one matrix product and collect the
        # per-triplet slopes into a (batch users x items) matrix C: then the gradients are
        # C @ items and C.T @ users, two more matrix products, instead of a dozen
        # element-wise passes over (triplets x factors) arrays. The block's columns are
        # every item, or ``columns`` (in-batch: the batch's positives, log-q corrected);
        # ``positives`` and ``negatives`` index them.
        user_vectors, user_back = self._lookup(self.user_rows, batch_users)
        item_vectors, item_back = self._lookup(self.item_rows, columns)
        if self.cosine:
            user_unit, user_norm = self._normalised(user_vectors)
            item_unit, item_norm = self._normalised(item_vectors)
        else:
            user_unit, item_unit = user_vectors, item_vectors
        scores = user_unit @ item_unit.T
        if self.bias_rows is not None:
            bias, bias_back = self._lookup(self.bias_rows, columns)
            scores += bias.T
        if columns is not None and self.log_q is not None:
            scores -= self.log_q[columns][None, :]
        if negatives is None:
            loss, slopes = self._full_softmax_slopes(scores, user_of_triplet, positives)
        else:
            s_pos = scores[user_of_triplet, positives]
            s_neg = scores[user_of_triplet, negatives]
            loss, d_neg = self._loss_slope(s_pos, s_neg)
            slopes = torch.zeros_like(scores)
            slopes.index_put_((user_of_triplet, negatives), d_neg, accumulate=True)
            slopes.index_put_((user_of_triplet, positives), -d_neg, accumulate=True)
        grad_users = slopes @ item_unit
        grad_items = slopes.T @ user_unit
        if self.cosine:
            grad_users = self._through_normalisation(grad_users, user_unit, user_norm)
            grad_items = self._through_normalisation(grad_items, item_unit, item_norm)
        grads = [user_back(grad_users), item_back(grad_items)]
        if self.bias_rows is not None:
            grads.append(bias_back(slopes.sum(0)[:, None]))
        return grads, loss

    def _lookup(
        self, rows: _Rows, idx: torch.Tensor | None
    ) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """The vectors of ``idx`` (None: every row) and the way from their gradients to the
        table's: a sparse tensor of the rows read for a table updated row by row, a dense
        one otherwise."""
        if idx is None or id(rows.parameter) not in self._sparse:
            vectors, backward = rows.rows(idx)
            return vectors, lambda grad: backward(grad, None)
        vectors, sparse_backward = rows.sparse_rows(idx)

        def table_gradient(grad: torch.Tensor) -> torch.Tensor:
            read, values = sparse_backward(grad)
            return torch.sparse_coo_tensor(
                read[None], values, rows.parameter.shape, is_coalesced=True,
                check_invariants=False,
            )  # fmt: skip

        return vectors, table_gradient

    def _gathered_gradients(
        self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        # For catalogues too large for the block above: per-triplet vectors, scattered back.
        (u, u_back), (p, p_back), (n, n_back) = (
            self.user_rows.rows(users),
            self.item_rows.rows(positives),
            self.item_rows.rows(negatives),
        )
        if self.cosine:
            u_unit, u_norm = self._normalised(u)
            p_unit, p_norm = self._normalised(p)
            n_unit, n_norm = self._normalised(n)
        else:
            u_unit, p_unit, n_unit = u, p, n
        s_pos = (u_unit * p_unit).sum(1)
        s_neg = (u_unit * n_unit).sum(1)
        if self.bias_rows is not None:
            (b_pos, b_pos_back), (b_neg, b_neg_back) = (
                self.bias_rows.rows(positives),
                self.bias_rows.rows(negatives),
            )
            s_pos = s_pos + b_pos[:, 0]
            s_neg = s_neg + b_neg[:, 0]
        loss, d_neg = self._loss_slope(s_pos, s_neg)

        d_neg = d_neg[:, None]
        grad_u = (n_unit - p_unit) * d_neg
        grad_p = -u_unit * d_neg
        grad_n = u_unit * d_neg
        if self.cosine:
            grad_u = self._through_normalisation(grad_u, u_unit, u_norm)
            grad_p = self._through_normalisation(grad_p, p_unit, p_norm)
            grad_n = self._through_normalisation(grad_n, n_unit, n_norm)

        grads = [u_back(grad_u, None), n_back(grad_n, p_back(grad_p, None))]
        if self.bias_rows is not None:
            grads.append(b_neg_back(d_neg, b_pos_back(-d_neg, None)))
        return grads, loss
