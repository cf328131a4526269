"""The training loop shared by every triplet model.

One epoch = every training positive once, in a fresh random order, each paired with a
freshly drawn negative. Sampling is done for the whole epoch at once with NumPy; the loop
runs once per mini-batch, never once per interaction.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from tripletrec.models.scorers import TripletNet
from tripletrec.training.losses import LossFunction, full_softmax_loss
from tripletrec.training.sampling import NegativeSampler

EpochCallback = Callable[[int, dict], bool | None]
#: One optimiser step on a batch ``(users, positives, negatives)``; returns the batch loss.
#: ``negatives`` is None when every item is a negative (full softmax).
TrainingStep = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


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
    """

    epochs: int
    batch_size: int
    learning_rate: float
    l2: float = 0.0
    lr_schedule: str = "constant"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.l2 < 0:
            raise ValueError(f"l2 must be non-negative, got {self.l2}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, not {self.lr_schedule!r}"
            )

    def lr_factor(self, step: int, total_steps: int) -> float:
        """The multiple of ``learning_rate`` used at ``step`` (0-based) of ``total_steps``."""
        progress = step / max(total_steps, 1)
        if self.lr_schedule == "linear":
            return 1.0 - progress
        if self.lr_schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0


LR_SCHEDULES = ("constant", "linear", "cosine")


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
    if n_threads < 1:
        raise ValueError(f"n_threads must be at least 1, got {n_threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
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
    ``in_batch`` the ``(B, B)`` scores against the batch's positives. Data-parallel
    training wraps this module (DDP synchronises the gradients of what ran through
    ``forward``).
    """

    def __init__(self, net: TripletNet, in_batch: bool = False) -> None:
        super().__init__()
        self.net = net
        self.in_batch = in_batch

    def forward(
        self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor | None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if negatives is None:  # full softmax, or the batch's positives as the negatives
            return self.net.scorer.score_all(users, positives if self.in_batch else None)
        return self.net(users, positives, negatives)


def batch_loss(
    scores: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
    positives: torch.Tensor,
    negatives: torch.Tensor | None,
    loss_fn: LossFunction,
    log_q: torch.Tensor | None = None,
    *,
    in_batch: bool = False,
) -> torch.Tensor:
    """The loss of a batch from :class:`BatchScores`' output.

    ``log_q``, the sampler's log-probability per item, is subtracted from sampled scores
    (the sampled-softmax correction); None leaves scores as they are. Batches without drawn
    negatives use the softmax over every item, or with ``in_batch`` over the batch's
    positives (each row's own positive is its target).
    """
    if negatives is None:
        target = positives
        if in_batch:
            target = torch.arange(len(positives), device=positives.device)
            if log_q is not None:
                scores = scores - log_q[positives][None, :]
        return full_softmax_loss(scores, target)
    positive_scores, negative_scores = scores
    if log_q is not None:
        positive_scores = positive_scores - log_q[positives]
        negative_scores = negative_scores - log_q[negatives]
    return loss_fn(positive_scores, negative_scores)


def autograd_step(
    net: TripletNet,
    loss_fn: LossFunction,
    schedule: TrainingSchedule,
    log_q: torch.Tensor | None = None,
    *,
    in_batch: bool = False,
    scores: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> TrainingStep:
    """A training step that differentiates :func:`batch_loss` with autograd and Adam.

    ``scores`` replaces the :class:`BatchScores` of ``net`` (data-parallel training passes
    its DDP wrapper) and ``optimizer`` replaces Adam over ``net``'s parameters.
    """
    if optimizer is None:
        optimizer = make_adam(net.parameters(), schedule.learning_rate, schedule.l2)
    if scores is None:
        scores = BatchScores(net, in_batch)

    def step(
        users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor | None
    ) -> torch.Tensor:
        batch_scores = scores(users, positives, negatives)
        loss = batch_loss(batch_scores, positives, negatives, loss_fn, log_q, in_batch=in_batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    step.optimizer = optimizer  # type: ignore[attr-defined]  # for the lr schedule
    return step


def with_max_norm(
    step: TrainingStep, tables: Iterable[torch.Tensor], max_norm: float
) -> TrainingStep:
    """``step``, then every row of ``tables`` longer than ``max_norm`` rescaled to it."""
    tables = list(tables)

    def constrained(
        users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor | None
    ) -> torch.Tensor:
        loss = step(users, positives, negatives)
        with torch.no_grad():
            for table in tables:
                table.renorm_(2, 0, max_norm)
        return loss

    constrained.optimizer = step.optimizer  # type: ignore[attr-defined]
    return constrained


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
) -> list[dict]:
    """Train on (user, positive item) pairs with negatives sampled afresh every epoch.

    Parameters
    ----------
    step : callable
        One optimiser step on a batch (see :func:`autograd_step` and
        :class:`tripletrec.training.fused.FusedBilinearStep`); the model is in its closure, and its
        ``optimizer`` attribute is what the learning-rate schedule adjusts.
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

    Returns
    -------
    list of dict
        One record per epoch: ``epoch``, ``loss`` (mean over the epoch's batches) and
        ``seconds``.
    """
    users_t = torch.as_tensor(users, dtype=torch.int64)
    items_t = torch.as_tensor(items, dtype=torch.int64)
    n = len(users)
    history: list[dict] = []
    bar = tqdm(range(schedule.epochs), desc="training", unit="epoch", disable=not progress)
    scheduled = schedule.lr_schedule != "constant"
    total_steps = schedule.epochs * math.ceil(n / schedule.batch_size)
    steps_done = 0
    for epoch in bar:
        start = time.perf_counter()
        order = torch.as_tensor(rng.permutation(n))
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
                for group in step.optimizer.param_groups:  # type: ignore[attr-defined]
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
            raise FloatingPointError(
                f"training diverged at epoch {epoch + 1} (loss is {record['loss']}); "
                "lower the learning rate"
            )
        history.append(record)
        bar.set_postfix(loss=f"{record['loss']:.4f}")
        if on_epoch_end is not None and on_epoch_end(epoch + 1, record):
            break
    return history
