"""A saved model loaded for serving, with everything precomputed that requests need.

Where every user's scores fit in memory (the score cache), the answers to the commonest
requests are precomputed too: the best :data:`TOP_K` items of every known user and of the
popularity fallback. A request for at most that many items and without exclusions is then a
slice of these lists; anything else is scored live. Both select with the one tie rule of
:mod:`tripletrec.evaluation.topk` (higher score, then lower item index), a total order, so
the first ``k`` of the best :data:`TOP_K` are exactly the best ``k``: the two paths return
the same items with the same scores. A model directory with an approximate index holds
these lists too (:mod:`tripletrec.serving.answers`), memory-mapped.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tripletrec.evaluation.topk import top_k_masked
from tripletrec.exceptions import TripletrecError, UnknownIdError
from tripletrec.serving.answers import WIDTH as ANSWERS_WIDTH
from tripletrec.serving.answers import load_answers
from tripletrec.serving.search import TextSearch

#: Largest k any endpoint accepts.
MAX_K = 1000
#: k when a request does not say.
DEFAULT_K = 10
#: Answers precomputed per known user (with the score cache, or by ``tripletrec index``):
#: requests up to this k and without exclusions are served from them. Memory: users x
#: min(TOP_K, items) x 6 bytes (8 from an index's file, shared by every worker).
TOP_K = ANSWERS_WIDTH
#: Longest history POST /recommend accepts.
MAX_HISTORY = 2000
#: Most matches GET /items and GET /users return; the number when a request does not say.
MAX_MATCHES, DEFAULT_MATCHES = 100, 10
#: Score matrices up to this many entries (users x items) are precomputed at load time.
CACHE_ENTRIES = 20_000_000
_INT_TEXT = re.compile(r"-?\d{1,18}")
#: Users per block when precomputing the top lists (bounds the temporary arrays).
_TOP_CHUNK = 4096


class ServiceError(TripletrecError):
    """A request the service refuses; carries its HTTP status (and response headers)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers


