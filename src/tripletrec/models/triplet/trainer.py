"""One fit pipeline for :class:`~tripletrec.models.triplet.TripletRecommender`.

:func:`fit_triplet_model` is the body of ``TripletRecommender.fit`` and of
:func:`tripletrec.models.triplet.distributed.fit_data_parallel`: settings checked once, training
data and features set, a seeded scorer built, a training step chosen, the epochs run with
validation and callbacks, the fitted state installed. What differs in a data-parallel job
(batch size per rank, shards, per-rank random streams, the DDP wrapper and its optimisers,
the synchronised callback) is a :class:`ParallelPlan`; the default plan is one process.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from tripletrec.data.features import Features
from tripletrec.data.interactions import Interactions
from tripletrec.exceptions import ModelFileError, TripletrecError, first_line
from tripletrec.models.embeddings import embedding_tables
from tripletrec.models.interface import Scorer, TripletNet
from tripletrec.models.triplet.fitted import FittedTriplet
from tripletrec.models.triplet.fused import FusedBilinearStep
from tripletrec.models.triplet.settings import TrainingSettings
from tripletrec.training.checkpoints import (
    Checkpoint,
    CheckpointSettings,
    check_fingerprint,
    fingerprint,
    prepare_directory,
)
from tripletrec.training.loop import (
    EpochCallback,
    TrainingSchedule,
    TrainingStep,
    autograd_step,
    steps_per_epoch,
    torch_threads,
    train_triplets,
    with_max_norm,
)
from tripletrec.training.losses import (
    Loss,
)
from tripletrec.training.monitor import ValidationMonitor, chain_callbacks
from tripletrec.training.sampling import make_sampler
from tripletrec.training.sparse import row_sparse_step, sparse_embeddings
from tripletrec.training.state import (
    Checkpointer,
    FitState,
    OptimizerState,
    optimizers_of,
)

if TYPE_CHECKING:
    from tripletrec.models.scorers import BilinearScorer
    from tripletrec.models.triplet.estimator import TripletRecommender


@dataclass(frozen=True)
class StepInputs:
    """What a fit's training step is built from (:meth:`ParallelPlan.training_step`).

    Attributes
    ----------
    scorer : Scorer
        The network in training.
    loss : Loss
        The resolved loss, its catalogue size set.
    schedule : TrainingSchedule
        This process's schedule (learning rate, decay, batch size).
    n_negatives : int
        Negatives drawn per positive.
    log_q : torch.Tensor or None
        The sampler's log-probabilities, for the log-q correction.
    gradients : {"dense", "sparse"}
        The model's resolved gradients (a plan may override them).
    max_norm : float or None
        The bound on embedding rows.
    """

    scorer: Scorer
    loss: Loss
    schedule: TrainingSchedule
    n_negatives: int
    log_q: torch.Tensor | None
    gradients: str = "dense"
    max_norm: float | None = None

    @classmethod
    def of(
        cls,
        scorer: Scorer,
        loss: Loss,
        schedule: TrainingSchedule,
        log_q: torch.Tensor | None,
        settings: TrainingSettings,
    ) -> StepInputs:
        """The inputs of a step of ``scorer`` with the model's ``settings``."""
        return cls(scorer, loss, schedule, settings.n_negatives, log_q, settings.gradients,
                   settings.max_norm)  # fmt: skip


