"""Data-parallel training with ``torch.distributed``, and sparse embedding gradients.

Launch ``tripletrec train`` under ``torchrun`` and every process becomes one rank of a
data-parallel job::

    torchrun --standalone --nproc_per_node 2 -m tripletrec train data.parquet --out runs/big

What each rank does (:func:`fit_data_parallel`):

* **Same start.** Every rank loads the same data and builds the same id maps; the model is
  initialised from the same seed, and DistributedDataParallel (DDP) broadcasts rank 0's
  weights at construction anyway.
* **Own shard.** One permutation, drawn from the shared seed, splits the training positives
  into ``world_size`` equal random shards (the last ``n % world_size`` positives of the
  permutation sit out). Each rank shuffles only its shard every epoch and draws the
  negatives for it from its own random stream: sampling work is divided, not repeated.
* **Same steps.** Each rank steps on ``batch_size // world_size`` triplets; DDP averages the
  gradients over the ranks, so one step of the job is one step on a global batch of
  ``batch_size`` triplets, with the learning-rate schedule of a single process.
* **Rank 0 evaluates and saves.** Validation metrics (and early stopping) run on rank 0,
  which broadcasts its decision to stop; the caller evaluates and saves on rank 0 only. The
  fitted model is an ordinary :class:`~tripletrec.models.triplet.TripletRecommender`.

Training goes through autograd: the fused bilinear step (:mod:`tripletrec.training.fused`) computes
gradients in closed form outside autograd, where DDP's gradient hooks cannot see them. The
network DDP wraps scores each kind of batch in its ``forward`` (triplets, the full softmax,
in-batch negatives), so every loss of the single-process path is available.

**Sparse gradients** (``sparse_gradients=True``, ``--sparse-gradients``): the user
embeddings (and the item embeddings, when they are only looked up by index, that is with
sampled or in-batch negatives and without cosine normalisation of the whole table) produce
sparse gradients holding only the rows of the batch; DDP all-reduces those rows (gloo
gathers them; NCCL's sparse all-reduce is limited and untested here, so prefer dense
gradients on GPUs) and :class:`RowSparseAdam` updates only those rows. A dense step
touches every row of every table at every step, so its cost grows with the tables; a
sparse step's cost grows with the batch. It works in one process too, without
``torchrun``.
"""

from __future__ import annotations

import gc
import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.distributed as dist
from torch import nn

from tripletrec.data.features import Features
from tripletrec.data.interactions import Interactions
from tripletrec.exceptions import TripletrecError
from tripletrec.models.scorers import BilinearScorer, Scorer, TripletNet
from tripletrec.models.triplet import TripletRecommender, _chain, _ValidationMonitor
from tripletrec.training.loop import (
    BatchScores,
    EpochCallback,
    TrainingSchedule,
    TrainingStep,
    autograd_step,
    make_adam,
    train_triplets,
)
from tripletrec.training.losses import get_loss
from tripletrec.training.sampling import make_sampler

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
        raise TripletrecError("device 'cuda' requested but no CUDA device is available")
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
        if lr <= 0 or eps <= 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"invalid RowSparseAdam settings: {lr=}, {betas=}, {eps=}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                if not param.grad.is_sparse:
                    raise TripletrecError("RowSparseAdam needs sparse gradients")
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