@dataclass
class LoadedModel:
    """A model and everything precomputed for serving it; never mutated after loading."""

    model: Any
    path: Path
    manifest: dict
    item_ids: list
    item_names: list | None
    popularity: np.ndarray
    popular_order: np.ndarray
    scores: np.ndarray | None  # users x items, seen items at -inf; small catalogues only
    # retrieval.VectorRetriever or blend_retrieval.BlendRetriever when the directory
    # holds an approximate index
    index: Any | None
    loaded_at: float = field(default_factory=time.time)
    file_id: tuple = ()
    # The best TOP_K items of every user (-1 / -inf padding), best first: from the score
    # cache, or as the approximate index's folder holds them (serving.answers).
    top_items: np.ndarray | None = None
    top_scores: np.ndarray | None = None

    def __post_init__(self) -> None:
        # Raw id -> index through a hash table, as IdMap.to_index does, without building
        # an array and an Index per request.
        self._user_lookup = pd.Index(self.model.user_map_.ids)
        top = self.popular_order[:TOP_K]
        self._popular_top = self.rows(top, self.popularity[top])

    @classmethod
    def load(cls, path: str | Path, *, cache_entries: int = CACHE_ENTRIES) -> LoadedModel:
        from tripletrec.persistence import MODEL_FILE, load_model, read_manifest
        from tripletrec.serving.retrieval import INDEX_DIR, has_index, load_retriever

        path = Path(path)
        stat = (path / MODEL_FILE).stat() if (path / MODEL_FILE).exists() else None
        manifest = read_manifest(path)
        model = load_model(path)
        names = model.item_names(model.item_map_.ids)
        popularity = np.asarray(model.seen_.sum(axis=0)).ravel().astype(np.float64)
        # Stable sort of the negated counts: equally popular items by index, deterministic.
        popular_order = np.argsort(-popularity, kind="stable")
        scores = index = answers = None
        if has_index(path):
            try:
                index = load_retriever(path, model, manifest["weights_sha256"])
                described = index.index.meta.get("answers")
                answers = load_answers(path / INDEX_DIR, model.n_users_, described)
            except TripletrecError:
                index = answers = None  # stale or unusable: exact scoring still works
        if index is None and model.n_users_ * model.n_items_ <= cache_entries:
            # A small catalogue: every user's scores fit in memory, so a request is a row
            # lookup and a partial sort instead of a forward pass and sparse masking.
            scores = model.score_indices(np.arange(model.n_users_)).astype(np.float32)
            rows, cols = model.seen_.nonzero()
            scores[rows, cols] = -np.inf
        if answers is not None:  # memory-mapped: one copy for every worker
            top_items, top_scores = answers
        else:
            top_items, top_scores = (None, None) if scores is None else _top_lists(scores, TOP_K)
        return cls(
            model=model,
            path=path,
            manifest=manifest,
            item_ids=model.item_map_.to_list(),
            item_names=None if names is None else [_plain_name(n) for n in names],
            popularity=popularity,
            popular_order=popular_order,
            scores=scores,
            index=index,
            file_id=() if stat is None else (stat.st_ino, stat.st_mtime_ns),
            top_items=top_items,
            top_scores=top_scores,
        )

    # ------------------------------------------------------------------ id parsing
    def parse_id(self, text: Any, what: str, ids_are_int: bool) -> Any:
        """A raw id from a query string or JSON value, as the model's id type."""
        if ids_are_int:
            if isinstance(text, bool):
                raise ServiceError(422, f"{what} must be an integer id, got {text!r}")
            if isinstance(text, int):
                return text
            if isinstance(text, str) and _INT_TEXT.fullmatch(text.strip()):
                return int(text.strip())
            raise ServiceError(422, f"{what} must be an integer id for this model, got {text!r}")
        return str(text)

    def lenient_id(self, value: Any) -> Any:
        """A history item as the model's id type; one that cannot be is left to be ignored."""
        try:
            return self.parse_id(value, "history item", self.item_ids_int)
        except ServiceError:
            return str(value)

    def parse_history(self, history: Sequence[Any]) -> tuple[list, list]:
        """``history`` as the model's id type, and the values in it the model does not know
        (each once, in order of appearance: listed back as ``"unknown_items"``)."""
        parsed = [self.lenient_id(v) for v in history]
        known = self.model.item_map_.to_index(parsed, strict=False) >= 0
        unknown = list(dict.fromkeys(v for v, ok in zip(history, known.tolist()) if not ok))
        return parsed, unknown

    def item_index(self, raw: Any) -> int:
        raw_id = self.parse_id(raw, "item", self.item_ids_int)
        try:
            return int(self.model.item_map_.to_index([raw_id])[0])
        except UnknownIdError as exc:
            raise ServiceError(404, f"unknown item {raw_id!r}") from exc

    def user_index(self, raw_id: Any) -> int:
        """The index of a known user, -1 for an unknown one."""
        try:
            position = self._user_lookup.get_loc(raw_id)
        except (KeyError, TypeError):
            return -1
        # A unique index gives a position; anything else (a slice, a mask) is no one user.
        return int(position) if isinstance(position, (int, np.integer)) else -1

    @cached_property
    def item_ids_int(self) -> bool:
        return bool(np.issubdtype(self.model.item_map_.ids.dtype, np.integer))

    @cached_property
    def user_ids_int(self) -> bool:
        return bool(np.issubdtype(self.model.user_map_.ids.dtype, np.integer))

    @cached_property
    def item_search(self) -> TextSearch:
        """Items by id or name, most popular first (``GET /items``); built on first use."""
        return TextSearch(self.item_ids, self.item_names, self.popular_order)

    @cached_property
    def user_search(self) -> TextSearch:
        """Known users by id, in index order (``GET /users``); built on first use."""
        return TextSearch(self.model.user_map_.to_list(), None)

    def exclude_indices(self, values: Sequence[Any]) -> np.ndarray:
        """Indices of the known items among ``values`` (unknown ones cannot be returned)."""
        parsed = [self.parse_id(v, "exclude item", self.item_ids_int) for v in values]
        if not parsed:
            return np.empty(0, np.int64)
        idx = self.model.item_map_.to_index(parsed, strict=False)
        return idx[idx >= 0]

    # ------------------------------------------------------------------ answers
    def rows(self, idx: np.ndarray, scores: np.ndarray) -> list[dict]:
        out = []
        for rank, (i, s) in enumerate(zip(idx.tolist(), scores.tolist()), start=1):
            if i < 0 or not math.isfinite(s):
                break  # padding: fewer candidates than k
            row = {"rank": rank, "item_id": self.item_ids[i], "score": s}
            if self.item_names is not None:
                row["name"] = self.item_names[i]
            out.append(row)
        return out

    def labels(self, idx: np.ndarray) -> list[dict]:
        """``{"item_id", "name"}`` of each item index (the name where the model has one)."""
        if self.item_names is None:
            return [{"item_id": self.item_ids[i]} for i in idx.tolist()]
        return [{"item_id": self.item_ids[i], "name": self.item_names[i]} for i in idx.tolist()]

    def recommend_user(self, user_idx: int, k: int, exclude: np.ndarray) -> list[dict]:
        top = self.top_items
        if (
            top is not None
            and not len(exclude)
            and (k <= top.shape[1] or top.shape[1] == self.model.n_items_)
        ):
            # Precomputed: the first k of the user's best TOP_K (all items when fewer).
            return self.rows(top[user_idx, :k], self.top_scores[user_idx, :k])
        if self.scores is not None:
            row = self.scores[user_idx]
            if len(exclude):
                row = row.copy()
                row[exclude] = -np.inf
            # The cached row holds -inf at seen items: the masked top-k, with the library's
            # one tie rule (higher score, then lower item index).
            idx, scores = top_k_masked(row[None, :], k)
            return self.rows(idx[0], scores[0])
        if self.index is not None:
            seen = self.model.seen_[[user_idx]]
            if len(exclude):
                seen = seen.tolil()
                seen[0, exclude] = 1
            idx, scores = self.index.search(np.array([user_idx]), k, exclude=seen)
            return self.rows(idx[0], scores[0])
        raw_user = self.model.user_map_.ids[user_idx]
        raw_exclude = None if not len(exclude) else self.model.item_map_.ids[exclude]
        items, scores = self.model.recommend([raw_user], k=k, exclude=raw_exclude)
        idx = self.model.item_map_.to_index(items[0], strict=False)
        return self.rows(idx, scores[0])

    def popular(self, k: int, exclude: np.ndarray) -> list[dict]:
        if not len(exclude) and (k <= TOP_K or len(self.popular_order) <= TOP_K):
            # Copies: a caller may modify its answer, the precomputed rows stay as loaded.
            return [row.copy() for row in self._popular_top[:k]]
        order = self.popular_order
        if len(exclude):
            order = order[~np.isin(order, exclude)]
        top = order[:k]
        return self.rows(top, self.popularity[top])


def _top_lists(scores: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``width`` items of every row of the masked score cache, block by block."""
    n_users, n_items = scores.shape
    width = min(width, n_items)
    # Item indices and -1 padding: int16 holds them for catalogues under 32,768 items.
    dtype = np.int16 if n_items < np.iinfo(np.int16).max else np.int32
    items = np.empty((n_users, width), dtype)
    values = np.empty((n_users, width), scores.dtype)
    for start in range(0, n_users, _TOP_CHUNK):
        block = slice(start, start + _TOP_CHUNK)
        items[block], values[block] = top_k_masked(scores[block], width)
    return items, values


def _plain_name(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value
