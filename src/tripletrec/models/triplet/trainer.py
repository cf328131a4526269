"""One fit pipeline for :class:`~tripletrec.models.triplet.TripletRecommender`.

:func:`fit_triplet_model` is the body of ``TripletRecommender.fit`` and of
:func:`tripletrec.models.triplet.distributed.fit_data_parallel`: settings checked once, training
data and features set, a seeded scorer built, a training step chosen, the epochs run with
validation and callbacks, the fitted state installed. What differs in a data-parallel job
(batch size per rank, shards, per-rank random streams, the DDP wrapper and its optimisers,
the synchronised callback) is a :class:`ParallelPlan`; the default plan is one process.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np
import scipy.sparse as sp
import torch

from tripletrec._checks import finite_number, fraction, one_of, positive_int
from tripletrec._system import resolve_device
from tripletrec.data.features import Features
from tripletrec.data.interactions import Interactions
from tripletrec.exceptions import ModelFileError, TripletrecError, first_line
from tripletrec.models.embeddings import embedding_tables
from tripletrec.models.interface import Scorer, TripletNet
from tripletrec.models.triplet.fitted import FittedTriplet
from tripletrec.models.triplet.fused import FusedBilinearStep
from tripletrec.training.checkpoints import (
    Checkpoint,
    CheckpointSettings,
    check_fingerprint,
    fingerprint,
    prepare_directory,
)
from tripletrec.training.loop import (
    BATCH_BY,
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
    check_batch_by,
    resolve_batch_by,
    resolve_loss,
    resolve_negatives,
)
from tripletrec.training.monitor import ValidationMonitor, chain_callbacks
from tripletrec.training.sampling import make_sampler
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
class TrainingSettings:
    """The training hyper-parameters of a :class:`TripletRecommender`, checked and resolved.

    :meth:`of` is the one place where a model's settings are checked before a fit. With
    ``negatives="auto"``, ``negatives`` stays "auto" and ``loss`` is what "auto" is on
    small data until :meth:`for_data` (or :meth:`with_negatives`, for a fitted model)
    resolves them; ``batch_by="auto"`` likewise, and ``schedule.batch_by`` is the resolved
    value (``"positive"`` until then).
    """

    loss: Loss
    schedule: TrainingSchedule
    negatives: str
    batch_by: str
    n_negatives: int
    negative_alpha: float
    max_norm: float | None
    random_state: int | None
    n_threads: int | None
    device: torch.device
    verbose: bool
    patience: int | None
    validation_metric: str

    @classmethod
    def of(cls, model: TripletRecommender) -> TrainingSettings:
        """The settings of ``model``; fails on the first bad hyper-parameter, before any work.

        Raises
        ------
        ParameterError
            With a one-line message naming the hyper-parameter.
        """
        batch_by = one_of("batch_by", model.batch_by, ("auto", *BATCH_BY))
        schedule = TrainingSchedule(
            epochs=model.epochs, batch_size=model.batch_size, learning_rate=model.learning_rate,
            l2=model.l2, lr_schedule=model.lr_schedule,
            batch_by="positive" if batch_by == "auto" else batch_by,
        )  # fmt: skip
        small = resolve_negatives(model.negatives, model.loss, 0, 0)
        loss = resolve_loss(model.loss, model.margin, small)
        check_batch_by(batch_by, model.negatives)
        # Settings of the model's structure, used when it is built.
        fraction("identity_dropout", model.identity_dropout, high_open=True)
        if model.ranking_bias_scale != "auto":
            finite_number("ranking_bias_scale", model.ranking_bias_scale, low=0.0)
        finite_number("feature_weight", model.feature_weight, low=0.0, low_open=True)
        return cls(
            loss=loss,
            schedule=schedule,
            negatives=model.negatives,
            batch_by=batch_by,
            n_negatives=positive_int("n_negatives", model.n_negatives),
            negative_alpha=finite_number("negative_alpha", model.negative_alpha),
            max_norm=_optional(model.max_norm, "max_norm", finite=True),
            random_state=model.random_state,
            n_threads=_optional(model.n_threads, "n_threads"),
            device=resolve_device(model.device),
            verbose=bool(model.verbose),
            patience=_optional(model.patience, "patience"),
            validation_metric=model.validation_metric,
        )

    def with_negatives(self, negatives: str, batch_by: str) -> TrainingSettings:
        """These settings with ``negatives`` and its loss, and batches grouped by
        ``batch_by`` (both resolved, not ``"auto"``)."""
        loss = resolve_loss(self.loss.name, self.loss.margin, negatives, self.loss.n_items)
        check_batch_by(batch_by, negatives)
        schedule = dataclasses.replace(self.schedule, batch_by=batch_by)
        return dataclasses.replace(
            self, negatives=negatives, loss=loss, batch_by=batch_by, schedule=schedule
        )

    def for_data(self, n_positives: int, n_users: int, n_items: int) -> TrainingSettings:
        """These settings for ``n_positives`` training positives of ``n_users`` users over
        ``n_items`` items, ``negatives="auto"`` and ``batch_by="auto"`` resolved
        (:func:`~tripletrec.training.losses.resolve_negatives`,
        :func:`~tripletrec.training.losses.resolve_batch_by`)."""
        negatives = resolve_negatives(
            self.negatives, self.loss.name, n_positives, n_items,
            n_users=n_users, batch_by=self.batch_by,
        )  # fmt: skip
        batch_by = resolve_batch_by(self.batch_by, negatives, n_positives, n_items)
        return self.with_negatives(negatives, batch_by)


def _optional(value: object, name: str, finite: bool = False) -> float | int | None:
    """None, or a positive integer (a positive finite number with ``finite``)."""
    if value is None:
        return None
    if finite:
        return finite_number(name, value, low=0.0, low_open=True)
    return positive_int(name, value)


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

    def training_step(
        self,
        scorer: Scorer,
        loss: Loss,
        schedule: TrainingSchedule,
        n_negatives: int,
        log_q: torch.Tensor | None,
    ) -> TrainingStep:
        """One optimiser step of ``scorer`` (before the max-norm constraint)."""
        # The bilinear model with one negative, or the full softmax, has closed-form
        # gradients: skip autograd.
        if FusedBilinearStep.can_train(scorer, loss, n_negatives):
            return FusedBilinearStep(
                cast("BilinearScorer", scorer), loss, schedule.learning_rate, schedule.l2
            )
        return autograd_step(TripletNet(scorer), loss, schedule, log_q)

    def epoch_callback(
        self, callback: EpochCallback | None, device: torch.device
    ) -> EpochCallback | None:
        """``callback`` as this process calls it after each epoch."""
        return callback

    def check_single_process(self, feature: str) -> None:
        """Raise if ``feature`` needs one process and this is part of a larger job."""

    def after_training(self, scorer: Scorer) -> None:
        """Undo what only training needed (also when training failed)."""

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
        step = plan.training_step(scorer, loss, schedule, settings.n_negatives, log_q)
        step = with_max_norm(step, embedding_tables(scorer), settings.max_norm)
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
