"""Who may change the service: a bearer token for admin endpoints, a root for reloads.

Read endpoints are open. Endpoints that change what every user is served (``POST
/reload``) need ``Authorization: Bearer <token>``; without a configured token they are
disabled (403), so a service started without one cannot be taken over. A reload loads only
model directories under the model root, so a token holder cannot make the service read an
arbitrary directory of the host either.
"""

from __future__ import annotations

import hmac
from pathlib import Path

from tripletrec.serving.loaded import ServiceError

_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_INVALID = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class AdminToken:
    """Checks the ``Authorization`` header of an admin request against the token.

    Parameters
    ----------
    token : str or None
        The bearer token; None (or blank) disables the admin endpoints.
    """

    def __init__(self, token: str | None) -> None:
        token = (token or "").strip()
        self._token = token.encode("utf-8") if token else None

    @property
    def configured(self) -> bool:
        return self._token is not None

    def check(self, authorization: str | None) -> None:
        """Return if ``authorization`` carries the token, else raise.

        Raises
        ------
        ServiceError
            403 when no token is configured, 401 (with ``WWW-Authenticate: Bearer``) when
            the header is missing, not a bearer token, or the wrong token.
        """
        if self._token is None:
            raise ServiceError(
                403,
                "admin endpoints are disabled: start the service with --token-file FILE "
                "or TRIPLETREC_TOKEN set",
            )
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise ServiceError(401, "this endpoint needs Authorization: Bearer <token>", _CHALLENGE)
        # Constant time: how long the comparison takes says nothing about the token.
        if not hmac.compare_digest(credentials.strip().encode("utf-8"), self._token):
            raise ServiceError(401, "invalid token", _INVALID)


class ModelRoot:
    """The directory that reloadable model directories must lie under.

    Parameters
    ----------
    root : str or Path
        Resolved at construction (symlinks and ``..``), so that a later change of the
        working directory or a symlink does not move it.
    """

    def __init__(self, root: str | Path) -> None:
        self.path = Path(root).resolve()

    def check(self, path: str | Path) -> Path:
        """``path`` resolved, if it lies under the root (or is the root).

        Symlinks and ``..`` are resolved before the check, and the resolved path is what
        gets loaded, so a link pointing out of the root is refused, not followed later.

        Raises
        ------
        ServiceError
            403 when the resolved path is outside the root; 422 when it is no possible
            path (a NUL byte, a name longer than the file system allows).
        """
        try:
            resolved = Path(path).resolve()
            resolved.exists()  # a name too long for the file system raises here, not later
        except (ValueError, OSError) as exc:
            raise ServiceError(422, f"{path!r}: not a usable path ({exc})") from exc
        if resolved != self.path and self.path not in resolved.parents:
            raise ServiceError(
                403,
                f"{path}: outside the model root {self.path}; reload loads only model "
                "directories under it (tripletrec serve --model-root)",
            )
        return resolved
