"""The training loop shared by every triplet model.

One epoch = every training positive once, in a fresh random order, each paired with a
freshly drawn negative. Sampling is done for the whole epoch at once with NumPy; the loop
runs once per mini-batch, never once per interaction. With ``batch_by="user"`` the order
keeps each user's positives together (users in a fresh random order), so that a batch of
the full softmax holds few users and computes each one's normaliser once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from tripletrec._checks import finite_number, one_of, positive_int
from tripletrec.exceptions import ParameterError, TrainingDivergedError
from tripletrec.training.losses import Loss
from tripletrec.training.sampling import NegativeSampler

if TYPE_CHECKING:
    from tripletrec.models.interface import TripletNet

EpochCallback = Callable[[int, dict], bool | None]
#: How the step size changes over training (:meth:`TrainingSchedule.lr_factor`).
LRSchedule = Literal["constant", "linear", "cosine"]
LR_SCHEDULES: tuple[LRSchedule, ...] = get_args(LRSchedule)
#: What an epoch shuffles into batches (:func:`epoch_order`).
BatchBy = Literal["positive", "user"]
BATCH_BY: tuple[BatchBy, ...] = get_args(BatchBy)


class ParamGroups(Protocol):
    """An optimiser as the learning-rate schedule sees it: groups with an ``"lr"``."""

    @property
    def param_groups(self) -> list[dict[str, Any]]: ...


class TrainingStep(Protocol):
    """One optimiser step on a batch ``(users, positives, negatives)``; returns the batch
    loss. ``negatives`` is None when the loss makes its own (full or in-batch softmax).
    ``optimizer`` is what the learning-rate schedule adjusts."""

    @property
    def optimizer(self) -> ParamGroups: ...

    def __call__(
        self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor | None
    ) -> torch.Tensor: ...


@dataclass(frozen=True)
class TrainingSchedule:
    """How long and how fast to train.

    Attributes
    ----------
    epochs : int
        Passes over the training positives.
    batch_size : int
        Triplets per optimiser step.
    learning_rate : float
        Adam's step size.
    l2 : float
        Adam's weight decay (L2 penalty on every weight).
    lr_schedule : {"constant", "linear", "cosine"}
        The step size over training: constant, or decayed from ``learning_rate`` to zero
        at the last step, linearly or along a half cosine.
    batch_by : {"positive", "user"}
        What an epoch shuffles: the positives one by one, or the users, each user's
        positives staying together (:func:`epoch_order`).
    """

    epochs: int
    batch_size: int
    learning_rate: float
    l2: float = 0.0
    lr_schedule: LRSchedule = "constant"
    batch_by: BatchBy = "positive"

    def __post_init__(self) -> None:
        # Checked and stored as plain Python numbers (frozen: set through object).
        checked = {
            "epochs": positive_int("epochs", self.epochs),
            "batch_size": positive_int("batch_size", self.batch_size),
            "learning_rate": finite_number(
                "learning_rate", self.learning_rate, low=0.0, low_open=True
            ),
            "l2": finite_number("l2", self.l2, low=0.0),
            "lr_schedule": one_of("lr_schedule", self.lr_schedule, LR_SCHEDULES),
            "batch_by": one_of("batch_by", self.batch_by, BATCH_BY),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def lr_factor(self, step: int, total_steps: int) -> float:
        """The multiple of ``learning_rate`` used at ``step`` (0-based) of ``total_steps``."""
        progress = step / max(total_steps, 1)
        if self.lr_schedule == "linear":
            return 1.0 - progress
        if self.lr_schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0


def epoch_order(users: np.ndarray, rng: np.random.Generator, batch_by: str) -> np.ndarray:
    """The order in which an epoch visits the positives of ``users`` (a permutation).

    ``"positive"``: a uniform shuffle. ``"user"``: the users in a uniform random order,
    each user's positives contiguous and shuffled among themselves, so consecutive
    batches cover few users (a user may straddle two batches).
    """
    order = rng.permutation(len(users))
    if batch_by == "positive" or len(users) == 0:
        return order
    user_rank = rng.permutation(int(users.max()) + 1)
    keys = user_rank[users[order]]
    if len(user_rank) <= 1 << 16:
        # NumPy sorts 16-bit keys stably by radix, in linear time (wider ones by merging,
        # about ten times slower): the same order.
        keys = keys.astype(np.uint16)
    return order[np.argsort(keys, kind="stable")]


@contextmanager
def torch_threads(n_threads: int | None) -> Iterator[None]:
    """Run the block with ``n_threads`` intra-op CPU threads (None: leave torch's setting).

    Small models run many tiny kernels; when another busy process shares the cores, every
    kernel's threads wait for each other and a step can take tens of times longer. One
    thread per process avoids that when several trainings or a server share a machine.
    """
    if n_threads is None:
        yield
        return
    n_threads = positive_int("n_threads", n_threads)
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


#: Below this many (pair, negative) terms a step is too small to gain from threads.
_SINGLE_THREAD_TERMS = 262_144


@contextmanager
def threads_for_terms(n_terms: int):
    """One torch thread for small problems: tiny ops on a busy machine lose far more to
    thread hand-offs than they gain (measured 50 ms vs 0.4-4 s for one history)."""
    previous = torch.get_num_threads()
    if n_terms >= _SINGLE_THREAD_TERMS or previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def make_adam(
    parameters: Iterable[torch.nn.Parameter], learning_rate: float, l2: float
) -> torch.optim.Adam:
    """Adam with L2 as weight decay, using the single-kernel implementation where it exists.

    The fused kernel updates a whole embedding table in one pass; on a CPU it is several
    times faster than the per-operation implementation, which dominates small models' steps.
    """
    parameters = list(parameters)
    device_type = parameters[0].device.type if parameters else "cpu"
    fused = device_type in ("cpu", "cuda") and all(p.dtype.is_floating_point for p in parameters)
    return torch.optim.Adam(parameters, lr=learning_rate, weight_decay=l2, fused=fused or None)


class BatchScores(nn.Module):
    """Scores of every kind of batch the training loop sends, through one ``forward``.

    ``(users, positives, negatives)`` gives the positive and negative scores; with
    ``negatives`` None, the ``(B, n_items)`` scores of the full softmax, or with
    ``in_batch`` the ``(B, B)`` scores against the batch's positives. All are training
    scores (``for_ranking=False``). Data-parallel training wraps this module (DDP
    synchronises the gradients of what ran through ``forward``).
    """

    def __init__(self, net: TripletNet, in_batch: bool = False) -> None:
        super().__init__()
        self.net = net
        self.in_batch = in_batch

    def forward(
        self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor | None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if negatives is None:  # full softmax, or the batch's positives as the negatives
            items = positives if self.in_batch else None
            return self.net.scorer.score_all(users, items, for_ranking=False)
        return self.net(users, positives, negatives)


class AutogradStep:
    """A training step that differentiates the loss with autograd.

    Parameters
    ----------
    scores : nn.Module
        Scores a batch (:class:`BatchScores`, or its DDP wrapper).
    loss : Loss
        The loss of the batch's scores (:meth:`~tripletrec.training.losses.Loss.of_batch`).
    optimizer : torch.optim.Optimizer
        Updates the weights from their gradients.
    log_q : torch.Tensor, optional
        The sampler's log-probability per item, for the softmax's log-q correction.
    """

    def __init__(
        self,
        scores: nn.Module,
        loss: Loss,
        optimizer: Any,
        log_q: torch.Tensor | None = None,
    ) -> None:
        self.scores, self.loss, self.optimizer, self.log_q = scores, loss, optimizer, log_q

    def __call__(
        self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor | None
    ) -> torch.Tensor:
        batch_scores = self.scores(users, positives, negatives)
        loss = self.loss.of_batch(batch_scores, positives, negatives, self.log_q)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


def autograd_step(
    net: TripletNet,
    loss: Loss,
    schedule: TrainingSchedule | None = None,
    log_q: torch.Tensor | None = None,
    *,
    scores: nn.Module | None = None,
    optimizer: Any = None,
) -> AutogradStep:
    """An :class:`AutogradStep` of ``net`` with ``loss``.

    ``optimizer`` defaults to Adam over ``net``'s parameters with the step size and weight
    decay of ``schedule``; ``scores`` defaults to the :class:`BatchScores` of ``net``
    (data-parallel training passes its DDP wrapper).
    """
    if optimizer is None:
        if schedule is None:
            raise ParameterError("autograd_step needs a schedule or an optimizer")
        optimizer = make_adam(net.parameters(), schedule.learning_rate, schedule.l2)
    if scores is None:
        scores = BatchScores(net, in_batch=loss.kind == "in_batch_softmax")
    return AutogradStep(scores, loss, optimizer, log_q)


class MaxNormStep:
    """``step``, then every row of ``tables`` longer than ``max_norm`` rescaled to it."""

    def __init__(self, step: TrainingStep, tables: Iterable[torch.Tensor], max_norm: float) -> None:
        self.step, self.tables, self.max_norm = step, list(tables), max_norm

    @property
    def optimizer(self) -> ParamGroups:
        return self.step.optimizer

    def __call__(
        self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor | None
    ) -> torch.Tensor:
        loss = self.step(users, positives, negatives)
        with torch.no_grad():
            for table in self.tables:
                table.renorm_(2, 0, self.max_norm)
        return loss


def with_max_norm(
    step: TrainingStep, tables: Iterable[torch.Tensor], max_norm: float | None
) -> TrainingStep:
    """``step`` followed by the max-norm constraint on ``tables`` (None: ``step`` itself)."""
    return step if max_norm is None else MaxNormStep(step, tables, max_norm)


def train_triplets(
    step: TrainingStep,
    users: np.ndarray,
    items: np.ndarray,
    sampler: NegativeSampler,
    schedule: TrainingSchedule,
    rng: np.random.Generator,
    *,
    n_negatives: int = 1,
    device: torch.device | str = "cpu",
    progress: bool = False,
    on_epoch_end: EpochCallback | None = None,
    first_epoch: int = 0,
    history: Sequence[dict] = (),
) -> list[dict]:
    """Train on (user, positive item) pairs with negatives sampled afresh every epoch.

    Parameters
    ----------
    step : TrainingStep
        One optimiser step on a batch (see :func:`autograd_step` and
        :class:`tripletrec.models.triplet.fused.FusedBilinearStep`); the model is in it, and its
        ``optimizer`` is what the learning-rate schedule adjusts.
    users, items : numpy.ndarray of int64
        The training positives as aligned index arrays.
    sampler : NegativeSampler
        Draws the negatives, once per epoch.
    schedule : TrainingSchedule
        Epochs, batch size and learning-rate schedule (the step owns the optimiser).
    rng : numpy.random.Generator
        Source of the shuffles and negatives.
    n_negatives : int
        Negatives drawn per positive; above 1 the step receives a ``(B, K)`` array.
    device : torch.device or str
        Where the batches go.
    progress : bool
        Show a progress bar with the running loss.
    on_epoch_end : callable, optional
        Called as ``on_epoch_end(epoch, record)``; returning True stops training.
    first_epoch : int
        Epochs already done (a resumed fit): training starts with epoch
        ``first_epoch + 1``, the learning-rate schedule where those epochs left it. ``rng``
        and the step must be in the state they had then
        (:mod:`tripletrec.training.checkpoints`).
    history : sequence of dict
        The records of the epochs already done; the returned history starts with them.

    Returns
    -------
    list of dict
        One record per epoch: ``epoch``, ``loss`` (mean over the epoch's batches) and
        ``seconds``.

    Raises
    ------
    TrainingDivergedError
        When an epoch's loss is not finite (a ``FloatingPointError`` too).
    """
    users_t = torch.as_tensor(users, dtype=torch.int64)
    items_t = torch.as_tensor(items, dtype=torch.int64)
    n = len(users)
    records = list(history)
    bar = tqdm(
        range(first_epoch, schedule.epochs), desc="training", unit="epoch",
        disable=not progress, initial=first_epoch, total=schedule.epochs,
    )  # fmt: skip
    scheduled = schedule.lr_schedule != "constant"
    total_steps = schedule.epochs * steps_per_epoch(n, schedule.batch_size)
    steps_done = first_epoch * steps_per_epoch(n, schedule.batch_size)
    for epoch in bar:
        start = time.perf_counter()
        order = torch.as_tensor(epoch_order(users, rng, schedule.batch_by))
        epoch_users = users_t[order]
        drawn = sampler(epoch_users.numpy(), rng, n_negatives)
        epoch_users = epoch_users.to(device)
        epoch_positives = items_t[order].to(device)
        epoch_negatives = None if drawn is None else torch.as_tensor(drawn).to(device)
        # Summed on the device and read once per epoch: a .item() per step would force a
        # device synchronisation per batch.
        loss_sum = torch.zeros((), device=device)
        n_batches = 0
        for first in range(0, n, schedule.batch_size):
            if scheduled:
                factor = schedule.lr_factor(steps_done, total_steps)
                for group in step.optimizer.param_groups:
                    group["lr"] = schedule.learning_rate * factor
            steps_done += 1
            batch = slice(first, first + schedule.batch_size)
            negatives = None if epoch_negatives is None else epoch_negatives[batch]
            loss_sum += step(epoch_users[batch], epoch_positives[batch], negatives)
            n_batches += 1
        record = {
            "epoch": epoch + 1,
            "loss": float(loss_sum) / n_batches,
            "seconds": time.perf_counter() - start,
        }
        if not np.isfinite(record["loss"]):
            raise TrainingDivergedError(
                f"training diverged at epoch {epoch + 1} (loss is {record['loss']}); "
                "lower the learning rate"
            )
        records.append(record)
        bar.set_postfix(loss=f"{record['loss']:.4f}")
        if on_epoch_end is not None and on_epoch_end(epoch + 1, record):
            break
    return records


def steps_per_epoch(n_positives: int, batch_size: int) -> int:
    """Optimiser steps in one epoch over ``n_positives`` (the last batch may be short)."""
    return math.ceil(n_positives / batch_size)
