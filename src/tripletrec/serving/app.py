"""The recommendation service: a FastAPI app over a saved model directory.

Endpoints (OpenAPI schema and a try-it page at ``/docs``):

``GET /recommend?user=ID&k=10&exclude=ID,ID``
    Top-k for a known user, training items filtered. An unknown user gets the most popular
    items and ``"fallback": "popularity"``.
``POST /recommend``
    ``{"history": [item ids], "k": 10, "exclude": [...]}``: top-k for a user the model has
    never seen, folded in from the history (see :mod:`tripletrec.models.foldin`); history
    items the model does not know are listed in ``"unknown_items"``.
``GET /similar?item=ID&k=10``
    Items most similar to an item; an unknown item is a 404.
``GET /explain?user=ID&item=ID&n=5``, ``POST /explain``
    ``{"history": [item ids], "item": ID, "n": 5}``: why ``item`` scores as it does for a
    known user or a new user's history, the history items it owes most to and their shares
    (:mod:`tripletrec.models.explain`); unknown user or item: 404, a model that cannot
    explain (popularity, random, deep): 422.
``GET /items?query=TEXT&limit=10``, ``GET /users?query=TEXT&limit=10``
    Items whose id or name contains the text (any case), most popular first; known users
    by id. An empty query gives the most popular items, the first users.
``GET /history?user=ID``
    A known user's training items, with names; an unknown user is a 404.
``GET /``
    The explorer page (:mod:`tripletrec.serving.page`) over these endpoints.
``GET /health``, ``GET /model``
    Liveness; model metadata and training metrics.
``POST /reload`` (admin: ``Authorization: Bearer <token>``)
    ``{"path": optional new model directory under the model root}``: load the model fully,
    then swap it in.

The answers come from :class:`~tripletrec.serving.service.Service`; this module only maps
HTTP onto it. Every bad input is a 4xx with ``{"detail": message}``; requests in flight
during a reload finish on the model they started with, because each request reads the
current model reference once. Shutdown is uvicorn's: on SIGINT / SIGTERM it stops accepting
connections and lets requests in flight finish (``timeout_graceful_shutdown`` bounds the
wait).
"""

from __future__ import annotations

import gc
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from tripletrec.exceptions import TripletrecError, UnknownIdError
from tripletrec.models.explain import DEFAULT_REASONS
from tripletrec.serving.hotpath import HotPath, dumps
from tripletrec.serving.loaded import (
    CACHE_ENTRIES,
    DEFAULT_K,
    DEFAULT_MATCHES,
    MAX_HISTORY,
    MAX_K,
    MAX_MATCHES,
    LoadedModel,
    ServiceError,
)
from tripletrec.serving.page import add_explorer
from tripletrec.serving.service import Service

try:
    from fastapi import Body, Depends, FastAPI, Header, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, Field
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ImportError as exc:  # an optional dependency
    raise TripletrecError(
        "the service needs FastAPI and uvicorn: pip install 'tripletrec[serve]'"
    ) from exc

__all__ = [
    "CACHE_ENTRIES", "MAX_BODY_BYTES", "MAX_HISTORY", "MAX_K", "LoadedModel", "Service",
    "ServiceError", "create_app",
]  # fmt: skip

#: Largest request body, bytes.
MAX_BODY_BYTES = 1 << 20


# ---------------------------------------------------------------------- query values
_SearchText = Annotated[str, Query(max_length=200, description="part of an id or name, any case")]
_Matches = Annotated[int, Query(ge=1, le=MAX_MATCHES, description="most matches returned")]


# ---------------------------------------------------------------------- request bodies
class HistoryRequest(BaseModel):
    """A user the model has never seen, given by the items they liked."""

    history: list[int | str] = Field(
        ...,
        min_length=1,
        max_length=MAX_HISTORY,
        description="raw item ids, best first or any order",
    )
    k: int = Field(DEFAULT_K, ge=1, le=MAX_K)
    exclude: list[int | str] = Field(default_factory=list, max_length=MAX_HISTORY)
    filter_history: bool = True


class ExplainRequest(BaseModel):
    """An item to explain for a user the model has never seen."""

    history: list[int | str] = Field(
        ..., min_length=1, max_length=MAX_HISTORY, description="raw item ids the user liked"
    )
    item: int | str = Field(..., description="raw id of the item to explain")
    n: int = Field(DEFAULT_REASONS, ge=1, le=MAX_HISTORY, description="history items listed")


class ReloadRequest(BaseModel):
    path: str | None = Field(
        None, description="new model directory under the model root; default: the current one"
    )


class Item(BaseModel):
    rank: int
    item_id: int | str
    score: float
    name: str | None = None


class Recommendations(BaseModel):
    user: int | str | None = None
    k: int
    fallback: str | None = None
    unknown_items: list[int | str] | None = Field(
        None, description="POST /recommend: history items the model does not know (ignored)"
    )
    items: list[Item]


# ---------------------------------------------------------------------- plumbing
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


