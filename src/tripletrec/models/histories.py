"""New users' histories: ragged lists of raw item ids, checked and turned into indices.

What every estimator's ``recommend_from_history`` starts from, whatever it then does with
the histories (fold-in for factor models, a sparse row for item-item models).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tripletrec.data.interactions import IdMap
from tripletrec.exceptions import DataError


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
