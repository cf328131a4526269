"""The recommendation service: a FastAPI app over a saved model directory.

Endpoints (OpenAPI schema and a try-it page at ``/docs``):

``GET /recommend?user=ID&k=10&exclude=ID,ID``
    Top-k for a known user, training items filtered. An unknown user gets the most popular
    items and ``"fallback": "popularity"``.
``POST /recommend``
    ``{"history": [item ids], "k": 10, "exclude": [...]}``: top-k for a user the model has
    never seen, folded in from the history (see :mod:`tripletrec.models.foldin`).
``GET /similar?item=ID&k=10``
    Items most similar to an item; an unknown item is a 404.
``GET /health``, ``GET /model``
    Liveness; model metadata and training metrics.
``POST /reload``
    ``{"path": optional new model directory}``: load the model fully, then swap it in.

Every bad input is a 4xx with ``{"detail": message}``; requests in flight during a reload
finish on the model they started with, because each request reads the current model
reference once. Shutdown is uvicorn's: on SIGINT / SIGTERM it stops accepting connections
and lets requests in flight finish (``timeout_graceful_shutdown`` bounds the wait).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import threading
import time
from collections.abc import Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np

from tripletrec.exceptions import TripletrecError, UnknownIdError

try:
    from fastapi import Body, FastAPI, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, Field
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ImportError as exc:  # an optional dependency
    raise TripletrecError(
        "the service needs FastAPI and uvicorn: pip install 'tripletrec[serve]'"
    ) from exc

#: Largest k any endpoint accepts.
MAX_K = 1000
#: Longest history POST /recommend accepts.
MAX_HISTORY = 2000
#: Largest request body, bytes.
MAX_BODY_BYTES = 1 << 20
#: Score matrices up to this many entries (users x items) are precomputed at load time.
CACHE_ENTRIES = 20_000_000
_INT_TEXT = re.compile(r"-?\d{1,18}")


class ServiceError(TripletrecError):
    """A request the service refuses; carries its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------- the loaded model
