"""The explorer page at ``/``: plain HTML, JavaScript and CSS shipped in the package.

The files under ``explorer/`` are read once when the app is created and served as they
are: no build step, and nothing the page loads comes from anywhere but this service. The
Content-Security-Policy says so to the browser too (scripts, styles and requests from this
origin only, no inline script), so a name in the data that looks like markup cannot run.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from tripletrec.serving.loaded import ServiceError

__all__ = ["ASSETS", "add_explorer"]

#: The page's files besides ``index.html``, and their media types.
ASSETS = {
    "explorer.js": "text/javascript; charset=utf-8",
    "explorer.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def add_explorer(app: Any) -> None:
    """Register ``GET /`` (the page) and ``GET /explorer/FILE`` (its script and styles)."""
    from fastapi.responses import Response

    folder = files("tripletrec.serving") / "explorer"
    page = (folder / "index.html").read_bytes()
    assets = {name: (folder / name).read_bytes() for name in ASSETS}

    @app.get("/", include_in_schema=False)
    async def explorer() -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=_HEADERS)

    @app.get("/explorer/{name}", include_in_schema=False)
    async def explorer_asset(name: str) -> Response:
        if name not in assets:
            raise ServiceError(404, f"no such file of the explorer page: {name!r}")
        return Response(assets[name], media_type=ASSETS[name], headers=_HEADERS)