class _JSON(JSONResponse):
    """``JSONResponse`` through :func:`~tripletrec.serving.hotpath.dumps` (orjson when
    installed): the same JSON, encoded in a fraction of the time."""

    def render(self, content: Any) -> bytes:
        return dumps(content)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return _JSON({"detail": message}, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def on_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(ServiceError)
    async def on_service(_: Request, exc: ServiceError) -> JSONResponse:
        return _error(exc.status, str(exc), exc.headers)

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


# ---------------------------------------------------------------------- the app
def create_app(
    model_dir: str | Path,
    *,
    cache_entries: int = CACHE_ENTRIES,
    watch_seconds: float | None = None,
    token: str | None = None,
    model_root: str | Path | None = None,
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
    token : str, optional
        Bearer token that ``POST /reload`` requires; None disables it (403).
    model_root : str or Path, optional
        ``POST /reload`` loads only directories under this one (default: the parent of
        ``model_dir``).

    Raises
    ------
    ModelFileError
        If the model directory cannot be loaded: the service does not start without one.
    """
    service = Service(model_dir, cache_entries=cache_entries, token=token, model_root=model_root)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # What is loaded by now (the libraries, the model) lives as long as the process.
        # Frozen out of the cyclic collector's sight, it is no longer walked by every full
        # collection, a pause that would hit all requests in flight; models loaded later
        # are freed by reference counting as before.
        gc.collect()
        gc.freeze()
        stop = threading.Event()
        if watch_seconds:
            threading.Thread(
                target=service.watch, args=(watch_seconds, stop), daemon=True, name="model-watch"
            ).start()
        yield
        stop.set()

    app = FastAPI(
        title="tripletrec",
        description="Recommendations from a triplet-loss model.",
        lifespan=lifespan,
        default_response_class=_JSON,
    )
    app.state.service = service
    # The body limit outermost (first look at every request), then the cheap path for
    # plain GETs, then FastAPI for everything else.
    app.add_middleware(HotPath, service=service)
    app.add_middleware(_BodyLimit, limit=MAX_BODY_BYTES)
    _add_error_handlers(app)

    def admin(authorization: Annotated[str | None, Header()] = None) -> None:
        # A dependency runs before the body is validated: no token, no further answer.
        service.authorize(authorization)

    @app.get("/health")
    async def health() -> dict:
        return service.health()

    @app.get("/model")
    async def model_info() -> dict:
        return service.model_info()

    @app.get("/recommend", response_model=Recommendations)
    async def recommend(
        user: Annotated[str, Query(min_length=1, max_length=200, description="raw user id")],
        k: Annotated[int, Query(ge=1, le=MAX_K)] = DEFAULT_K,
        exclude: Annotated[
            list[str] | None,
            Query(description="item ids to leave out (repeat or comma-separate)"),
        ] = None,
    ) -> JSONResponse:
        return _JSON(service.recommend(user, k, exclude or ()))

    @app.post("/recommend", response_model=Recommendations)
    def recommend_history(request: HistoryRequest) -> JSONResponse:
        # A plain def: fold-in takes milliseconds of CPU, so it runs in the thread pool
        # instead of blocking the event loop.
        return _JSON(
            service.recommend_history(
                request.history, request.k, request.exclude, request.filter_history
            )
        )

    @app.get("/similar", response_model=Recommendations)
    async def similar(
        item: Annotated[str, Query(min_length=1, max_length=200, description="raw item id")],
        k: Annotated[int, Query(ge=1, le=MAX_K)] = DEFAULT_K,
    ) -> JSONResponse:
        return _JSON(service.similar(item, k))

    @app.get("/explain")
    def explain(
        user: Annotated[str, Query(min_length=1, max_length=200, description="raw user id")],
        item: Annotated[str, Query(min_length=1, max_length=200, description="raw item id")],
        n: Annotated[int, Query(ge=1, le=MAX_HISTORY)] = DEFAULT_REASONS,
    ) -> JSONResponse:
        # A plain def: a factor model's split reads every item vector, off the event loop.
        return _JSON(service.explain(user, item, n))

    @app.post("/explain")
    def explain_history(request: ExplainRequest) -> JSONResponse:
        return _JSON(service.explain_history(request.history, request.item, request.n))

    @app.get("/items")
    def items(query: _SearchText = "", limit: _Matches = DEFAULT_MATCHES) -> JSONResponse:
        # A plain def: a query scans the whole catalogue, off the event loop.
        return _JSON(service.items(query, limit))

    @app.get("/users")
    def users(query: _SearchText = "", limit: _Matches = DEFAULT_MATCHES) -> JSONResponse:
        return _JSON(service.users(query, limit))

    @app.get("/history")
    async def history(
        user: Annotated[str, Query(min_length=1, max_length=200, description="raw user id")],
        limit: Annotated[int, Query(ge=1, le=MAX_HISTORY)] = MAX_HISTORY,
    ) -> JSONResponse:
        return _JSON(service.history(user, limit))

    add_explorer(app)

    @app.post("/reload", dependencies=[Depends(admin)])
    def reload(request: Annotated[ReloadRequest | None, Body()] = None) -> dict:
        # Loading takes a while: the thread pool keeps serving on the old model meanwhile.
        return service.reload(request.path if request is not None else None)

    return app
