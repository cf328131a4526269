"""The factor part of :class:`~tripletrec.models.hybrid.HybridRecommender`: its defaults
where they differ from :class:`~tripletrec.models.triplet.TripletRecommender`'s, and the
rules that adapt them to the data's shape (its density, its size and the item-item part
beside it). Every rule steps aside for what the ``factor`` setting names.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

from tripletrec.exceptions import ParameterError
from tripletrec.models.item_item import ItemItemMixin
from tripletrec.models.triplet import TripletRecommender
from tripletrec.training.losses import resolve_negatives

#: The factor model's defaults here, where they differ from TripletRecommender's: EASE
#: carries the top of the list, so the factor model needs fewer epochs to rank the rest;
#: its user vectors include their histories on every catalogue (``user_history``), and its
#: batches are grouped by user, which with the histories ranked better on validation and
#: trains faster.
FACTOR_DEFAULTS: Mapping[str, Any] = {"epochs": 7, "user_history": True, "batch_by": "user"}
#: The factor model's steps over batches of positives, at most (unless ``factor`` names
#: ``epochs``): past it its epochs are cut, one at least, so that the fit's time stops
#: growing faster than the data. Such batches come with in-batch negatives, past the full
#: softmax's budget of users x items (no data set the defaults were validated on: those
#: train per-user batches, bounded by that budget), where one epoch is already thousands of
#: steps (``docs/scaling.md``, "The default end to end").
FACTOR_STEP_BUDGET = 6000
#: Beside EASE and without weight decay, the factor model's per-user batches
#: (``batch_by="user"``) grow past ``batch_size`` to hold at least
#: 1/:data:`FACTOR_USER_BATCH_STEPS` of the positives, up to
#: :data:`FACTOR_USER_BATCH_GROWTH` times ``batch_size``, with the learning rate in
#: proportion; such a fit trains :data:`FACTOR_GROWN_EPOCHS` epochs. Each step pays passes
#: over the whole embedding tables (Adam, the norm bound): beside EASE the factor part was
#: most of the fit, and on validation splits (``benchmarks/studies/factor_schedule.py``)
#: the grown batches ranked as the default's 7 epochs on anime-5k and Gowalla's cores, in
#: 46 to 73 % of the fit's time. The coupled decay acts once per step, so where it
#: applies (:data:`FACTOR_DEFAULTS_BESIDE_EASE`) the steps stay as tuned; beside the graph
#: filter, whose own fit dominates, they saved 5 to 18 % and ranked lower on the whole of
#: Gowalla.
FACTOR_USER_BATCH_STEPS = 16
FACTOR_USER_BATCH_GROWTH = 4
FACTOR_GROWN_EPOCHS = 5
#: Beside EASE (catalogues up to :data:`~tripletrec.models.hybrid.EASE_MAX_ITEMS` items)
#: on dense data (see :data:`FACTOR_DECAY_MIN_DENSITY`) the factor model keeps a small
#: weight decay: without it the blend lost AUC and NDCG@10 on validation (anime-tv,
#: MovieLens-100k). Elsewhere it trains with none (TripletRecommender's default): on
#: Gowalla's validation this decay collapsed it towards popularity (``docs/models.md``,
#: "Weight decay and sparse catalogues").
FACTOR_DEFAULTS_BESIDE_EASE: Mapping[str, Any] = {"l2": 3.5e-5}
#: The share of the active users x items matrix (users and items with a positive) that the
#: training positives must fill for :data:`FACTOR_DEFAULTS_BESIDE_EASE` to apply. On
#: validation splits (``benchmarks/studies/decay_density.py``) the decay helped at 2.7 % and
#: 5.7 % (MovieLens-100k, anime-tv), was neutral at 0.67 % (anime-5k) and cost Recall@20
#: and NDCG@20 on Gowalla's cores of 2,714 to 18,649 items (0.31 % to 0.10 %), catalogues
#: small enough for EASE but nearly as sparse as Gowalla.
FACTOR_DECAY_MIN_DENSITY = 0.01


def factor_model(
    params: Mapping[str, Any],
    random_state: int | None,
    item_item_kind: str = "ease",
    seen: sp.csr_matrix | None = None,
) -> TripletRecommender:
    """The factor model with the settings ``params`` over :data:`FACTOR_DEFAULTS`, beside
    the item-item part ``item_item_kind`` (``"ease"`` or ``"graph_filter"``) on the training
    positives ``seen`` (None: before any data, as a prototype).

    Beside EASE on ``seen`` at least :data:`FACTOR_DECAY_MIN_DENSITY` dense (or without
    ``seen``) it has the weight decay of :data:`FACTOR_DEFAULTS_BESIDE_EASE`; beside EASE
    without it, per-user batches grown with the data (:func:`grow_user_batches`); on
    ``seen`` past the full softmax's budget (in-batch negatives, which per-user batches
    cannot train), shuffled positives, their epochs cut to :data:`FACTOR_STEP_BUDGET`.

    Raises
    ------
    ParameterError
        If ``params`` names a setting TripletRecommender does not have.
    """
    dense = seen is None or positives_density(seen) >= FACTOR_DECAY_MIN_DENSITY
    defaults = {
        **FACTOR_DEFAULTS,
        **(FACTOR_DEFAULTS_BESIDE_EASE if item_item_kind == "ease" and dense else {}),
    }
    try:
        model = TripletRecommender(**{**defaults, **params, "random_state": random_state})
    except TypeError as exc:  # an unknown name in ``factor``
        raise ParameterError(f"factor: {exc}") from exc
    if seen is None:
        return model
    if "batch_by" not in params:
        args = (model.negatives, model.loss, seen.nnz, seen.shape[1])
        grouped = {"n_users": seen.shape[0], "batch_by": model.batch_by}
        if resolve_negatives(*args, **grouped) == "in_batch":
            model.set_params(batch_by="positive")
    if item_item_kind == "ease" and model.batch_by == "user":
        grow_user_batches(model, seen.nnz, params)
    if "epochs" not in params and model.batch_by != "user":
        per_epoch = -(-seen.nnz // model.batch_size)
        model.set_params(epochs=max(1, min(model.epochs, FACTOR_STEP_BUDGET // per_epoch)))
    return model


def grow_user_batches(
    model: TripletRecommender, n_positives: int, named: Collection[str] = ()
) -> None:
    """``model``'s per-user batches grown for ``n_positives`` positives as
    :data:`FACTOR_USER_BATCH_STEPS` says, unless ``named`` (the ``factor`` setting) names
    ``batch_size`` or ``model`` has a weight decay; its learning rate and epochs follow
    unless named too."""
    if "batch_size" in named or model.l2 != 0.0:
        return
    least = -(-n_positives // FACTOR_USER_BATCH_STEPS)
    grown = min(max(model.batch_size, least), FACTOR_USER_BATCH_GROWTH * model.batch_size)
    if grown == model.batch_size:
        return
    changes: dict[str, Any] = {"batch_size": grown}
    if "learning_rate" not in named:
        changes["learning_rate"] = model.learning_rate * grown / model.batch_size
    if "epochs" not in named:
        changes["epochs"] = FACTOR_GROWN_EPOCHS
    model.set_params(**changes)


def positives_density(seen: sp.csr_matrix) -> float:
    """The share of the active part of ``seen`` (users and items with a positive) that its
    positives fill; 0 without any."""
    users = int(np.count_nonzero(np.diff(seen.indptr)))
    items = len(ItemItemMixin._active_columns(seen))
    return seen.nnz / (users * items) if seen.nnz else 0.0
