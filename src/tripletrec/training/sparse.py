"""Sparse embedding gradients: which tables may have them, and the optimiser that uses them.

A dense step touches every row of every table at every step, so its cost grows with the
tables; a sparse step's cost grows with the batch (see
:mod:`tripletrec.models.triplet.distributed`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from tripletrec._checks import finite_number
from tripletrec.exceptions import ParameterError
from tripletrec.training.loop import (
    AutogradStep,
    BatchScores,
    TrainingSchedule,
    autograd_step,
    make_adam,
)
from tripletrec.training.losses import Loss

if TYPE_CHECKING:
    from tripletrec.models.interface import Scorer, TripletNet


class RowSparseAdam(torch.optim.Optimizer):
    """Adam that updates only the rows present in a sparse gradient ("lazy" Adam).

    The update is torch's ``SparseAdam``'s, computed with row gathers and scatters instead
    of sparse-tensor arithmetic (several times faster on a CPU): for the rows ``r`` of the
    coalesced gradient ``g``, ``m_r = b1 m_r + (1 - b1) g_r``, ``v_r = b2 v_r + (1 - b2)
    g_r^2`` and ``w_r -= lr sqrt(1 - b2^t) / (1 - b1^t) * m_r / (sqrt(v_r) + eps)``, ``t``
    the number of steps taken. Other rows and their moments do not move.

    ``weight_decay`` is an L2 penalty on the rows of the batch (added to their gradient as
    dense Adam does, but only where the gradient is), the usual "lazy" regularisation of
    large embedding tables: a row nobody touches is not shrunk either.

    ``max_norm`` bounds the length of every updated row of a table with more than one
    column (biases are left alone), as ``Tensor.renorm_`` does for a whole table: a row
    that no step touches cannot have grown, so bounding the touched rows is the whole
    constraint at the cost of the batch.
    """

    def __init__(
        self,
        params: Iterable[nn.Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        max_norm: float | None = None,
    ) -> None:
        finite_number("lr", lr, low=0.0, low_open=True)
        finite_number("eps", eps, low=0.0, low_open=True)
        finite_number("weight_decay", weight_decay, low=0.0)
        if max_norm is not None:
            finite_number("max_norm", max_norm, low=0.0, low_open=True)
        for beta in betas:
            finite_number("betas", beta, low=0.0, high=1.0, high_open=True)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, max_norm=max_norm)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                if not param.grad.is_sparse:
                    raise ParameterError("RowSparseAdam needs sparse gradients")
                rows, values = _summed_rows(param.grad)
                if len(rows) == 0:
                    continue
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param)
                state["step"] += 1
                step = state["step"]
                step_size = group["lr"] * math.sqrt(1 - beta2**step) / (1 - beta1**step)
                # The rows are unique: gather them, update the compact copies, write them
                # back (three gathers and three copies, whatever the table's size).
                weights = param.index_select(0, rows)
                exp_avg = state["exp_avg"].index_select(0, rows)
                exp_avg_sq = state["exp_avg_sq"].index_select(0, rows)
                if group["weight_decay"]:
                    values = values.add(weights, alpha=group["weight_decay"])
                exp_avg.lerp_(values, 1 - beta1)  # m <- b1 m + (1 - b1) g
                exp_avg_sq.mul_(beta2).addcmul_(values, values, value=1 - beta2)
                denominator = exp_avg_sq.sqrt().add_(group["eps"])
                weights.addcdiv_(exp_avg, denominator, value=-step_size)
                max_norm = group.get("max_norm")  # absent from groups saved before it existed
                if max_norm is not None and param.dim() == 2 and param.shape[1] > 1:
                    _bound_rows(weights, max_norm)
                state["exp_avg"].index_copy_(0, rows, exp_avg)
                state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sq)
                param.index_copy_(0, rows, weights)


def _summed_rows(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct rows of a sparse gradient, increasing, and their summed values (the
    rows that several triplets or ranks hit are added); ``coalesce`` does the same, at
    about twice the cost on a CPU."""
    if not grad.is_coalesced():
        indices, values = grad._indices()[0], grad._values()
        # Autograd drops the flag of a gradient made coalesced (the feature bags'); rows
        # already increasing need no sort.
        if bool((indices[1:] > indices[:-1]).all()):
            return indices, values
        rows, inverse = torch.unique(indices, return_inverse=True)
        summed = values.new_zeros((len(rows), *values.shape[1:]))
        return rows, summed.index_add_(0, inverse, values)
    return grad.indices()[0], grad.values()


