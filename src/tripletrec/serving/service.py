"""The recommendation service without HTTP: one method per endpoint.

:class:`Service` holds the current :class:`~tripletrec.serving.loaded.LoadedModel` and
answers each request with a JSON-ready dict; :mod:`tripletrec.serving.app` only registers
these methods as FastAPI routes. Each method reads ``self.current`` once, so a request
that overlaps a reload is answered wholly by the model it started with.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tripletrec._system import memory_usage, release_freed_memory
from tripletrec.exceptions import TripletrecError
from tripletrec.serving.loaded import CACHE_ENTRIES, MAX_HISTORY, LoadedModel, ServiceError
from tripletrec.serving.security import AdminToken, ModelRoot

#: Seconds after a reload when the heap is handed back again: by then the requests that
#: still held the old model have ended and freed it.
TRIM_AGAIN_SECONDS = 10.0


class Service:
    """The state of a running service and its answers.

    Parameters
    ----------
    model_dir : str or Path
        The model directory served first.
    cache_entries : int
        Precompute all user scores when users x items is at most this (and no index).
    token : str, optional
        Bearer token of the admin endpoints (``POST /reload``); None disables them.
    model_root : str or Path, optional
        ``POST /reload`` loads only directories under this one; default: the parent of
        ``model_dir``.

    Raises
    ------
    ModelFileError
        If ``model_dir`` cannot be loaded: the service does not start without a model.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        cache_entries: int = CACHE_ENTRIES,
        token: str | None = None,
        model_root: str | Path | None = None,
    ) -> None:
        self.cache_entries = cache_entries
        self.current = LoadedModel.load(model_dir, cache_entries=cache_entries)
        self.admin = AdminToken(token)
        self.root = ModelRoot(
            Path(model_dir).resolve().parent if model_root is None else model_root
        )
        self._reload_lock = threading.Lock()

    # ------------------------------------------------------------------ read endpoints
    def health(self) -> dict:
        """``GET /health``: the model served and this worker's memory.

        ``pid``, ``rss_bytes``, ``pss_bytes`` and ``shared_bytes`` are this worker's (see
        :func:`tripletrec._system.memory_usage`; the sizes are None off Linux). Each worker
        of ``--workers N`` answers for itself; the memory-mapped weights are in every
        worker's RSS but counted once, split among them, in their PSS.
        """
        current = self.current
        body = {"status": "ok", "model_dir": str(current.path), "loaded_at": current.loaded_at}
        return body | memory_usage()

    def model_info(self) -> dict:
        """``GET /model``: metadata and training metrics of the current model."""
        current = self.current
        manifest = current.manifest
        if current.index is not None:
            retrieval = "ann-index"
        else:
            retrieval = "cached-scores" if current.scores is not None else "exact"
        return {
            "model_dir": str(current.path),
            "estimator": manifest["estimator"],
            "params": manifest["params"],
            "n_users": manifest["n_users"],
            "n_items": manifest["n_items"],
            "metrics": manifest.get("metrics", {}),
            "library_version": manifest.get("library_version"),
            "weights_sha256": manifest["weights_sha256"],
            "retrieval": retrieval,
            "loaded_at": current.loaded_at,
        }

    def recommend(self, user: str, k: int, exclude: Sequence[str] = ()) -> dict:
        """``GET /recommend``: top-k of a known user; an unknown one gets popular items.

        ``exclude`` holds query values, each a single id or comma-separated ids.
        """
        current = self.current  # read once: a reload mid-request does not affect it
        values = [v for text in exclude for v in text.split(",") if v.strip()]
        if len(values) > MAX_HISTORY:
            raise ServiceError(422, f"exclude: at most {MAX_HISTORY} items")
        excluded = current.exclude_indices(values)
        raw_user = current.parse_id(user, "user", current.user_ids_int)
        user_idx = current.user_index(raw_user)
        if user_idx < 0:
            body = {"user": raw_user, "k": k, "fallback": "popularity"}
            return body | {"items": current.popular(k, excluded)}
        items = current.recommend_user(user_idx, k, excluded)
        return {"user": raw_user, "k": k, "fallback": None, "items": items}

    def recommend_history(
        self,
        history: Sequence[Any],
        k: int = 10,
        exclude: Sequence[Any] = (),
        filter_history: bool = True,
    ) -> dict:
        """``POST /recommend``: top-k for a new user folded in from ``history``.

        History items the model does not know are ignored and listed under
        ``"unknown_items"`` (each once, in order of appearance); with no known item at all
        the request is refused (422).
        """
        current = self.current
        parsed, unknown = current.parse_history(history)
        excluded = current.exclude_indices(exclude)
        raw_exclude = current.model.item_map_.ids[excluded] if len(excluded) else None
        # The whole history, unknown ids included: the model ignores them itself (and
        # raises its own clear error when none is known).
        items, scores = current.model.recommend_from_history(
            [parsed], k=k, filter_history=filter_history, exclude=raw_exclude
        )
        idx = current.model.item_map_.to_index(items[0], strict=False)
        body = {"user": None, "k": k, "fallback": None, "unknown_items": unknown}
        return body | {"items": current.rows(idx, scores[0])}

    def similar(self, item: str, k: int) -> dict:
        """``GET /similar``: the items most similar to ``item``; an unknown one is a 404."""
        current = self.current
        item_idx = current.item_index(item)
        raw = current.model.item_map_.ids[item_idx]
        items, scores = current.model.similar_items([raw], k=k)
        idx = current.model.item_map_.to_index(items[0], strict=False)
        return {"item": current.item_ids[item_idx], "k": k, "items": current.rows(idx, scores[0])}

    def explain(self, user: str, item: str, n: int) -> dict:
        """``GET /explain``: the training items of a known user that ``item``'s score
        comes from (see :mod:`tripletrec.models.explain`); an unknown user or item is a 404,
        a model that cannot explain its scores a 422."""
        current = self.current
        raw_user = current.parse_id(user, "user", current.user_ids_int)
        if current.user_index(raw_user) < 0:
            raise ServiceError(404, f"unknown user {raw_user!r}: no history to explain by")
        raw_item = current.model.item_map_.ids[current.item_index(item)]
        return {"user": raw_user} | current.model.explain(raw_user, raw_item, n=n).to_dict()

    def explain_history(self, history: Sequence[Any], item: Any, n: int) -> dict:
        """``POST /explain``: as ``GET /explain`` for a new user's history; the history's
        unknown items are ignored and listed under ``"unknown_items"``, as by
        ``POST /recommend``."""
        current = self.current
        parsed, unknown = current.parse_history(history)
        raw_item = current.model.item_map_.ids[current.item_index(item)]
        explanation = current.model.explain(parsed, raw_item, n=n)
        return {"user": None, "unknown_items": unknown} | explanation.to_dict()

    def items(self, query: str = "", limit: int = 10) -> dict:
        """``GET /items``: items whose id or name contains ``query`` (any case), exact
        matches first, then prefixes, then the rest, each by popularity; an empty query
        gives the most popular items. ``"matches"`` counts all matching items."""
        current = self.current
        idx, matches = current.item_search.search(query, limit)
        rows = current.labels(idx)
        for row, count in zip(rows, current.popularity[idx].tolist()):
            row["popularity"] = int(count)
        return {"query": query, "limit": limit, "matches": matches, "items": rows}

    def users(self, query: str = "", limit: int = 10) -> dict:
        """``GET /users``: known users whose id contains ``query``, exact and prefix
        matches first; an empty query gives the first users."""
        current = self.current
        idx, matches = current.user_search.search(query, limit)
        counts = np.diff(current.model.seen_.indptr)[idx].tolist()
        users = current.model.user_map_.ids[idx].tolist()
        rows = [{"user": u, "n_items": n} for u, n in zip(users, counts)]
        return {"query": query, "limit": limit, "matches": matches, "users": rows}

    def history(self, user: str, limit: int = MAX_HISTORY) -> dict:
        """``GET /history``: a known user's training items (the items that
        ``GET /recommend`` filters out), most popular first; an unknown user is a 404."""
        current = self.current
        raw_user = current.parse_id(user, "user", current.user_ids_int)
        user_idx = current.user_index(raw_user)
        if user_idx < 0:
            raise ServiceError(404, f"unknown user {raw_user!r}: no training history")
        seen = current.model.seen_
        idx = seen.indices[seen.indptr[user_idx] : seen.indptr[user_idx + 1]]
        # Most popular first, ties by item index: the same order as GET /items.
        idx = idx[np.lexsort((idx, -current.popularity[idx]))]
        body = {"user": raw_user, "n_items": len(idx), "limit": limit}
        return body | {"items": current.labels(idx[:limit])}

    # ------------------------------------------------------------------ admin endpoints
    def authorize(self, authorization: str | None) -> None:
        """Refuse an admin request without the right bearer token (401 / 403)."""
        self.admin.check(authorization)

    def reload(self, path: str | Path | None = None) -> dict:
        """``POST /reload``: load ``path`` (default: the current directory) fully, then
        swap it in; requests keep being answered by the old model meanwhile.

        Raises
        ------
        ServiceError
            403 when ``path`` is outside the model root.
        ModelFileError
            If the directory cannot be loaded; the old model keeps serving.
        """
        target = self.current.path if path is None else self.root.check(path)
        fresh = self._swap(target)
        return {"status": "reloaded", "model_dir": str(fresh.path), "loaded_at": fresh.loaded_at}

    def reload_if_replaced(self) -> bool:
        """Reload when the current directory's ``model.json`` was replaced (new inode or
        mtime); a broken new directory keeps the old model serving. True if reloaded."""
        from tripletrec.persistence import MODEL_FILE

        current = self.current
        try:
            stat = (current.path / MODEL_FILE).stat()
        except OSError:
            return False  # mid-replacement: look again next time
        if (stat.st_ino, stat.st_mtime_ns) == current.file_id:
            return False
        with contextlib.suppress(TripletrecError):
            self._swap(current.path)
            return True
        return False

    def _swap(self, path: Path) -> LoadedModel:
        with self._reload_lock:  # one reload at a time; readers never wait
            fresh = LoadedModel.load(path, cache_entries=self.cache_entries)
            self.current = fresh  # a single reference assignment: atomic for readers
            # The old model is freed now, or when the last request holding it ends: the
            # heap is handed back now and once more after those requests. Without this,
            # each reload leaves the freed model's heap to the process.
            release_freed_memory()
            later = threading.Timer(TRIM_AGAIN_SECONDS, release_freed_memory)
            later.daemon = True
            later.start()
            return fresh

    def watch(self, every: float, stop: threading.Event) -> None:
        """Call :meth:`reload_if_replaced` every ``every`` seconds until ``stop`` is set."""
        while not stop.wait(every):
            self.reload_if_replaced()
