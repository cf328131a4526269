"""Side-feature matrices of :class:`~tripletrec.models.triplet.TripletRecommender`.

Each side (users, items) fitted with features has an encoder (the vocabulary) and a CSR
matrix with one row per entity: its features, weighted to sum to ``feature_weight``, then
its identity column (see :mod:`tripletrec.data.features`). These functions build, extend
and persist those matrices; the estimator holds them as ``user_features_`` /
``item_features_`` and ``user_encoder_`` / ``item_encoder_``.

With ``user_history_`` the user side's features are the users' training histories
(:func:`~tripletrec.data.features.history_encoder`), weighted :data:`HISTORY_WEIGHT`, and
they follow the data: a new user's row comes from their history, and ``fit_partial``
rebuilds every user's row from the grown histories.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tripletrec.data.features import (
    FeatureEncoder,
    Features,
    history_encoder,
    history_rows,
    with_identity,
)
from tripletrec.data.interactions import IdMap
from tripletrec.exceptions import DataError, ParameterError, TripletrecError
from tripletrec.models.embeddings import FeatureEmbedding
from tripletrec.models.triplet.settings import TrainingSettings

if TYPE_CHECKING:
    from tripletrec.models.interface import Scorer
    from tripletrec.models.triplet.estimator import TripletRecommender

SIDES = ("user", "item")
#: The weight of a user's history in their vector (``user_history``): the mean of the
#: history's item embeddings counts as much as the user's own embedding. Chosen on
#: validation splits against ``feature_weight``'s 0.25 (``benchmarks/results/user_history.md``,
#: ``benchmarks/results/history_aware.md``).
HISTORY_WEIGHT = 1.0


def resolved_user_history(
    model: TripletRecommender, seen: sp.csr_matrix, user_features: Features | None
) -> bool:
    """``model.user_history`` for the training positives ``seen`` (id maps set), with
    ``"auto"`` resolved: True when the fit's batches group positives by user and no user
    features are given.

    Raises
    ------
    ParameterError
        If ``user_history`` is not True, False or "auto", or is True beside user features.
    """
    value = model.user_history
    if not isinstance(value, bool) and value != "auto":
        raise ParameterError(f"user_history must be True, False or 'auto', not {value!r}")
    if value is True and user_features is not None:
        raise ParameterError(
            "user_history=True makes the users' histories their features: give "
            "user_features or user_history=True, not both"
        )
    if value != "auto":
        return bool(value)
    if user_features is not None:
        return False
    settings = TrainingSettings.of(model).for_data(seen.nnz, model.n_users_, model.n_items_)
    return settings.batch_by == "user"


def side_weight(model: TripletRecommender, side: str) -> float:
    """The weight of ``side``'s features in an entity's vector."""
    if side == "user" and getattr(model, "user_history_", False):
        return HISTORY_WEIGHT
    return float(model.feature_weight)


def history_matrix(encoder: FeatureEncoder, seen: sp.csr_matrix, n_identity: int) -> sp.csr_matrix:
    """User feature rows of the histories in ``seen``, weighted :data:`HISTORY_WEIGHT`, with
    ``n_identity`` identity columns (every row past them has none: users not trained on)."""
    rows = history_rows(encoder, seen) * np.float32(HISTORY_WEIGHT)
    return with_identity(rows, n_identity)


def feature_rows(
    encoder: FeatureEncoder, features: Features, id_map: IdMap, weight: float
) -> sp.csr_matrix:
    """Feature rows of ``features`` aligned to ``id_map``, each summing to ``weight``
    (identity columns not included)."""
    return encoder.transform(features, id_map) * np.float32(weight)


def fit_side(
    side: str, features: Features | None, id_map: IdMap, weight: float
) -> tuple[FeatureEncoder | None, sp.csr_matrix | None]:
    """The encoder and matrix (identity included) of one side; ``(None, None)`` without
    features."""
    if features is None:
        return None, None
    if not isinstance(features, Features):
        raise DataError(
            f"{side}_features must be a tripletrec.data.features.Features, "
            f"got {type(features).__name__}"
        )
    # The vocabulary comes from the entities trained on: a value only unseen entities have
    # would get an embedding that nothing ever trains.
    encoder = FeatureEncoder().fit(features.for_ids(id_map.ids))
    matrix = with_identity(feature_rows(encoder, features, id_map, weight), len(id_map))
    return encoder, matrix


def fit_sides(
    model: TripletRecommender,
    user_features: Features | None,
    item_features: Features | None,
    seen: sp.csr_matrix,
) -> None:
    """Set both sides' encoders and matrices on ``model`` (id maps and ``user_history_``
    already set; ``seen``: the training positives, whose histories are the user features
    of a ``user_history_`` model)."""
    for side, features, id_map in (
        ("user", user_features, model.user_map_),
        ("item", item_features, model.item_map_),
    ):
        if side == "user" and model.user_history_:
            encoder = history_encoder(seen)
            matrix = history_matrix(encoder, seen, len(id_map))
        else:
            encoder, matrix = fit_side(side, features, id_map, model.feature_weight)
        setattr(model, f"{side}_encoder_", encoder)
        setattr(model, f"{side}_features_", matrix)


def scorer_matrices(
    model: TripletRecommender,
    user_features: sp.csr_matrix | None,
    item_features: sp.csr_matrix | None,
) -> dict[str, sp.csr_matrix | None]:
    """The feature matrices a scorer of ``model`` is built with, as ``build_scorer``
    keywords: those given (``fit_partial``'s grown ones), else the fitted ones."""
    given = {"user": user_features, "item": item_features}
    return {
        f"{side}_features": getattr(model, f"{side}_features_", None) if matrix is None
        else matrix for side, matrix in given.items()
    }  # fmt: skip


def configure_embeddings(model: TripletRecommender, scorer: Scorer) -> None:
    """Tell each feature embedding of ``scorer`` where its identity columns start (they
    come last) and how often to drop them (``model.identity_dropout``)."""
    for side, embeddings in scorer.entity_embeddings().items():
        for embedding in embeddings:
            if isinstance(embedding, FeatureEmbedding):
                embedding.first_identity = getattr(model, f"{side}_encoder_").n_features
                embedding.identity_dropout = float(model.identity_dropout)


def add_items(
    model: TripletRecommender, features: Features, metadata: pd.DataFrame | None = None
) -> None:
    """Extend a fitted ``model`` with the items of ``features`` it does not know, and its
    item metadata with ``metadata`` (indexed by raw item id)."""
    if metadata is not None and not isinstance(metadata, pd.DataFrame):
        raise ParameterError(
            "item_metadata must be a pandas DataFrame indexed by raw item id, got "
            f"{type(metadata).__name__}"
        )
    encoder = getattr(model, "item_encoder_", None)
    if encoder is None:
        raise TripletrecError(
            "this model was fitted without item features: new items need a model "
            "trained with fit(..., item_features=...)"
        )
    new_ids = features.ids[~features.ids.isin(pd.Index(model.item_map_.ids))]
    if len(new_ids) == 0:
        return
    item_map = IdMap(np.concatenate([model.item_map_.ids, new_ids.to_numpy()]), "item")
    model.item_features_ = with_new_rows(
        model.item_features_, encoder, features.for_ids(new_ids), item_map, model.feature_weight
    )
    model.item_map_ = item_map
    seen = model.seen_
    model.seen_ = sp.csr_matrix(
        (seen.data, seen.indices, seen.indptr), shape=(model.n_users_, len(item_map))
    )
    model.item_metadata_ = grown_metadata(model.item_metadata_, metadata, item_map)
    model.module_.set_item_features(model.item_features_)


def new_user_rows(model: TripletRecommender, features: Features, user_ids: list) -> sp.csr_matrix:
    """Feature rows of users ``model`` has never seen, in the columns of its user matrix."""
    encoder = getattr(model, "user_encoder_", None)
    if encoder is None:
        raise TripletrecError(
            "this model was fitted without user features: fit(..., user_features=...) "
            "to fold in new users from theirs"
        )
    return outside_rows(
        model.user_features_, encoder, features, user_ids, side_weight(model, "user")
    )


def new_user_history_rows(
    model: TripletRecommender, rows: np.ndarray, items: np.ndarray, n_rows: int
) -> sp.csr_matrix:
    """Feature rows of new users of a ``user_history_`` model from their histories, given
    as (row, item index) pairs, in the columns of its user matrix."""
    histories = sp.csr_matrix(
        (np.ones(len(rows), np.float32), (rows, items)), shape=(n_rows, model.n_items_)
    )
    return _in_columns_of(model.user_features_, history_matrix(model.user_encoder_, histories, 0))


def with_new_rows(
    matrix: sp.csr_matrix,
    encoder: FeatureEncoder,
    features: Features,
    id_map: IdMap,
    weight: float,
) -> sp.csr_matrix:
    """``matrix`` with rows for the entities of ``id_map`` after its own rows, from their
    features alone (no identity column of their own)."""
    n_known = matrix.shape[0]
    new_rows = feature_rows(encoder, features, id_map, weight)[n_known:]
    padding = sp.csr_matrix((new_rows.shape[0], matrix.shape[1] - new_rows.shape[1]))
    return sp.vstack([matrix, sp.hstack([new_rows, padding])], format="csr", dtype=np.float32)


def outside_rows(
    matrix: sp.csr_matrix,
    encoder: FeatureEncoder,
    features: Features,
    ids: list,
    weight: float,
) -> sp.csr_matrix:
    """Rows of entities that are not in ``matrix`` (new users), in its columns, from their
    features alone."""
    return _in_columns_of(matrix, feature_rows(encoder, features, IdMap(ids, "new user"), weight))


def _in_columns_of(matrix: sp.csr_matrix, rows: sp.csr_matrix) -> sp.csr_matrix:
    """Feature ``rows`` of entities outside ``matrix`` in its columns: their identity
    columns (they have none) empty."""
    padding = sp.csr_matrix((rows.shape[0], matrix.shape[1] - rows.shape[1]))
    return sp.hstack([rows, padding], format="csr", dtype=np.float32)


def state_of(model: TripletRecommender) -> dict[str, np.ndarray]:
    """The arrays of both sides' matrices, for a saved model."""
    state = {}
    for side in SIDES:
        matrix = getattr(model, f"{side}_features_", None)
        if matrix is not None:
            state[f"features.{side}.indptr"] = matrix.indptr.astype(np.int64)
            state[f"features.{side}.indices"] = matrix.indices.astype(np.int64)
            state[f"features.{side}.values"] = matrix.data.astype(np.float32)
    return state


def summary_of(model: TripletRecommender) -> dict:
    """What a saved model records of each side besides its arrays (sides with features)."""
    summary = {}
    for side in SIDES:
        encoder = getattr(model, f"{side}_encoder_", None)
        if encoder is not None:
            n_columns = getattr(model, f"{side}_features_").shape[1]
            summary[side] = {
                "encoder": encoder.to_dict(),
                "n_identity": int(n_columns - encoder.n_features),
            }
    return summary


def load_sides(model: TripletRecommender, state: dict[str, np.ndarray], summary: dict) -> None:
    """Set both sides' encoders and matrices on ``model`` from :func:`state_of` and
    :func:`summary_of` (id maps already set)."""
    for side, n_rows in (("user", model.n_users_), ("item", model.n_items_)):
        encoder = matrix = None
        if side in summary:
            encoder = FeatureEncoder.from_dict(summary[side]["encoder"])
            n_columns = encoder.n_features + int(summary[side]["n_identity"])
            matrix = sp.csr_matrix(
                (
                    state[f"features.{side}.values"],
                    state[f"features.{side}.indices"],
                    state[f"features.{side}.indptr"],
                ),
                shape=(n_rows, n_columns),
            )
        setattr(model, f"{side}_encoder_", encoder)
        setattr(model, f"{side}_features_", matrix)


def grown_metadata(
    known: pd.DataFrame | None, given: pd.DataFrame | None, item_map: IdMap
) -> pd.DataFrame | None:
    """Item metadata over the grown item map: the model's, completed by the new data's."""
    if known is None and given is None:
        return None
    if known is None or given is None:
        table = known if given is None else given
    else:
        table = known.combine_first(given)
    return table.reindex(item_map.ids)
