"""Data-parallel pieces any scorer trains with: an autograd step whose gradients DDP
averages over the ranks (dense or sparse), and epoch callbacks kept in step over them.

The process group itself is :mod:`tripletrec.training.process_group` (its names are
importable from here too). How :class:`~tripletrec.models.triplet.TripletRecommender` uses
these in a data-parallel fit, and what every rank does, is
:mod:`tripletrec.models.triplet.distributed`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch import nn

from tripletrec.training.loop import AutogradStep, BatchScores, EpochCallback, TrainingSchedule
from tripletrec.training.losses import Loss
from tripletrec.training.process_group import (
    TORCHRUN_VARIABLES,
    DistributedContext,
    init_distributed,
    launched_by_torchrun,
)
from tripletrec.training.sparse import RowSparseAdam, row_sparse_step, sparse_embeddings

if TYPE_CHECKING:
    from tripletrec.models.interface import TripletNet

__all__ = [
    "TORCHRUN_VARIABLES",
    "DistributedContext",
    "RowSparseAdam",
    "data_parallel_step",
    "init_distributed",
    "launched_by_torchrun",
    "sparse_embeddings",
    "synchronised",
]


def data_parallel_step(
    net: TripletNet,
    loss: Loss,
    schedule: TrainingSchedule,
    log_q: torch.Tensor | None,
    *,
    sparse: Sequence[nn.Embedding],
    distributed: bool,
    max_norm: float | None = None,
) -> AutogradStep:
    """An autograd step of ``net`` for one rank of a data-parallel job.

    Parameters
    ----------
    net : TripletNet
        The triplet network of the scorer in training, on this rank's device.
    loss : Loss
        The training loss.
    schedule : TrainingSchedule
        This rank's schedule (Adam's step size and weight decay).
    log_q : torch.Tensor, optional
        The sampler's log-probability per item, for the softmax's log-q correction.
    sparse : sequence of nn.Embedding
        Tables already switched to sparse gradients
        (:func:`~tripletrec.training.sparse.sparse_embeddings`): updated by
        :class:`~tripletrec.training.sparse.RowSparseAdam`, every other weight by Adam.
    distributed : bool
        Wrap the scores in DistributedDataParallel (a job of several processes).
    max_norm : float, optional
        The bound on the rows of ``sparse`` that a step updates (the other tables are
        bounded by the caller, :func:`~tripletrec.training.loop.with_max_norm`).

    Returns
    -------
    AutogradStep
        The step; its scores go through DDP's ``forward``, so that DDP's hooks average
        the gradients of everything the batch scored.
    """
    module: nn.Module = BatchScores(net, in_batch=loss.kind == "in_batch_softmax")
    if distributed:
        device = next(net.parameters()).device
        device_ids = [device.index] if device.type == "cuda" else None
        module = nn.parallel.DistributedDataParallel(module, device_ids=device_ids)
    return row_sparse_step(net, loss, schedule, log_q, sparse, max_norm=max_norm, scores=module)


def synchronised(
    callback: EpochCallback | None, context: DistributedContext, device: torch.device
) -> EpochCallback | None:
    """Per epoch: the loss averaged over ranks, then rank 0's decision to stop, for all."""
    if not context.distributed:
        return callback

    def on_epoch_end(epoch: int, record: dict) -> bool:
        loss = torch.tensor([record["loss"]], dtype=torch.float64, device=device)
        dist.all_reduce(loss)
        record["loss"] = float(loss) / context.world_size
        stop = bool(callback(epoch, record)) if callback and context.is_main else False
        flag = torch.tensor([int(stop)], device=device)
        dist.broadcast(flag, src=0)
        return bool(flag)

    return on_epoch_end