def _bound_rows(rows: torch.Tensor, max_norm: float) -> None:
    """``rows`` longer than ``max_norm`` scaled to it, in place, by ``renorm_``'s factor
    ``max_norm / (norm + 1e-7)``."""
    norms = rows.norm(dim=1, keepdim=True)
    rows.mul_(torch.where(norms > max_norm, max_norm / (norms + 1e-7), torch.ones_like(norms)))


class OptimizerGroup:
    """Several optimisers behind the interface the training loop uses."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]) -> None:
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict[str, Any]]:  # the lr schedule sets group["lr"]
        return [group for optimizer in self.optimizers for group in optimizer.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for optimizer in self.optimizers:
            optimizer.step()


def sparse_embeddings(scorer: Scorer, loss: Loss) -> list[nn.Embedding]:
    """The embedding tables of ``scorer`` that can have sparse gradients under ``loss``.

    User tables are only ever looked up by index. Item tables are read whole by the full
    softmax and by scorers that read more than the batch's rows in training (the bilinear
    cosine model normalises the whole table); their gradients are dense then. A feature
    embedding (:class:`~tripletrec.models.embeddings.FeatureEmbedding`) contributes its
    table of feature rows: a batch reads the rows of its entities' features.
    """
    sides = scorer.entity_embeddings()
    whole_items = loss.kind == "full_softmax" or not scorer.reads_item_rows_only
    candidates = sides["user"] + ([] if whole_items else sides["item"])
    tables = [getattr(module, "table", module) for module in candidates]
    return [table for table in tables if isinstance(table, nn.Embedding)]


def row_sparse_step(
    net: TripletNet,
    loss: Loss,
    schedule: TrainingSchedule,
    log_q: torch.Tensor | None,
    sparse: Sequence[nn.Embedding],
    *,
    max_norm: float | None = None,
    scores: nn.Module | None = None,
) -> AutogradStep:
    """An autograd step in which the tables ``sparse`` (already switched to sparse
    gradients) are updated row by row by :class:`RowSparseAdam`, bounded by ``max_norm``
    on the rows it updates, and every other weight by Adam.

    ``scores`` defaults to the :class:`~tripletrec.training.loop.BatchScores` of ``net``
    (a data-parallel job passes its DDP wrapper).
    """
    optimizer = row_sparse_optimizer(
        list(net.parameters()), sparse, schedule.learning_rate, schedule.l2, max_norm
    )
    if scores is None:
        scores = BatchScores(net, in_batch=loss.kind == "in_batch_softmax")
    return autograd_step(net, loss, log_q=log_q, scores=scores, optimizer=optimizer)


def row_sparse_optimizer(
    parameters: Sequence[nn.Parameter],
    sparse: Sequence[nn.Embedding],
    learning_rate: float,
    l2: float,
    max_norm: float | None,
) -> OptimizerGroup:
    """Adam over ``parameters`` whose tables ``sparse`` are updated row by row
    (:class:`RowSparseAdam`, bounded by ``max_norm`` on the rows it updates) and the others
    densely: the optimiser of every step with sparse gradients, autograd's or fused."""
    sparse_ids = {id(m.weight) for m in sparse}
    sparse_params = [p for p in parameters if id(p) in sparse_ids]
    dense_params = [p for p in parameters if id(p) not in sparse_ids]
    optimizers: list[torch.optim.Optimizer] = []
    if dense_params:
        optimizers.append(make_adam(dense_params, learning_rate, l2))
    if sparse_params:
        optimizers.append(
            RowSparseAdam(sparse_params, learning_rate, weight_decay=l2, max_norm=max_norm)
        )
    return OptimizerGroup(optimizers)
