"""The tiny data set of the contract tests, whose right answers are known."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tripletrec.data.features import Features
from tripletrec.data.interactions import IdMap, Interactions

#: Users (and items) per block of :func:`block_data`. Unequal sizes make item popularity
#: differ between blocks, so that popularity is not the same as knowing the blocks.
BLOCK_SIZES = (10, 8, 6)


@dataclass(frozen=True)
class BlockData:
    """A block-diagonal user x item data set with one held-out item per user.

    User ``u`` and item ``u`` belong to the same block (:attr:`blocks`); every user likes
    every item of their block except item ``u`` (implicit's checkerboard, in blocks of
    unequal sizes). A user's best unseen item is therefore item ``u``: the only unseen item
    that users with the same tastes liked. Raw ids are not the indices, and item ids do not
    sort in index order, so that a confusion of the two shows.

    Attributes
    ----------
    interactions : Interactions
        Integer raw ids.
    string_interactions : Interactions
        The same rows and indices, with string ids.
    blocks : numpy.ndarray of int64
        The block of user (and item) index ``u``.
    held_out : numpy.ndarray
        Raw id of each user's held-out item, in user index order.
    most_popular_unseen : numpy.ndarray
        Raw id of each user's most liked unseen item (ties by index): what ranking by
        popularity recommends first.
    """

    interactions: Interactions
    string_interactions: Interactions
    blocks: np.ndarray
    held_out: np.ndarray
    most_popular_unseen: np.ndarray

    @property
    def user_ids(self) -> np.ndarray:
        return self.interactions.user_map.ids

    @property
    def item_ids(self) -> np.ndarray:
        return self.interactions.item_map.ids

    def histories(self, data: Interactions | None = None) -> list[list]:
        """Each user's training items as raw ids of ``data`` (default: integer ids)."""
        data = self.interactions if data is None else data
        seen = data.to_csr()
        ids = data.item_map.ids
        return [ids[seen.indices[a:b]].tolist() for a, b in zip(seen.indptr, seen.indptr[1:])]

    def block_features(self, ids: Any) -> Features:
        """A categorical ``block`` feature for raw ids ``ids`` given in index order."""
        table = pd.DataFrame({"block": [f"block-{b}" for b in self.blocks]}, index=list(ids))
        return Features(table, categorical=["block"])


@cache
def block_data() -> BlockData:
    """The :class:`BlockData` of :data:`BLOCK_SIZES` (built once; do not modify it)."""
    blocks = np.repeat(np.arange(len(BLOCK_SIZES)), BLOCK_SIZES)
    n = len(blocks)
    users, items = np.nonzero((blocks[:, None] == blocks[None, :]) & ~np.eye(n, dtype=bool))

    def interactions(user_ids: list, item_ids: list) -> Interactions:
        frame = pd.DataFrame(
            {"user_id": np.take(user_ids, users), "item_id": np.take(item_ids, items)}
        )
        return Interactions.from_dataframe(
            frame, user_map=IdMap(user_ids, "user"), item_map=IdMap(item_ids, "item")
        )

    item_ids = [2000 - 10 * i for i in range(n)]
    data = interactions([100 + u for u in range(n)], item_ids)
    strings = interactions([f"user-{u:02d}" for u in range(n)], [f"item-{i:02d}" for i in range(n)])
    seen = data.to_csr().toarray() > 0
    counts = np.where(seen, -1, seen.sum(axis=0))  # argmax: lowest index among ties
    return BlockData(
        data, strings, blocks, np.asarray(item_ids), np.asarray(item_ids)[counts.argmax(axis=1)]
    )


def fitted_ids(data: Interactions | sp.spmatrix) -> tuple[np.ndarray, np.ndarray]:
    """The raw user and item ids a model fitted on ``data`` speaks (indices for a matrix)."""
    if isinstance(data, Interactions):
        return data.user_map.ids, data.item_map.ids
    return np.arange(data.shape[0]), np.arange(data.shape[1])
