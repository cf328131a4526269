"""New users' histories: ragged lists of raw item ids, checked and turned into indices.

What every estimator's ``recommend_from_history`` starts from, whatever it then does with
the histories (fold-in for factor models, a sparse row for item-item models).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tripletrec.data.interactions import IdMap
from tripletrec.exceptions import DataError

if TYPE_CHECKING:
    from tripletrec.data.features import Features
    from tripletrec.models.base import RecommenderBase


def history_indices(
    histories: Any, item_map: IdMap, *, allow_empty: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Ragged raw-id histories as sorted (row, item index) arrays, unknown ids dropped.

    A history with no known item raises :class:`DataError` unless ``allow_empty`` (users
    who also have side features)."""
    if isinstance(histories, (str, bytes)) or not isinstance(histories, Sequence):
        raise DataError("histories must be a list of item-id lists, one per new user")
    if len(histories) == 0:
        raise DataError("histories is empty: give at least one history")
    lengths = []
    for position, history in enumerate(histories):
        if isinstance(history, (str, bytes)) or not isinstance(history, Sequence | np.ndarray):
            raise DataError(f"history {position} is not a list of item ids")
        lengths.append(len(history))
    flat = [item for history in histories for item in history]
    rows = np.repeat(np.arange(len(histories), dtype=np.int64), lengths)
    items = item_map.to_index(flat, strict=False) if flat else np.empty(0, np.int64)
    known = items >= 0
    counts = np.bincount(rows[known], minlength=len(histories))
    if not allow_empty and (counts == 0).any():
        empty = np.flatnonzero(counts == 0)
        shown = ", ".join(str(i) for i in empty[:5])
        raise DataError(
            f"history {shown}{' ...' if len(empty) > 5 else ''} has no item id the model "
            "knows (empty, or only unknown ids); cannot recommend from it"
        )
    return rows[known], items[known]


def history_blocks(
    model: RecommenderBase,
    histories: Sequence[Sequence[Any]] | Mapping[Any, Sequence[Any]],
    random_state: int,
    user_features: Features | None,
    block_users: int,
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Fold in ``histories`` in blocks of users: ``(first row, rows, items, scores)``,
    rows relative to the block. Bad histories raise here, before any block."""
    offsets = None
    if isinstance(histories, Mapping):
        user_ids, histories = list(histories.keys()), list(histories.values())
        if user_features is not None:
            offsets = model._user_feature_vectors(user_features, user_ids)
    elif user_features is not None:
        raise DataError(
            "with user_features, give histories as a mapping {new user id: [item ids]} "
            "so that each history is matched to its features by id"
        )
    rows, items = history_indices(histories, model.item_map_, allow_empty=offsets is not None)
    n_rows = len(histories)
    bounds = np.searchsorted(rows, np.arange(0, n_rows + block_users, block_users))

    def blocks() -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        for start, lo, hi in zip(range(0, n_rows, block_users), bounds[:-1], bounds[1:]):
            n_block = min(block_users, n_rows - start)
            block_rows, block_items = rows[lo:hi] - start, items[lo:hi]
            block_offsets = None if offsets is None else offsets[start : start + n_block]
            scores = model._score_histories(
                block_rows, block_items, n_block, random_state, block_offsets
            )
            yield start, block_rows, block_items, scores

    return blocks()
