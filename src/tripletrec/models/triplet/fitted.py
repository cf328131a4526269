"""The fitted state of a :class:`~tripletrec.models.triplet.TripletRecommender`: what a fit
produces, where each fitted attribute is written, and how a new fit starts clean.

Every fitted attribute (:data:`FITTED_ATTRIBUTES`) is written in one of three places:

* **The training data**: ``user_map_``, ``item_map_``, ``seen_``, ``item_metadata_``,
  ``user_history_`` and the side features (``user_encoder_``, ``item_encoder_``,
  ``user_features_``, ``item_features_``), by ``set_training_data`` at the start of
  ``fit``, grown by :meth:`~tripletrec.models.triplet.growth.Growth.apply` in
  ``fit_partial`` and by ``add_items``.
* **What training produced**: a :class:`FittedTriplet`, which both
  :func:`~tripletrec.models.triplet.trainer.fit_triplet_model` and
  :func:`~tripletrec.models.triplet.incremental.fit_partial_triplet_model` end by handing
  to :meth:`TripletState._install`, the one place those attributes are written.
* **While a fit trains**, the scorer in training is ``module_`` and the negatives and
  batches it resolved are ``negatives_`` and ``batch_by_``, so that validation and epoch
  callbacks can score the model; ``_install`` replaces them at the end.

A fit runs in :meth:`TripletState._fresh_fit`, which forgets every fitted attribute first,
and again if the fit fails, as the item-item models do: nothing of an earlier fit (its
early-stopping epoch, a ``fit_partial`` count, a data-parallel record) survives a refit,
and a fit that fails leaves the model unfitted rather than half of each (a ``fit_partial``
that fails leaves the model it started from). Saved models are read back by
:class:`~tripletrec.models.triplet._scorer_hooks.ScorerHooks`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, TypeVar

from tripletrec.training.losses import Loss, resolve_loss

if TYPE_CHECKING:
    from tripletrec.models.interface import Scorer
    from tripletrec.training.state import OptimizerState

#: Every attribute a fit of a TripletRecommender sets (the training data, then what
#: training produced).
FITTED_ATTRIBUTES = (
    "user_map_", "item_map_", "seen_", "item_metadata_",
    "user_history_", "user_encoder_", "item_encoder_", "user_features_", "item_features_",
    "module_", "negatives_", "batch_by_", "history_", "fit_seconds_", "optimizer_state_",
    "resumed_epoch_", "best_epoch_", "partial_fit_", "data_parallel_",
)  # fmt: skip

StateT = TypeVar("StateT", bound="TripletState")


@dataclass(frozen=True)
class FittedTriplet:
    """What one ``fit`` or ``fit_partial`` trained; each field is the estimator attribute of
    the same name with a trailing underscore.

    Attributes
    ----------
    module : Scorer
        The trained network, in eval mode.
    negatives, batch_by : str
        The negatives and batch grouping training used (``"auto"`` resolved).
    history : list of dict
        Per-epoch records (after ``fit_partial``: the earlier epochs, then its own).
    fit_seconds : float
        Wall time of this call (of every process of a resumed fit).
    optimizer_state : OptimizerState
        Adam's state at the end, which ``fit_partial`` continues from.
    resumed_epoch : int or None
        Epochs ``fit`` restored from a checkpoint (0: none).
    best_epoch : int or None
        The epoch whose weights early stopping kept (``fit`` with ``patience``).
    partial_fit : dict or None
        What ``fit_partial`` added (new users, items, positives) and its epochs.
    data_parallel : dict or None
        The data-parallel job ``fit`` ran in (``fit_data_parallel``).

    A field left None was not produced by the call, and its attribute is left as it is:
    absent after ``fit``, which forgets the previous fit first; after ``fit_partial``,
    ``resumed_epoch_``, ``best_epoch_`` and ``data_parallel_`` still describe the fit it
    continues.
    """

    module: Scorer
    negatives: str
    batch_by: str
    history: list[dict]
    fit_seconds: float
    optimizer_state: OptimizerState
    resumed_epoch: int | None = None
    best_epoch: int | None = None
    partial_fit: dict | None = None
    data_parallel: dict | None = None

    def attributes(self) -> dict[str, Any]:
        """The estimator attributes to set: ``{name_: value}`` for every field not None."""
        values = {field.name: getattr(self, field.name) for field in fields(self)}
        return {f"{name}_": value for name, value in values.items() if value is not None}


class TripletState:
    """How a TripletRecommender's fitted state is forgotten, installed and read back (a
    mixin of the estimator, which provides the hyper-parameters named below)."""

    loss: str
    margin: float
    negatives: str
    batch_by: str
    n_items_: int

    def _forget_fit(self) -> None:
        """Drop every fitted attribute."""
        for name in FITTED_ATTRIBUTES:
            self.__dict__.pop(name, None)

    @contextmanager
    def _fresh_fit(self) -> Iterator[None]:
        """Run a fit that starts from an unfitted estimator: the previous fit is forgotten
        first, and this one too if it fails (raises, or is interrupted)."""
        self._forget_fit()
        try:
            yield
        except BaseException:
            self._forget_fit()
            raise

    def _install(self: StateT, fitted: FittedTriplet) -> StateT:
        """Set what ``fitted`` trained on this estimator (the only writer of those
        attributes; see the module docstring) and return the estimator."""
        for name, value in fitted.attributes().items():
            setattr(self, name, value)
        return self

    def _negatives(self) -> str:
        """The fitted negatives (``negatives_``); before a fit, ``negatives`` as given."""
        return getattr(self, "negatives_", self.negatives)

    def _batch_by(self) -> str:
        """The fitted batch grouping (``batch_by_``); before a fit, ``batch_by`` as given
        (``"auto"`` taken as ``"positive"``)."""
        return getattr(self, "batch_by_", "positive" if self.batch_by == "auto" else self.batch_by)

    def _loss(self) -> Loss:
        """The training loss (:func:`~tripletrec.training.losses.resolve_loss`) of the
        fitted negatives, which fold-in and the ``"auto"`` ranking bias follow."""
        n_items = self.n_items_ if hasattr(self, "item_map_") else None
        return resolve_loss(self.loss, self.margin, self._negatives(), n_items)
