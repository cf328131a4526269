"""TripletRecommender trained data-parallel with ``torch.distributed``, and sparse
embedding gradients (the pieces any scorer could use, the DDP step and the synchronised
callback, are :mod:`tripletrec.training.distributed`).

Launch ``tripletrec train`` under ``torchrun`` and every process becomes one rank of a
data-parallel job::

    torchrun --standalone --nproc_per_node 2 -m tripletrec train data.parquet --out runs/big

What each rank does (:func:`fit_data_parallel`: the one fit pipeline,
:func:`tripletrec.models.triplet.trainer.fit_triplet_model`, with a :class:`DataParallelPlan`):

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

Training goes through autograd: the fused bilinear step
(:mod:`tripletrec.models.triplet.fused`) computes gradients in closed form outside autograd,
where DDP's gradient hooks cannot see them. The network DDP wraps scores each kind of batch
in its ``forward`` (triplets, the full softmax, in-batch negatives), so every loss of the
single-process path is available.

**Sparse gradients** (``sparse_gradients=True``, ``--sparse-gradients``): the user
embeddings (and the item embeddings, when they are only looked up by index, that is with
sampled or in-batch negatives and without cosine normalisation of the whole table) produce
sparse gradients holding only the rows of the batch; DDP all-reduces those rows (gloo
gathers them; NCCL's sparse all-reduce is limited and untested here, so prefer dense
gradients on GPUs) and :class:`~tripletrec.training.sparse.RowSparseAdam` updates only
those rows. A dense step touches every row of every table at every step, so its cost
grows with the tables; a sparse step's cost grows with the batch. It works in one process
too, without ``torchrun``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from tripletrec.data.features import Features
from tripletrec.data.interactions import Interactions
from tripletrec.exceptions import DataError, ParameterError
from tripletrec.models.interface import TripletNet
from tripletrec.models.triplet.estimator import TripletRecommender
from tripletrec.models.triplet.trainer import ParallelPlan, StepInputs, fit_triplet_model
from tripletrec.training.checkpoints import CheckpointSettings
from tripletrec.training.distributed import data_parallel_step, synchronised
from tripletrec.training.loop import EpochCallback, TrainingSchedule, TrainingStep
from tripletrec.training.process_group import (
    DistributedContext,
    init_distributed,
    launched_by_torchrun,
    shared_seed,
)

__all__ = ["DataParallel", "DataParallelPlan", "fit_data_parallel"]


class DataParallelPlan(ParallelPlan):
    """What a rank of a data-parallel job does differently from a single process.

    Parameters
    ----------
    context : DistributedContext
        This process's place in the job (one process without ``torchrun``).
    sparse_gradients : bool
        Sparse gradients for the embedding tables that allow them
        (:func:`~tripletrec.training.sparse.sparse_embeddings`), updated by
        :class:`~tripletrec.training.sparse.RowSparseAdam`.
    """

    def __init__(self, context: DistributedContext, sparse_gradients: bool = False) -> None:
        self.context = context
        self.sparse_gradients = sparse_gradients
        self._sparse_names: list[str] = []

    @property
    def is_main(self) -> bool:
        return self.context.is_main

    def device(self, device: torch.device) -> torch.device:
        if device.type == "cuda" and self.context.distributed:
            return torch.device("cuda", self.context.local_rank)  # one GPU per local rank
        return device

    def shared_seed(self, random_state: int | None) -> int | None:
        return shared_seed(random_state, self.context)

    def per_process(self, schedule: TrainingSchedule) -> TrainingSchedule:
        world = self.context.world_size
        if schedule.batch_size < world:
            raise ParameterError(
                f"batch_size {schedule.batch_size} is smaller than {world} processes"
            )
        # DDP averages the ranks' gradients: one job step is one step on the whole batch.
        return dataclasses.replace(schedule, batch_size=schedule.batch_size // world)

    def shard(
        self, users: np.ndarray, items: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
        world, rank = self.context.world_size, self.context.rank
        if world == 1:
            return users, items, rng
        shard = len(users) // world
        if shard == 0:
            raise DataError(f"{len(users)} training positives cannot feed {world} processes")
        mine = rng.permutation(len(users))[rank * shard : (rank + 1) * shard]
        own_rng = np.random.default_rng(rng.integers(2**62, size=world)[rank])
        return users[mine], items[mine], own_rng

    def gradients(self, gradients: str) -> str:
        # ``--sparse-gradients`` asks for sparse gradients whatever the model's setting.
        return "sparse" if self.sparse_gradients else gradients

    def optimiser_step(self, inputs: StepInputs, sparse: list[nn.Embedding]) -> TrainingStep:
        # Autograd always: the fused step's gradients bypass DDP's hooks.
        self._sparse_names = [n for n, m in inputs.scorer.named_modules() if m in sparse]
        return data_parallel_step(
            TripletNet(inputs.scorer), inputs.loss, inputs.schedule, inputs.log_q,
            sparse=sparse, distributed=self.context.distributed, max_norm=inputs.max_norm,
        )  # fmt: skip

    def epoch_callback(
        self, callback: EpochCallback | None, device: torch.device
    ) -> EpochCallback | None:
        return synchronised(callback, self.context, device)

    def check_single_process(self, feature: str) -> None:
        # Every rank draws from its own random stream; a checkpoint would need all of them,
        # written in step. Not supported: refuse before any work.
        if self.context.distributed:
            raise ParameterError(
                f"{feature} is not supported in a data-parallel job ({self.context.world_size} "
                "processes under torchrun); run it in one process (--sparse-gradients for "
                "sparse updates without torchrun)"
            )

    def summary(self) -> dict:
        return {
            "world_size": self.context.world_size,
            "backend": self.context.backend,
            "gradients": "sparse" if self._sparse_names else "dense",
            "sparse_tables": self._sparse_names,
        }


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
    checkpoints: CheckpointSettings | None = None,
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
        :func:`~tripletrec.training.sparse.sparse_embeddings`), updated by
        :class:`~tripletrec.training.sparse.RowSparseAdam`.
    context : DistributedContext, optional
        This process's place in the job; default: :func:`init_distributed` (one process
        when not under ``torchrun``).
    checkpoints : CheckpointSettings, optional
        Checkpoints, in one process only (:mod:`tripletrec.training.checkpoints`); a job
        of several processes refuses them with a ``ParameterError``.

    Returns
    -------
    TripletRecommender
        Fitted, on every rank. ``data_parallel_`` records ``world_size``, ``backend``,
        ``gradients`` (``"dense"`` or ``"sparse"``) and ``sparse_tables``.
    """
    plan = DataParallelPlan(context or init_distributed(model.device), sparse_gradients)
    return fit_triplet_model(
        model, data, user_features=user_features, item_features=item_features,
        validation=validation, on_epoch_end=on_epoch_end, plan=plan, checkpoints=checkpoints,
    )  # fmt: skip


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
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int | None = None,
        resume: bool = False,
    ) -> TripletRecommender:
        """:func:`fit_data_parallel` in this job (checkpoints as ``TripletRecommender.fit``)."""
        return fit_data_parallel(
            model,
            data,
            user_features=user_features,
            item_features=item_features,
            validation=validation,
            sparse_gradients=self.sparse_gradients,
            context=self.context,
            checkpoints=CheckpointSettings.of(checkpoint_dir, checkpoint_every, resume),
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
