"""Sparse embedding gradients: which tables may have them, and the optimiser that uses them.

A dense step touches every row of every table at every step, so its cost grows with the
tables; a sparse step's cost grows with the batch (see
:mod:`tripletrec.models.triplet.distributed`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from tripletrec._checks import finite_number
from tripletrec.exceptions import ParameterError
from tripletrec.training.losses import Loss

if TYPE_CHECKING:
    from tripletrec.models.interface import Scorer


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
    """

    def __init__(
        self,
        params: Iterable[nn.Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        finite_number("lr", lr, low=0.0, low_open=True)
        finite_number("eps", eps, low=0.0, low_open=True)
        finite_number("weight_decay", weight_decay, low=0.0)
        for beta in betas:
            finite_number("betas", beta, low=0.0, high=1.0, high_open=True)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                if not param.grad.is_sparse:
                    raise ParameterError("RowSparseAdam needs sparse gradients")
                grad = param.grad.coalesce()  # sums rows that several ranks or triplets hit
                rows, values = grad.indices()[0], grad.values()
                if len(rows) == 0:
                    continue
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param)
                state["step"] += 1
                if group["weight_decay"]:
                    values = values.add(param.index_select(0, rows), alpha=group["weight_decay"])
                # Rows are unique (coalesced): scatter with index_add_ of the change, which
                # is several times faster on a CPU than index_copy_ of the new rows.
                exp_avg = state["exp_avg"].index_select(0, rows)
                change = values.sub(exp_avg).mul_(1 - beta1)  # m <- b1 m + (1 - b1) g
                state["exp_avg"].index_add_(0, rows, change)
                exp_avg.add_(change)
                exp_avg_sq = state["exp_avg_sq"].index_select(0, rows)
                change = values.square().sub_(exp_avg_sq).mul_(1 - beta2)
                state["exp_avg_sq"].index_add_(0, rows, change)
                exp_avg_sq.add_(change)
                step = state["step"]
                step_size = group["lr"] * math.sqrt(1 - beta2**step) / (1 - beta1**step)
                update = exp_avg.div_(exp_avg_sq.sqrt_().add_(group["eps"])).mul_(-step_size)
                param.index_add_(0, rows, update)


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
    cosine model normalises the whole table); their gradients are dense then. Feature
    embeddings are not ``nn.Embedding`` tables and stay dense.
    """
    sides = scorer.entity_embeddings()
    whole_items = loss.kind == "full_softmax" or not scorer.reads_item_rows_only
    candidates = sides["user"] + ([] if whole_items else sides["item"])
    return [module for module in candidates if isinstance(module, nn.Embedding)]
