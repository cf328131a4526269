"""The process group of a data-parallel job: where this process stands, joining and leaving.

A process started by ``torchrun`` joins the group its environment describes; any other
process is a job of one (no process group). See :mod:`tripletrec.training.distributed` and
:mod:`tripletrec.models.triplet.distributed`.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from tripletrec.exceptions import ParameterError

#: The environment ``torchrun`` sets for every process it starts.
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a data-parallel job.

    Attributes
    ----------
    rank, world_size, local_rank : int
        This process's rank, the number of processes, and its rank on this machine.
    backend : str or None
        ``"gloo"`` or ``"nccl"``; None for a single process without a process group.
    owns_group : bool
        Whether this context initialised the process group (and so destroys it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that evaluates, prints and saves."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process, joined in a process group."""
        return self.world_size > 1 and self.backend is not None

    def close(self) -> None:
        """Leave the process group if this context created it."""
        if self.owns_group and dist.is_initialized():
            # A DDP reducer that outlives its process group aborts the process at exit:
            # collect unreachable DDP wrappers first.
            gc.collect()
            dist.destroy_process_group()


def launched_by_torchrun() -> bool:
    """Whether this process was started by ``torchrun`` (its variables are set)."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def init_distributed(device: str = "cpu", backend: str | None = None) -> DistributedContext:
    """Join the process group ``torchrun`` describes; a one-process context otherwise.

    Parameters
    ----------
    device : str
        ``"cpu"`` (backend gloo) or ``"cuda"`` (backend NCCL, one GPU per local rank).
    backend : str, optional
        Override the backend choice.

    Returns
    -------
    DistributedContext
    """
    if not launched_by_torchrun():
        return DistributedContext()
    on_gpu = torch.device(device).type == "cuda"
    if on_gpu and not torch.cuda.is_available():
        raise ParameterError("device 'cuda' requested but no CUDA device is available")
    local_rank = int(os.environ["LOCAL_RANK"])
    if dist.is_initialized():
        return DistributedContext(
            dist.get_rank(), dist.get_world_size(), local_rank, dist.get_backend()
        )
    backend = backend or ("nccl" if on_gpu and dist.is_nccl_available() else "gloo")
    if on_gpu:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend, init_method="env://")
    return DistributedContext(
        dist.get_rank(), dist.get_world_size(), local_rank, backend, owns_group=True
    )


def shared_seed(random_state: int | None, context: DistributedContext) -> int | None:
    """``random_state``, or one seed drawn on rank 0 and sent to every rank."""
    if random_state is not None or not context.distributed:
        return random_state
    seed = [int(np.random.default_rng().integers(2**62))]
    dist.broadcast_object_list(seed, src=0)
    return seed[0]
