"""Epoch callbacks of a fit: validation with early stopping, and chaining callbacks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from tripletrec.data.interactions import Interactions
from tripletrec.evaluation.metrics import metric_key, parse_metric
from tripletrec.evaluation.protocols import evaluate, interactions_matrix
from tripletrec.training.loop import EpochCallback

if TYPE_CHECKING:
    from tripletrec.models.base import RecommenderBase


class ValidationMonitor:
    """Scores the model on validation positives after each epoch; tracks the best epoch.

    Parameters
    ----------
    model : RecommenderBase
        The model being fitted, scored as it stands after each epoch.
    weights : nn.Module
        The network in training behind ``model``'s scores, whose best epoch's weights
        are kept with ``patience``.
    validation : Interactions or scipy sparse matrix
        Held-out positives of the training users.
    metric : str
        The metric to monitor (higher is better), e.g. ``"ndcg@10"``; AUC is recorded too.
    patience : int or None
        Stop after this many epochs without improvement and keep the best epoch's
        weights (:meth:`restore_best`); None only records.
    """

    def __init__(
        self,
        model: RecommenderBase,
        weights: nn.Module,
        validation: Interactions | sp.spmatrix,
        metric: str,
        patience: int | None,
    ) -> None:
        self.model = model
        self.weights = weights
        self.relevant = interactions_matrix(model, validation)
        self.metric = metric_key(*parse_metric(metric))
        self.patience = patience
        self.best_value = -np.inf
        self.best_epoch = 0
        self.best_state: dict[str, torch.Tensor] | None = None

    def __call__(self, epoch: int, record: dict) -> bool:
        names = list(dict.fromkeys(["auc", self.metric]))  # AUC is always recorded too
        # Scoring restores the module's training mode (models.interface.scoring).
        results = evaluate(self.model, self.model.seen_, self.relevant, names)
        for name in names:
            record[f"validation_{name}"] = results[name]
        value = results[self.metric]
        if value > self.best_value:
            self.best_value, self.best_epoch = value, epoch
            if self.patience is not None:
                state = self.weights.state_dict()
                self.best_state = {k: v.detach().clone() for k, v in state.items()}
        return self.patience is not None and epoch - self.best_epoch >= self.patience

    def restore_best(self) -> None:
        """Load the best epoch's weights (with ``patience``).

        A fit resumed from its final checkpoint has no best weights to load: its weights
        are the best epoch's already."""
        if self.best_state is not None:
            self.weights.load_state_dict(self.best_state)

    @property
    def kept_epoch(self) -> int | None:
        """The epoch whose weights the fit keeps: the best one, with ``patience`` and once
        an epoch was scored; None otherwise."""
        return self.best_epoch if self.patience is not None and self.best_epoch > 0 else None


def chain_callbacks(*callbacks: EpochCallback | None) -> EpochCallback | None:
    """One callback calling each of ``callbacks``; stops when any asks to."""
    present = [c for c in callbacks if c is not None]
    if not present:
        return None

    def call_all(epoch: int, record: dict) -> bool:
        return any([bool(callback(epoch, record)) for callback in present])

    return call_all
