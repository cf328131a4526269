"""The cheap path for the commonest requests, and the JSON encoder of every answer.

Under load the work of a ``GET /recommend`` is a slice of a precomputed list (see
:mod:`tripletrec.serving.loaded`); FastAPI's routing, dependency solving and query
validation would cost many times that. :class:`HotPath` is a plain ASGI middleware that
answers the plainest requests itself, ``GET /recommend?user=ID[&k=N]`` and ``GET
/similar?item=ID[&k=N]`` whose values need no decoding, by calling the same
:class:`~tripletrec.serving.service.Service` method as the FastAPI route. Every other
request, and every one the service refuses, goes on to FastAPI, which gives the
canonical answer or error: the middleware can make a request cheaper, never different.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tripletrec.serving.loaded import DEFAULT_K, MAX_K

try:  # an optional dependency (tripletrec[serve]); the standard encoder otherwise
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

__all__ = ["HotPath", "dumps"]

# Values that read the same percent-decoded or not (URL "unreserved" characters), at most
# as long as the routes accept; anything else goes to FastAPI, which decodes it.
_ID = re.compile(rb"[A-Za-z0-9._~-]{1,200}")
_K = re.compile(rb"[1-9][0-9]{0,3}")  # what the routes accept, less leading zeros and signs
_HEADERS = (b"content-type", b"application/json")


def dumps(content: Any) -> bytes:
    """Compact JSON (UTF-8, no spaces), as Starlette's ``JSONResponse`` writes it.

    orjson when installed; the standard encoder for what orjson refuses (integers beyond
    64 bits, lone surrogates) and when it is not.
    """
    if _orjson is not None:
        try:
            return _orjson.dumps(content)
        except TypeError:
            pass
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


class HotPath:
    """ASGI middleware answering plain ``GET /recommend`` and ``GET /similar`` requests.

    Parameters
    ----------
    app : ASGI application
        The FastAPI app, for every request this does not answer.
    service : Service
        Whose ``recommend`` and ``similar`` give the answers.
    """

    def __init__(self, app: Any, service: Any) -> None:
        self.app = app
        self.routes = {
            "/recommend": (b"user", lambda raw, k: service.recommend(raw, k)),
            "/similar": (b"item", lambda raw, k: service.similar(raw, k)),
        }

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            route = self.routes.get(scope["path"])
            body = None if route is None else self.answer(route, scope["query_string"])
            if body is not None:
                headers = [_HEADERS, (b"content-length", b"%d" % len(body))]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    @staticmethod
    def answer(route: tuple, query: bytes) -> bytes | None:
        """The JSON answer to ``query``, or None where FastAPI must answer."""
        name, method = route
        raw = k = None
        for part in query.split(b"&"):
            key, _, value = part.partition(b"=")
            if key == name and raw is None and _ID.fullmatch(value):
                raw = value
            elif key == b"k" and k is None and _K.fullmatch(value):
                k = int(value)
            else:
                return None  # anything else (exclude, repeats, encodings): the full route
        if raw is None or (k is not None and k > MAX_K):
            return None
        try:
            content = method(raw.decode("ascii"), DEFAULT_K if k is None else k)
        except Exception:
            # A refusal (unknown item, bad id) or a bug: FastAPI runs the same call again
            # and answers it with the route's status and message.
            return None
        return dumps(content)
