"""Growing a fitted :class:`~tripletrec.models.triplet.TripletRecommender` for ``fit_partial``.

New positives may name users and items the model has never seen. :func:`grow` builds,
without touching the model, everything the model becomes once they are in:

* **Id maps**: the known ids keep their indices; new ones follow, in order of first
  appearance (a matrix gives indices: the maps grow to its shape).
* **Seen items**: the union of ``seen_`` and the new positives.
* **Side-feature matrices**: a new entity's row holds its features (from the features
  given; none when it has no row there) and an identity column of its own, appended after
  the known ones, so the layout stays features, then identities. A ``user_history_``
  model's user rows are rebuilt from the grown histories, known users' included (items
  new to the model are not among its history features until a fresh fit).
* **The scorer**: a network of the new shape whose known rows (and every weight that does
  not grow: the MLP, the temperature) are the fitted ones. A new row starts as a fresh fit
  would start it: uniform in ``[-init_scale, init_scale]`` (biases and linear terms at
  zero), which for an entity with side features is its features' embeddings plus a small
  fresh identity embedding. A new user of a model *without* user features is then folded
  in (:func:`~tripletrec.models.foldin.fold_in`, the model's loss, its item side frozen)
  from its positives among the known items, so it starts where the model would place it
  rather than at random; one with no known item keeps the fresh start. New items keep
  the fresh start too: no interaction of theirs has been trained on yet, and the epochs
  that follow move them to where their positives put them (a mean of the trained rows
  would start every new item as an average item, which is as uninformed and less
  diverse).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from tripletrec.data.features import Features
from tripletrec.data.interactions import IdMap, Interactions
from tripletrec.exceptions import DataError, TripletrecError
from tripletrec.models.base import SCORE_CHUNK_USERS
from tripletrec.models.embeddings import FeatureEmbedding
from tripletrec.models.foldin import FoldInSettings, fold_in
from tripletrec.models.interface import Scorer
from tripletrec.models.triplet._features import (
    feature_rows,
    grown_metadata,
    history_matrix,
)

if TYPE_CHECKING:
    from tripletrec.models.triplet.estimator import TripletRecommender


@dataclass
class Growth:
    """What a model becomes with the new positives (see :func:`grow`).

    Attributes
    ----------
    user_map, item_map : IdMap
        The grown maps.
    seen : scipy.sparse.csr_matrix
        ``seen_`` and the new positives, in the grown index space.
    given : scipy.sparse.csr_matrix
        The new positives alone, in the grown index space.
    user_features, item_features : scipy.sparse.csr_matrix or None
        The grown side-feature matrices (None: the model has none on that side).
    item_metadata : pandas.DataFrame or None
    scorer : Scorer
        The grown network, on the CPU, in training mode.
    n_new_users, n_new_items : int
    """

    user_map: IdMap
    item_map: IdMap
    seen: sp.csr_matrix
    given: sp.csr_matrix
    user_features: sp.csr_matrix | None
    item_features: sp.csr_matrix | None
    item_metadata: pd.DataFrame | None
    scorer: Scorer
    n_new_users: int
    n_new_items: int

    def apply(self, model: TripletRecommender) -> None:
        """Give ``model`` the grown maps, seen items, features and metadata (the scorer
        is the trainer's to set, once trained)."""
        model.user_map_, model.item_map_ = self.user_map, self.item_map
        model.seen_ = self.seen
        model.user_features_, model.item_features_ = self.user_features, self.item_features
        model.item_metadata_ = self.item_metadata


def grow(
    model: TripletRecommender,
    data: Interactions | sp.spmatrix,
    *,
    user_features: Features | None,
    item_features: Features | None,
    seed: int,
) -> Growth:
    """The growth of fitted ``model`` by positives ``data`` (the model is not changed).

    ``seed`` seeds the new rows' initialisation and the fold-in.

    Raises
    ------
    DataError
        If ``data`` is empty or of the wrong type, or features are given for a side the
        model was fitted without.
    """
    users, items, metadata, extra = _raw_pairs(model, data)
    n_users, n_items = model.n_users_, model.n_items_
    user_map = _extended(model.user_map_, users, extra[0])
    item_map = _extended(model.item_map_, items, extra[1])
    user_idx, item_idx = user_map.to_index(users), item_map.to_index(items)
    shape = (len(user_map), len(item_map))
    given = sp.csr_matrix((np.ones(len(user_idx), np.float32), (user_idx, item_idx)), shape=shape)
    old = model.seen_
    indptr = np.concatenate([old.indptr, np.full(shape[0] - n_users, old.indptr[-1])])
    seen = sp.csr_matrix((old.data, old.indices, indptr), shape=shape) + given
    for matrix in (given, seen):
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
    seen = seen.tocsr()
    side_features = {
        side: _grown_features(model, side, features, id_map, n_known, seen)
        for side, features, id_map, n_known in (
            ("user", user_features, user_map, n_users),
            ("item", item_features, item_map, n_items),
        )
    }
    generator = torch.Generator().manual_seed(seed)
    scorer = model.build_module(
        shape[0], shape[1], generator,
        user_features=side_features["user"], item_features=side_features["item"],
    )  # fmt: skip
    _copy_known(model.module_, scorer)
    _fold_in_new_users(model, scorer, user_idx, item_idx, n_users, n_items, seed)
    return Growth(
        user_map, item_map, seen, given.tocsr(), side_features["user"],
        side_features["item"], grown_metadata(model.item_metadata_, metadata, item_map),
        scorer.train(), shape[0] - n_users, shape[1] - n_items,
    )  # fmt: skip


def _raw_pairs(
    model: TripletRecommender, data: Interactions | sp.spmatrix
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame | None, tuple]:
    """Raw user and item ids of ``data``'s rows, its item metadata, and the new ids a
    matrix brings (``(None, None)`` for interactions: the unknown ids found in them)."""
    if isinstance(data, Interactions):
        if len(data) == 0:
            raise DataError("fit_partial got no interactions")
        users, items = data.user_map.to_raw(data.users), data.item_map.to_raw(data.items)
        return users, items, data.item_metadata, (None, None)
    if not sp.issparse(data):
        raise DataError(
            f"fit_partial expects Interactions or a scipy sparse matrix, got {type(data).__name__}"
        )
    matrix = sp.coo_matrix(data)
    if matrix.nnz == 0:
        raise DataError("fit_partial got an empty interaction matrix")
    extra = []
    for id_map, n in ((model.user_map_, matrix.shape[0]), (model.item_map_, matrix.shape[1])):
        if not np.array_equal(id_map.ids, np.arange(len(id_map))) or n < len(id_map):
            raise DataError(
                f"a matrix of shape {matrix.shape} names users and items by index, which "
                "fits a model fitted on a matrix of at most that shape; give Interactions "
                "(raw ids) instead"
            )
        extra.append(np.arange(len(id_map), n))
    return matrix.row.astype(np.int64), matrix.col.astype(np.int64), None, tuple(extra)


def _extended(id_map: IdMap, raw: np.ndarray, extra: np.ndarray | None) -> IdMap:
    """``id_map`` with the ids of ``raw`` it lacks after its own (or with ``extra``)."""
    if extra is None:
        extra = pd.unique(raw[id_map.to_index(raw, strict=False) < 0])
    if len(extra) == 0:
        return id_map
    return IdMap(np.concatenate([id_map.ids, np.asarray(extra)]), id_map.name)


def _grown_features(
    model: TripletRecommender,
    side: str,
    features: Features | None,
    id_map: IdMap,
    n_known: int,
    seen: sp.csr_matrix,
) -> sp.csr_matrix | None:
    """The side's feature matrix with rows for the new entities (features, then a new
    identity column each); a ``user_history_`` model's user rows from the grown
    positives ``seen``, every user's."""
    matrix = getattr(model, f"{side}_features_", None)
    encoder = getattr(model, f"{side}_encoder_", None)
    if encoder is None:
        if features is not None:
            raise DataError(
                f"this model was fitted without {side} features; fit_partial cannot add them"
            )
        return None
    if side == "user" and model.user_history_:
        if features is not None:
            raise DataError(
                "this model's user features are the users' histories (user_history); "
                "fit_partial takes no user_features"
            )
        return history_matrix(encoder, seen, len(id_map))
    if features is not None and not isinstance(features, Features):
        raise DataError(
            f"{side}_features must be a tripletrec.data.features.Features, "
            f"got {type(features).__name__}"
        )
    n_new = len(id_map) - n_known
    if n_new == 0:
        return matrix
    if features is None:  # no features given: the new entities have their identity alone
        rows = sp.csr_matrix((n_new, encoder.n_features), dtype=np.float32)
    else:
        rows = feature_rows(encoder, features, id_map, model.feature_weight)[n_known:]
    n_identity = matrix.shape[1] - encoder.n_features
    known = sp.hstack([matrix, sp.csr_matrix((n_known, n_new))])
    new = sp.hstack(
        [rows, sp.csr_matrix((n_new, n_identity)), sp.identity(n_new, np.float32, format="csr")]
    )
    return sp.vstack([known, new], format="csr", dtype=np.float32)


def _copy_known(fitted: Scorer, grown: Scorer) -> None:
    """The fitted weights into ``grown``: whole, or the first rows of tables that grew."""
    fitted_state = fitted.state_dict()
    with torch.no_grad():
        for name, tensor in grown.state_dict().items():
            before = fitted_state[name].detach().to(tensor.device)
            if before.shape == tensor.shape:
                tensor.copy_(before)
            elif before.dim() == tensor.dim() and before.shape[1:] == tensor.shape[1:]:
                tensor[: before.shape[0]].copy_(before)
            else:
                raise TripletrecError(
                    f"cannot grow {name} from {tuple(before.shape)} to {tuple(tensor.shape)}"
                )


def _fold_in_new_users(
    model: TripletRecommender,
    grown: Scorer,
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    n_users: int,
    n_items: int,
    seed: int,
) -> None:
    """Rows of new users (a model without user features) from their known-item positives."""
    parts = grown.user_parts()
    if any(isinstance(part, FeatureEmbedding) for part in parts):
        return  # their features place them
    pick = (user_idx >= n_users) & (item_idx < n_items)
    if not pick.any():
        return
    order = np.argsort(user_idx[pick], kind="stable")
    rows, items = user_idx[pick][order] - n_users, item_idx[pick][order]
    folded, rows = np.unique(rows, return_inverse=True)  # new users with a known item
    bounds = np.searchsorted(rows, np.arange(0, len(folded) + SCORE_CHUNK_USERS, SCORE_CHUNK_USERS))
    loss, settings = model._loss(), FoldInSettings(random_state=seed)
    for start, lo, hi in zip(range(0, len(folded), SCORE_CHUNK_USERS), bounds[:-1], bounds[1:]):
        n_block = min(SCORE_CHUNK_USERS, len(folded) - start)
        vectors = fold_in(
            model.module_, rows[lo:hi] - start, items[lo:hi], n_block, loss=loss,
            init_scale=model.init_scale, settings=settings,
        ).cpu()  # fmt: skip
        targets = torch.as_tensor(n_users + folded[start : start + n_block])
        offset = 0
        with torch.no_grad():
            for part in parts:  # a user vector is its parts, concatenated
                dim = part.embedding_dim
                part.weight[targets] = vectors[:, offset : offset + dim].to(part.weight.dtype)
                offset += dim