class _Optimizers:
    """Several optimisers behind the interface the training loop uses."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]) -> None:
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict]:  # the lr schedule sets group["lr"] in place
        return [group for optimizer in self.optimizers for group in optimizer.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for optimizer in self.optimizers:
            optimizer.step()


def sparse_embeddings(scorer: Scorer, negatives: str) -> list[nn.Embedding]:
    """The embedding tables that can have sparse gradients under ``negatives``.

    User tables are only ever looked up by index. Item tables are read whole by the full
    softmax (``negatives="all"``) and, for the bilinear cosine model, normalised whole;
    their gradients are dense then.
    """
    children = [(name, m) for name, m in scorer.named_children() if isinstance(m, nn.Embedding)]
    whole_items = negatives == "all" or (
        isinstance(scorer, BilinearScorer) and scorer.similarity == "cosine"
    )
    return [
        module
        for name, module in children
        if name.startswith("user") or (name.startswith("item") and not whole_items)
    ]


def _make_step(
    module: nn.Module,
    scorer: Scorer,
    model: TripletRecommender,
    log_q: np.ndarray | None,
    sparse: list[nn.Embedding],
    device: torch.device,
) -> TrainingStep:
    """One optimiser step through ``module`` (DDP or not): the loss of ``autograd_step``."""
    loss_fn = get_loss(model.loss, model.margin, n_items=scorer.n_items)
    in_batch = model.negatives == "in_batch"
    correction = None
    if model.loss == "softmax" and log_q is not None:
        correction = torch.as_tensor(log_q, dtype=torch.float32, device=device)
    sparse_ids = {id(m.weight) for m in sparse}
    sparse_params = [p for p in scorer.parameters() if id(p) in sparse_ids]
    dense_params = [p for p in scorer.parameters() if id(p) not in sparse_ids]
    optimizers: list[torch.optim.Optimizer] = []
    if dense_params:
        optimizers.append(make_adam(dense_params, model.learning_rate, model.l2))
    if sparse_params:
        optimizers.append(RowSparseAdam(sparse_params, model.learning_rate, weight_decay=model.l2))
    schedule = TrainingSchedule(model.epochs, model.batch_size, model.learning_rate, model.l2)
    return autograd_step(
        TripletNet(scorer), loss_fn, schedule, correction, in_batch=in_batch, scores=module,
        optimizer=_Optimizers(optimizers),
    )  # fmt: skip


def _shared_seed(random_state: int | None, context: DistributedContext) -> int | None:
    """``random_state``, or one seed drawn on rank 0 and sent to every rank."""
    if random_state is not None or not context.distributed:
        return random_state
    seed = [int(np.random.default_rng().integers(2**62))]
    dist.broadcast_object_list(seed, src=0)
    return seed[0]


def fit_data_parallel(
    model: TripletRecommender,
    data: Interactions | sp.spmatrix,
    *,
    user_features: Features | None = None,
    item_features: Features | None = None,
    validation: Interactions | sp.spmatrix | None = None,
    sparse_gradients: bool = False,
    context: DistributedContext | None = None,
    on_epoch_end: EpochCallback | None = None,
) -> TripletRecommender:
    """Fit ``model`` on this rank's shard of ``data``, gradients synchronised by DDP.

    Every rank calls it with the same model settings and the same data (see the module
    docstring for what each rank does). With one process and dense gradients it trains
    what :meth:`TripletRecommender.fit` trains, through autograd instead of the fused step.

    Parameters
    ----------
    model : TripletRecommender
        Its hyper-parameters; it is fitted in place and returned.
    data, user_features, item_features, validation, on_epoch_end
        As :meth:`TripletRecommender.fit`; validation runs on rank 0 only. Feature
        embeddings get dense gradients.
    sparse_gradients : bool
        Sparse gradients for the embedding tables that allow them (see
        :func:`sparse_embeddings`), updated by :class:`RowSparseAdam`.
    context : DistributedContext, optional
        This process's place in the job; default: :func:`init_distributed` (one process
        when not under ``torchrun``).

    Returns
    -------
    TripletRecommender
        Fitted, on every rank. ``data_parallel_`` records ``world_size``, ``backend`` and
        ``gradients`` (``"dense"`` or ``"sparse"``).
    """
    context = context or init_distributed(model.device)
    world, rank = context.world_size, context.rank
    device = model._resolve_device()
    if device.type == "cuda" and context.distributed:
        device = torch.device("cuda", context.local_rank)
    model._check_training_settings()
    if model.batch_size < world:
        raise TripletrecError(f"batch_size {model.batch_size} is smaller than {world} processes")
    schedule = TrainingSchedule(
        model.epochs, model.batch_size // world, model.learning_rate, model.l2, model.lr_schedule
    )
    seen = model._set_training_data(data)
    model._fit_features(user_features, item_features)  # the same on every rank
    users, items = (np.asarray(a, dtype=np.int64) for a in seen.nonzero())
    sampler = make_sampler(model.negatives, seen, model.negative_alpha)
    rng = np.random.default_rng(_shared_seed(model.random_state, context))
    torch_seed = int(rng.integers(2**62))  # first draw, as in TripletRecommender.fit
    if world > 1:
        shard = len(users) // world
        if shard == 0:
            raise TripletrecError(f"{len(users)} training positives cannot feed {world} processes")
        mine = rng.permutation(len(users))[rank * shard : (rank + 1) * shard]
        users, items = users[mine], items[mine]
        rng = np.random.default_rng(rng.integers(2**62, size=world)[rank])

    start = time.perf_counter()
    with model._training_scope(torch_seed, device) as scorer:
        sparse = sparse_embeddings(scorer, model.negatives) if sparse_gradients else []
        for embedding in sparse:
            embedding.sparse = True
        module: nn.Module = BatchScores(TripletNet(scorer), in_batch=model.negatives == "in_batch")
        if context.distributed:
            device_ids = [device.index] if device.type == "cuda" else None
            module = nn.parallel.DistributedDataParallel(module, device_ids=device_ids)
        step = model._constrained(
            _make_step(module, scorer, model, sampler.log_q, sparse, device), scorer
        )
        model.module_ = scorer  # validation scores through it during training
        monitor = None
        if validation is not None and context.is_main:
            monitor = _ValidationMonitor(model, validation)
        history = train_triplets(
            step, users, items, sampler, schedule, rng, n_negatives=int(model.n_negatives),
            device=device, progress=model.verbose and context.is_main,
            on_epoch_end=_synchronised(_chain(monitor, on_epoch_end), context, device),
        )  # fmt: skip
        if monitor is not None:
            monitor.restore_best()
        for embedding in sparse:
            embedding.sparse = False
    model.module_ = scorer.eval()
    model.history_ = history
    model.fit_seconds_ = time.perf_counter() - start
    model.data_parallel_ = {
        "world_size": world,
        "backend": context.backend,
        "gradients": "sparse" if sparse else "dense",
        "sparse_tables": [name for name, m in scorer.named_children() if m in sparse],
    }
    return model


def _synchronised(
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


class DataParallel:
    """What ``tripletrec train`` needs to train under ``torchrun`` (or sparse in one process).

    Parameters
    ----------
    context : DistributedContext
        This process's place in the job.
    sparse_gradients : bool
        Train with sparse embedding gradients.
    """

    def __init__(self, context: DistributedContext, sparse_gradients: bool = False) -> None:
        self.context = context
        self.sparse_gradients = sparse_gradients

    @classmethod
    def from_environment(
        cls, device: str = "cpu", *, sparse_gradients: bool = False
    ) -> DataParallel | None:
        """The job ``torchrun`` started; None outside ``torchrun`` with dense gradients
        (then the ordinary single-process ``fit``, with the fused step, is the fastest)."""
        if not launched_by_torchrun() and not sparse_gradients:
            return None
        return cls(init_distributed(device), sparse_gradients)

    @property
    def is_main(self) -> bool:
        return self.context.is_main

    def fit(
        self,
        model: TripletRecommender,
        data: Interactions | sp.spmatrix,
        *,
        validation: Interactions | sp.spmatrix | None = None,
        user_features: Features | None = None,
        item_features: Features | None = None,
    ) -> TripletRecommender:
        """:func:`fit_data_parallel` in this job."""
        return fit_data_parallel(
            model,
            data,
            user_features=user_features,
            item_features=item_features,
            validation=validation,
            sparse_gradients=self.sparse_gradients,
            context=self.context,
        )

    def summary(self) -> dict:
        """Facts about the job for ``metrics.json``."""
        return {
            "world_size": self.context.world_size,
            "backend": self.context.backend,
            "gradients": "sparse" if self.sparse_gradients else "dense",
        }

    def close(self) -> None:
        self.context.close()