class ParallelPlan:
    """How a fit runs: one process (this class), or a data-parallel job (a subclass,
    :class:`tripletrec.models.triplet.distributed.DataParallelPlan`).

    Every method is a step of :func:`fit_triplet_model` that a data-parallel job does
    differently; here each is what a single process does.
    """

    @property
    def is_main(self) -> bool:
        """Whether this process evaluates, shows progress and runs validation."""
        return True

    def device(self, device: torch.device) -> torch.device:
        """This process's device, given the model's."""
        return device

    def shared_seed(self, random_state: int | None) -> int | None:
        """The seed every process starts from."""
        return random_state

    def per_process(self, schedule: TrainingSchedule) -> TrainingSchedule:
        """The schedule of this process (its batch size)."""
        return schedule

    def shard(
        self, users: np.ndarray, items: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
        """This process's training positives and its random stream."""
        return users, items, rng

    def training_step(self, inputs: StepInputs) -> TrainingStep:
        """One optimiser step of ``inputs.scorer``, every row of its embedding tables kept
        within ``max_norm``; with sparse gradients, the tables that allow it
        (:func:`~tripletrec.training.sparse.sparse_embeddings`) are switched to sparse
        gradients until :meth:`after_training`, and updated (and bounded) at the rows a
        batch reads."""
        scorer = inputs.scorer
        sparse = []
        if self.gradients(inputs.gradients) == "sparse":
            sparse = sparse_embeddings(scorer, inputs.loss)
        for embedding in sparse:
            embedding.sparse = True
        step = self.optimiser_step(inputs, sparse)
        return with_max_norm(step, embedding_tables(scorer, dense_only=True), inputs.max_norm)

    def gradients(self, gradients: str) -> str:
        """The gradients this process trains with, given the model's resolved setting."""
        return gradients

    def optimiser_step(self, inputs: StepInputs, sparse: list[nn.Embedding]) -> TrainingStep:
        """The step of :meth:`training_step`, before the bound on the dense tables."""
        scorer, loss, schedule = inputs.scorer, inputs.loss, inputs.schedule
        # The bilinear model with one negative, or with a softmax (full or in-batch, with
        # sparse gradients too), has closed-form gradients: skip autograd.
        if FusedBilinearStep.can_train(scorer, loss, inputs.n_negatives, sparse=bool(sparse)):
            return FusedBilinearStep(
                cast("BilinearScorer", scorer), loss, schedule.learning_rate, schedule.l2,
                sparse=sparse, log_q=inputs.log_q, max_norm=inputs.max_norm,
            )  # fmt: skip
        if sparse:
            return row_sparse_step(
                TripletNet(scorer), loss, schedule, inputs.log_q, sparse, max_norm=inputs.max_norm
            )
        return autograd_step(TripletNet(scorer), loss, schedule, inputs.log_q)

    def epoch_callback(
        self, callback: EpochCallback | None, device: torch.device
    ) -> EpochCallback | None:
        """``callback`` as this process calls it after each epoch."""
        return callback

    def check_single_process(self, feature: str) -> None:
        """Raise if ``feature`` needs one process and this is part of a larger job."""

    def after_training(self, scorer: Scorer) -> None:
        """Undo what only training needed (also when training failed): sparse gradients
        back to dense, as serving and later fits expect."""
        for module in scorer.modules():
            if isinstance(module, nn.Embedding):
                module.sparse = False

    def summary(self) -> dict | None:
        """Facts about the run the fitted model records (``data_parallel_``); None: none."""
        return None


#: The plan of an ordinary ``fit``.
SINGLE_PROCESS = ParallelPlan()


@contextmanager
def training_scope(
    model: TripletRecommender,
    torch_seed: int,
    device: torch.device,
    n_threads: int | None,
    scorer: Scorer | None = None,
) -> Iterator[Scorer]:
    """A scorer in training mode (fresh, or ``scorer``), under a private seeded copy of
    torch's RNG and ``n_threads`` CPU threads."""
    # Dropout draws from torch's global generator: seed a private copy of it so that
    # fitting is reproducible without touching the caller's random state.
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices), torch_threads(n_threads):
        torch.manual_seed(torch_seed)
        if scorer is None:
            generator = torch.Generator().manual_seed(torch_seed)
            scorer = model.build_module(model.n_users_, model.n_items_, generator)
        scorer = scorer.to(device)
        scorer.train()
        yield scorer


def fit_triplet_model(
    model: TripletRecommender,
    data: Interactions | sp.spmatrix,
    *,
    user_features: Features | None = None,
    item_features: Features | None = None,
    validation: Interactions | sp.spmatrix | None = None,
    on_epoch_end: EpochCallback | None = None,
    plan: ParallelPlan = SINGLE_PROCESS,
    checkpoints: CheckpointSettings | None = None,
) -> TripletRecommender:
    """Fit ``model`` in place and return it (see :meth:`TripletRecommender.fit`).

    Parameters
    ----------
    model : TripletRecommender
        Its hyper-parameters; it is fitted in place.
    data, user_features, item_features, validation, on_epoch_end
        As :meth:`TripletRecommender.fit`; validation runs on the main process only.
    plan : ParallelPlan
        One process (the default) or this process's part of a data-parallel job.
    checkpoints : CheckpointSettings, optional
        Write checkpoints (:mod:`tripletrec.training.checkpoints`), and maybe resume from
        the latest: the fit then goes on exactly as the interrupted one would have.

    Returns
    -------
    TripletRecommender
        ``model``, every attribute of an earlier fit forgotten, then fitted: its training
        data set, and what training produced installed at the end
        (:class:`~tripletrec.models.triplet.fitted.FittedTriplet`: ``module_`` in eval mode,
        ``negatives_``, ``batch_by_``, ``history_``, ``fit_seconds_``, ``optimizer_state_``,
        ``resumed_epoch_``, and ``best_epoch_`` and ``data_parallel_`` where they apply).
    """
    settings = TrainingSettings.of(model)
    checkpoint = None
    if checkpoints is not None:
        plan.check_single_process("checkpointing")
        checkpoint = prepare_directory(checkpoints)
    # Nothing of an earlier fit survives it, nor half of this one if it fails.
    with model._fresh_fit():
        seen = model.set_training_data(
            data, user_features=user_features, item_features=item_features
        )
        trained = _train(
            model, seen, settings, plan, validation, on_epoch_end, checkpoints, checkpoint
        )
        return model._install(trained)


