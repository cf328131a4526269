"""The training settings of a :class:`~tripletrec.models.triplet.TripletRecommender`:
its hyper-parameters checked once before a fit, and what ``"auto"`` resolves to on the
data (negatives, batch grouping, dense or sparse gradients)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from tripletrec._checks import finite_number, fraction, one_of, positive_int
from tripletrec._system import resolve_device
from tripletrec.training.loop import BATCH_BY, TrainingSchedule
from tripletrec.training.losses import (
    Loss,
    check_batch_by,
    resolve_batch_by,
    resolve_loss,
    resolve_negatives,
)

if TYPE_CHECKING:
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
    gradients: str
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
            gradients=one_of("gradients", model.gradients, GRADIENTS),
            random_state=model.random_state,
            n_threads=_optional(model.n_threads, "n_threads"),
            device=resolve_device(model.device),
            verbose=bool(model.verbose),
            patience=_optional(model.patience, "patience"),
            validation_metric=model.validation_metric,
        )

    def with_negatives(self, negatives: str, batch_by: str) -> TrainingSettings:
        """These settings with ``negatives`` and its loss, and batches grouped by
        ``batch_by`` (both resolved, not ``"auto"``); ``gradients="auto"`` resolved with
        them (:func:`resolve_gradients`)."""
        loss = resolve_loss(self.loss.name, self.loss.margin, negatives, self.loss.n_items)
        check_batch_by(batch_by, negatives)
        schedule = dataclasses.replace(self.schedule, batch_by=batch_by)
        gradients = resolve_gradients(self.gradients, negatives)
        return dataclasses.replace(
            self, negatives=negatives, loss=loss, batch_by=batch_by, schedule=schedule,
            gradients=gradients,
        )  # fmt: skip

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


#: What ``gradients`` names: ``"dense"`` steps update every row of every table,
#: ``"sparse"`` ones the rows a batch reads (:mod:`tripletrec.training.sparse`).
GRADIENTS: tuple[str, ...] = ("auto", "dense", "sparse")


def resolve_gradients(gradients: str, negatives: str) -> str:
    """``gradients`` with ``"auto"`` resolved: ``"sparse"`` with in-batch negatives, the
    regime past the full softmax's pair budget (large catalogues, many users), where a
    dense step's cost, proportional to the tables, would grow with the square of the data;
    ``"dense"`` otherwise, where the tables are small or the full softmax reads every item
    row anyway."""
    if gradients != "auto":
        return gradients
    return "sparse" if negatives == "in_batch" else "dense"


def _optional(value: object, name: str, finite: bool = False) -> float | int | None:
    """None, or a positive integer (a positive finite number with ``finite``)."""
    if value is None:
        return None
    if finite:
        return finite_number(name, value, low=0.0, low_open=True)
    return positive_int(name, value)
