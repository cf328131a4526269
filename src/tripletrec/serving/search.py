"""Finding items and users by what a person types: the explorer page's type-ahead.

A :class:`TextSearch` holds lower-cased labels (ids, and names where there are any) in a
fixed order of preference, popularity for items, and answers a query with the positions
of the labels containing it: exact matches first, then those starting with it, then the
rest, each group in that order. The labels are Arrow strings, so a query is a few
vectorised passes over the catalogue, not a Python loop over it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["TextSearch"]


def _labels(values: Sequence[Any], order: np.ndarray) -> pd.Series:
    # Missing names (None, NaN) match nothing rather than the text "none" or "nan".
    texts = pd.Series(np.asarray(values, dtype=object)[order], dtype=object)
    return texts.where(texts.notna(), "").astype(str).astype("string[pyarrow]").str.lower()


class TextSearch:
    """Case-insensitive substring search over ids and optional names.

    Parameters
    ----------
    ids : sequence
        Raw ids, by index.
    names : sequence or None
        A name per index (None or NaN where unknown), or None when there are none.
    order : np.ndarray, optional
        Indices in order of preference (most popular first); default: index order.
    """

    def __init__(
        self, ids: Sequence[Any], names: Sequence[Any] | None, order: np.ndarray | None = None
    ) -> None:
        self.order = np.arange(len(ids)) if order is None else np.asarray(order, np.int64)
        self._fields = [_labels(ids, self.order)]
        if names is not None:
            self._fields.append(_labels(names, self.order))

    def search(self, query: str, limit: int) -> tuple[np.ndarray, int]:
        """The indices of the best ``limit`` matches of ``query``, and how many match.

        An empty (or blank) query matches everything, in the order of preference.
        """
        text = query.strip().lower()
        if not text:
            return self.order[:limit], len(self.order)
        contains = np.zeros(len(self.order), bool)
        rank = np.full(len(self.order), 2, np.int8)  # 0 exact, 1 prefix, 2 inside
        for field in self._fields:
            contains |= field.str.contains(text, regex=False).to_numpy(bool, na_value=False)
            prefix = field.str.startswith(text).to_numpy(bool, na_value=False)
            exact = (field == text).to_numpy(bool, na_value=False)
            rank = np.minimum(rank, np.where(exact, 0, np.where(prefix, 1, 2)))
        matched = np.flatnonzero(contains)
        best = matched[np.argsort(rank[matched], kind="stable")[:limit]]
        return self.order[best], len(matched)