def _train(
    model: TripletRecommender,
    seen: sp.csr_matrix,
    settings: TrainingSettings,
    plan: ParallelPlan,
    validation: Interactions | sp.spmatrix | None,
    on_epoch_end: EpochCallback | None,
    checkpoints: CheckpointSettings | None,
    checkpoint: Checkpoint | None,
) -> FittedTriplet:
    """The training of :func:`fit_triplet_model`, on the training positives ``seen`` (the
    model's training data set), resumed from ``checkpoint`` if given; returns what it
    trained, for the model to install."""
    device = plan.device(settings.device)
    # Resolved before the scorer is built: the "auto" ranking bias follows the loss kind.
    settings = settings.for_data(seen.nnz, model.n_users_, model.n_items_)
    schedule = plan.per_process(settings.schedule)
    # Until _install, what training needs of the model: building the scorer follows the
    # resolved loss, and validation and callbacks score the scorer in training.
    model.negatives_, model.batch_by_ = settings.negatives, settings.batch_by
    loss = settings.loss.with_n_items(model.n_items_)
    users, items = (np.asarray(a, dtype=np.int64) for a in seen.nonzero())
    sampler = make_sampler(settings.negatives, seen, settings.negative_alpha)
    log_q = None
    if sampler.log_q is not None:
        log_q = torch.as_tensor(sampler.log_q, dtype=torch.float32, device=device)
    rng = np.random.default_rng(plan.shared_seed(settings.random_state))
    torch_seed = int(rng.integers(2**62))
    users, items, rng = plan.shard(users, items, rng)

    start = time.perf_counter()
    with training_scope(model, torch_seed, device, settings.n_threads) as scorer:
        step = plan.training_step(StepInputs.of(scorer, loss, schedule, log_q, settings))
        model.module_ = scorer
        monitor = None
        if validation is not None and plan.is_main:
            monitor = ValidationMonitor(
                model, scorer, validation, settings.validation_metric, settings.patience
            )
        callback = plan.epoch_callback(chain_callbacks(monitor, on_epoch_end), device)
        first_epoch, done, seconds_before = 0, [], 0.0
        checkpointer = None
        if checkpoints is not None:
            state = FitState(scorer, optimizers_of(step.optimizer), rng, device, monitor)
            per_epoch = steps_per_epoch(len(users), schedule.batch_size)
            fitted = fingerprint(model, seen, None if monitor is None else monitor.relevant)
            if checkpoint is not None:
                first_epoch = _resume(checkpoint, state, fitted, schedule, per_epoch)
                done, seconds_before = checkpoint.history, float(checkpoint.meta["fit_seconds"])
            checkpointer = Checkpointer(
                checkpoints, state, fingerprint=fitted, epochs=schedule.epochs,
                steps_per_epoch=per_epoch, history=done, seconds_before=seconds_before,
                start=start,
            )  # fmt: skip
            callback = checkpointer.wrap(callback)
        try:
            history = train_triplets(
                step, users, items, sampler, schedule, rng, n_negatives=settings.n_negatives,
                device=device, progress=settings.verbose and plan.is_main,
                on_epoch_end=callback, first_epoch=first_epoch, history=done,
            )  # fmt: skip
            if monitor is not None:
                monitor.restore_best()
        finally:
            plan.after_training(scorer)
        if checkpointer is not None and not (checkpoint is not None and checkpoint.final):
            checkpointer.write(len(history), history, final=True)
        optimizer_state = OptimizerState.of_step(step, scorer)
    return FittedTriplet(
        module=scorer.eval(), negatives=settings.negatives, batch_by=settings.batch_by,
        history=history, fit_seconds=seconds_before + time.perf_counter() - start,
        optimizer_state=optimizer_state,
        resumed_epoch=0 if checkpoint is None else checkpoint.epoch,
        best_epoch=None if monitor is None else monitor.kept_epoch,
        data_parallel=plan.summary(),
    )  # fmt: skip


def _resume(
    checkpoint: Checkpoint,
    state: FitState,
    fitted: dict,
    schedule: TrainingSchedule,
    per_epoch: int,
) -> int:
    """Restore ``checkpoint`` into ``state``; the epoch to continue after."""
    check_fingerprint(checkpoint.meta["fingerprint"], fitted, checkpoint.directory)
    epoch = checkpoint.epoch
    if checkpoint.meta.get("steps_done") != epoch * per_epoch or epoch > schedule.epochs:
        raise ModelFileError(
            f"{checkpoint.directory}: epoch {epoch} and {checkpoint.meta.get('steps_done')} "
            f"steps do not fit a schedule of {schedule.epochs} epochs of {per_epoch} steps"
        )
    try:
        state.restore(checkpoint.tensors, checkpoint.meta, final=checkpoint.final)
    except TripletrecError:
        raise
    except (KeyError, IndexError, RuntimeError, ValueError, TypeError) as exc:  # edited files
        raise ModelFileError(
            f"{checkpoint.directory}: does not fit this fit ({first_line(exc)})"
        ) from exc
    # A finished fit (stopped early, maybe) trains no further.
    return schedule.epochs if checkpoint.final else epoch