@dataclass
class LoadedModel:
    """A model and everything precomputed for serving it; never mutated after loading."""

    model: Any
    path: Path
    manifest: dict
    int_ids: bool
    item_ids: list
    item_names: list | None
    popularity: np.ndarray
    popular_order: np.ndarray
    scores: np.ndarray | None  # users x items, seen items at -inf; small catalogues only
    index: Any | None  # retrieval.ANNIndex when the directory holds one
    user_vectors: np.ndarray | None
    loaded_at: float = field(default_factory=time.time)
    file_id: tuple = ()

    @classmethod
    def load(cls, path: str | Path, *, cache_entries: int = CACHE_ENTRIES) -> LoadedModel:
        from tripletrec.persistence import MODEL_FILE, load_model, read_manifest
        from tripletrec.serving.retrieval import ANNIndex, has_index, model_vectors

        path = Path(path)
        stat = (path / MODEL_FILE).stat() if (path / MODEL_FILE).exists() else None
        manifest = read_manifest(path)
        model = load_model(path)
        int_ids = np.issubdtype(model.item_map_.ids.dtype, np.integer)
        names = model.item_names(model.item_map_.ids)
        popularity = np.asarray(model.seen_.sum(axis=0)).ravel().astype(np.float64)
        # Stable sort of the negated counts: equally popular items by index, deterministic.
        popular_order = np.argsort(-popularity, kind="stable")
        scores = index = user_vectors = None
        if has_index(path):
            try:
                user_vectors, items = model_vectors(model)
                index = ANNIndex.load(path, items, manifest["weights_sha256"])
            except TripletrecError:
                index = user_vectors = None  # stale or unusable: exact scoring still works
        if index is None and model.n_users_ * model.n_items_ <= cache_entries:
            # A small catalogue: every user's scores fit in memory, so a request is a row
            # lookup and a partial sort instead of a forward pass and sparse masking.
            scores = model.score_indices(np.arange(model.n_users_)).astype(np.float32)
            rows, cols = model.seen_.nonzero()
            scores[rows, cols] = -np.inf
        return cls(
            model=model,
            path=path,
            manifest=manifest,
            int_ids=bool(int_ids) and np.issubdtype(model.user_map_.ids.dtype, np.integer),
            item_ids=model.item_map_.to_list(),
            item_names=None if names is None else [_plain_name(n) for n in names],
            popularity=popularity,
            popular_order=popular_order,
            scores=scores,
            index=index,
            user_vectors=user_vectors,
            file_id=() if stat is None else (stat.st_ino, stat.st_mtime_ns),
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

    def item_index(self, raw: Any) -> int:
        raw_id = self.parse_id(raw, "item", self.item_ids_int)
        try:
            return int(self.model.item_map_.to_index([raw_id])[0])
        except UnknownIdError as exc:
            raise ServiceError(404, f"unknown item {raw_id!r}") from exc

    @property
    def item_ids_int(self) -> bool:
        return bool(np.issubdtype(self.model.item_map_.ids.dtype, np.integer))

    @property
    def user_ids_int(self) -> bool:
        return bool(np.issubdtype(self.model.user_map_.ids.dtype, np.integer))

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

    def recommend_user(self, user_idx: int, k: int, exclude: np.ndarray) -> list[dict]:
        if self.scores is not None:
            row = self.scores[user_idx]
            if len(exclude):
                row = row.copy()
                row[exclude] = -np.inf
            return self.rows(*_top_row(row, k))
        if self.index is not None:
            seen = self.model.seen_[[user_idx]]
            if len(exclude):
                seen = seen.tolil()
                seen[0, exclude] = 1
            idx, scores = self.index.search(self.user_vectors[[user_idx]], k, exclude=seen)
            return self.rows(idx[0], scores[0])
        raw_user = self.model.user_map_.ids[user_idx]
        raw_exclude = None if not len(exclude) else self.model.item_map_.ids[exclude]
        items, scores = self.model.recommend([raw_user], k=k, exclude=raw_exclude)
        idx = self.model.item_map_.to_index(items[0], strict=False)
        return self.rows(idx, scores[0])

    def popular(self, k: int, exclude: np.ndarray) -> list[dict]:
        order = self.popular_order
        if len(exclude):
            order = order[~np.isin(order, exclude)]
        top = order[:k]
        return self.rows(top, self.popularity[top])


def _plain_name(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _top_row(row: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` of one score row, ties by lower index (as tripletrec.evaluation.metrics.top_k)."""
    k = min(k, len(row))
    if k < len(row):
        candidates = np.argpartition(-row, k - 1)[:k]
        cutoff = row[candidates].min()
        # Ties at the cut-off: keep the lowest indices, like the library's top_k.
        above = np.flatnonzero(row > cutoff)
        at = np.flatnonzero(row == cutoff)[: k - len(above)]
        candidates = np.concatenate([above, at])
    else:
        candidates = np.arange(len(row))
    candidates.sort()
    order = np.argsort(-row[candidates], kind="stable")
    idx = candidates[order]
    return idx, row[idx]


# ---------------------------------------------------------------------- request bodies
class HistoryRequest(BaseModel):
    """A user the model has never seen, given by the items they liked."""

    history: list[int | str] = Field(
        ...,
        min_length=1,
        max_length=MAX_HISTORY,
        description="raw item ids, best first or any order",
    )
    k: int = Field(10, ge=1, le=MAX_K)
    exclude: list[int | str] = Field(default_factory=list, max_length=MAX_HISTORY)
    filter_history: bool = True


class ReloadRequest(BaseModel):
    path: str | None = Field(None, description="new model directory; default: the current one")


class Item(BaseModel):
    rank: int
    item_id: int | str
    score: float
    name: str | None = None


class Recommendations(BaseModel):
    user: int | str | None = None
    k: int
    fallback: str | None = None
    items: list[Item]


# ---------------------------------------------------------------------- the app
class ServiceState:
    """The current model; replaced whole by a reload, never modified in place."""

    def __init__(self, model_dir: str | Path, cache_entries: int = CACHE_ENTRIES) -> None:
        self.cache_entries = cache_entries
        self.current = LoadedModel.load(model_dir, cache_entries=cache_entries)
        self._reload_lock = threading.Lock()

    def reload(self, path: str | Path | None = None) -> LoadedModel:
        with self._reload_lock:  # one reload at a time; readers never wait
            fresh = LoadedModel.load(path or self.current.path, cache_entries=self.cache_entries)
            self.current = fresh  # a single reference assignment: atomic for readers
            return fresh


class _BodyLimit:
    """Answers 413 to a request that declares a body over ``limit`` bytes, unread.

    Plain ASGI rather than ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware``
    runs every request through an extra task and response stream, a cost paid by every
    request, not only the large ones.
    """

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                    response = _error(413, f"request body larger than {self.limit} bytes")
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def create_app(
    model_dir: str | Path,
    *,
    cache_entries: int = CACHE_ENTRIES,
    watch_seconds: float | None = None,
) -> FastAPI:
    """The service for the model saved in ``model_dir``.

    Parameters
    ----------
    model_dir : str or Path
        A directory written by :func:`tripletrec.persistence.save_model` (with ``ann-index/`` when
        built by ``tripletrec index``: then the index answers bilinear recommendations).
    cache_entries : int
        Precompute all user scores when users x items is at most this (and no index).
    watch_seconds : float, optional
        Poll the model directory this often and reload when it was replaced (for several
        workers, where ``POST /reload`` reaches only one of them).

    Raises
    ------
    ModelFileError
        If the model directory cannot be loaded: the service does not start without one.
    """
    state = ServiceState(model_dir, cache_entries)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        stop = threading.Event()
        if watch_seconds:
            threading.Thread(
                target=_watch, args=(state, watch_seconds, stop), daemon=True, name="model-watch"
            ).start()
        yield
        stop.set()

    app = FastAPI(
        title="tripletrec",
        description="Recommendations from a triplet-loss model.",
        lifespan=lifespan,
    )
    app.state.service = state

    app.add_middleware(_BodyLimit, limit=MAX_BODY_BYTES)

    @app.exception_handler(RequestValidationError)
    async def on_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(ServiceError)
    async def on_service(_: Request, exc: ServiceError) -> JSONResponse:
        return _error(exc.status, str(exc))

    @app.exception_handler(UnknownIdError)
    async def on_unknown(_: Request, exc: UnknownIdError) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(TripletrecError)
    async def on_tripletrec(_: Request, exc: TripletrecError) -> JSONResponse:
        return _error(422, str(exc))

    @app.exception_handler(Exception)
    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        # A bug, not bad input; say so without a traceback.
        return _error(500, f"internal error: {type(exc).__name__}")

    @app.get("/health")
    async def health() -> dict:
        current = state.current
        return {"status": "ok", "model_dir": str(current.path), "loaded_at": current.loaded_at}

    @app.get("/model")
    async def model_info() -> dict:
        current = state.current
        manifest = current.manifest
        return {
            "model_dir": str(current.path),
            "estimator": manifest["estimator"],
            "params": manifest["params"],
            "n_users": manifest["n_users"],
            "n_items": manifest["n_items"],
            "metrics": manifest.get("metrics", {}),
            "library_version": manifest.get("library_version"),
            "weights_sha256": manifest["weights_sha256"],
            "retrieval": "ann-index"
            if current.index is not None
            else ("cached-scores" if current.scores is not None else "exact"),
            "loaded_at": current.loaded_at,
        }

    @app.get("/recommend", response_model=Recommendations)
    async def recommend(
        user: Annotated[str, Query(min_length=1, max_length=200, description="raw user id")],
        k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
        exclude: Annotated[
            list[str] | None,
            Query(description="item ids to leave out (repeat or comma-separate)"),
        ] = None,
    ) -> JSONResponse:
        current = state.current  # read once: a reload mid-request does not affect it
        values = [v for text in exclude or () for v in text.split(",") if v.strip()]
        if len(values) > MAX_HISTORY:
            raise ServiceError(422, f"exclude: at most {MAX_HISTORY} items")
        excluded = current.exclude_indices(values)
        raw_user = current.parse_id(user, "user", current.user_ids_int)
        user_idx = int(current.model.user_map_.to_index([raw_user], strict=False)[0])
        if user_idx < 0:
            body = {"user": raw_user, "k": k, "fallback": "popularity"}
            return JSONResponse(body | {"items": current.popular(k, excluded)})
        items = current.recommend_user(user_idx, k, excluded)
        return JSONResponse({"user": raw_user, "k": k, "fallback": None, "items": items})

    @app.post("/recommend", response_model=Recommendations)
    def recommend_history(request: HistoryRequest) -> JSONResponse:
        # A plain def: fold-in takes milliseconds of CPU, so it runs in the thread pool
        # instead of blocking the event loop.
        current = state.current
        history = [current.lenient_id(v) for v in request.history]
        excluded = current.exclude_indices(request.exclude)
        raw_exclude = current.model.item_map_.ids[excluded] if len(excluded) else None
        items, scores = current.model.recommend_from_history(
            [history], k=request.k, filter_history=request.filter_history, exclude=raw_exclude
        )
        idx = current.model.item_map_.to_index(items[0], strict=False)
        body = {"user": None, "k": request.k, "fallback": None}
        return JSONResponse(body | {"items": current.rows(idx, scores[0])})

    @app.get("/similar", response_model=Recommendations)
    async def similar(
        item: Annotated[str, Query(min_length=1, max_length=200, description="raw item id")],
        k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
    ) -> JSONResponse:
        current = state.current
        item_idx = current.item_index(item)
        raw = current.model.item_map_.ids[item_idx]
        items, scores = current.model.similar_items([raw], k=k)
        idx = current.model.item_map_.to_index(items[0], strict=False)
        return JSONResponse(
            {"item": current.item_ids[item_idx], "k": k, "items": current.rows(idx, scores[0])}
        )

    @app.post("/reload")
    def reload(request: Annotated[ReloadRequest | None, Body()] = None) -> dict:
        # Loading takes a while: the thread pool keeps serving on the old model meanwhile.
        path = request.path if request is not None else None
        fresh = state.reload(path)
        return {"status": "reloaded", "model_dir": str(fresh.path), "loaded_at": fresh.loaded_at}

    return app


def _watch(state: ServiceState, every: float, stop: threading.Event) -> None:
    """Reload when the model directory's ``model.json`` was replaced (new inode or mtime)."""
    from tripletrec.persistence import MODEL_FILE

    while not stop.wait(every):
        current = state.current
        try:
            stat = (current.path / MODEL_FILE).stat()
        except OSError:
            continue  # mid-replacement: look again next time
        if (stat.st_ino, stat.st_mtime_ns) != current.file_id:
            # A broken new directory: keep serving the old model.
            with contextlib.suppress(TripletrecError):
                state.reload()


def app_from_environment() -> FastAPI:
    """App factory for uvicorn workers: the model directory is ``$TRIPLETREC_MODEL_DIR``."""
    model_dir = os.environ.get("TRIPLETREC_MODEL_DIR")
    if not model_dir:
        raise TripletrecError("TRIPLETREC_MODEL_DIR is not set")
    watch = float(os.environ.get("TRIPLETREC_WATCH_SECONDS", "0")) or None
    return create_app(model_dir, watch_seconds=watch)


def run_server(
    model_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    workers: int = 1,
    watch_seconds: float | None = None,
    log_level: str = "warning",
    graceful_seconds: float = 10.0,
) -> None:
    """Serve ``model_dir`` with uvicorn until SIGINT / SIGTERM.

    The model is loaded (and checked) before the port opens. With ``workers > 1`` each
    worker process loads its own copy and watches the directory (``watch_seconds``,
    default 2 s) so that a replaced model reaches every worker.
    """
    import uvicorn

    from tripletrec.persistence import read_manifest

    read_manifest(model_dir)  # fail with a clear message before any worker starts
    if workers > 1:
        os.environ["TRIPLETREC_MODEL_DIR"] = str(Path(model_dir).resolve())
        os.environ["TRIPLETREC_WATCH_SECONDS"] = str(watch_seconds or 2.0)
        uvicorn.run(
            "tripletrec.serving.app:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            timeout_graceful_shutdown=graceful_seconds,
        )
        return
    app = create_app(model_dir, watch_seconds=watch_seconds)
    uvicorn.run(
        app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=graceful_seconds
    )
