"""Running the service: uvicorn over a socket bound here, one process or several workers.

:func:`run_server` loads and checks the model before the port opens, then serves the app of
:func:`tripletrec.serving.app.create_app`; with several workers each process builds its own
app from the environment (:func:`app_from_environment`) and watches the model directory.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from tripletrec.exceptions import TripletrecError
from tripletrec.serving.app import create_app

__all__ = ["app_from_environment", "run_server"]

#: Environment of the worker processes of ``run_server(workers > 1)``.
ENV_MODEL_DIR, ENV_WATCH = "TRIPLETREC_MODEL_DIR", "TRIPLETREC_WATCH_SECONDS"
ENV_TOKEN, ENV_MODEL_ROOT = "TRIPLETREC_TOKEN", "TRIPLETREC_MODEL_ROOT"


def app_from_environment() -> FastAPI:
    """App factory for uvicorn workers: the model directory is ``$TRIPLETREC_MODEL_DIR``,
    the admin token ``$TRIPLETREC_TOKEN``, the model root ``$TRIPLETREC_MODEL_ROOT``."""
    model_dir = os.environ.get(ENV_MODEL_DIR)
    if not model_dir:
        raise TripletrecError(f"{ENV_MODEL_DIR} is not set")
    watch = float(os.environ.get(ENV_WATCH, "0")) or None
    return create_app(
        model_dir,
        watch_seconds=watch,
        token=os.environ.get(ENV_TOKEN) or None,
        model_root=os.environ.get(ENV_MODEL_ROOT) or None,
    )


def _listen(host: str, port: int) -> socket.socket:
    """A bound socket on ``host:port``; port 0 picks a free one (read it from the socket)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise TripletrecError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


def run_server(
    model_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    workers: int = 1,
    watch_seconds: float | None = None,
    log_level: str = "warning",
    graceful_seconds: float = 10.0,
    token: str | None = None,
    model_root: str | Path | None = None,
) -> None:
    """Serve ``model_dir`` with uvicorn until SIGINT / SIGTERM.

    The model is loaded (and checked) before the port opens; then one line ``serving
    MODEL_DIR on http://HOST:PORT`` goes to stdout, with the real port when ``port`` is 0.
    With ``workers > 1`` each worker process loads its own copy and watches the directory
    (``watch_seconds``, default 2 s) so that a replaced model reaches every worker.
    """
    import uvicorn

    from tripletrec.persistence import read_manifest

    read_manifest(model_dir)  # fail with a clear message before any worker starts
    settings = {
        "log_level": log_level,
        "timeout_graceful_shutdown": graceful_seconds,
        # An access line is built for every request even when the level hides it.
        "access_log": log_level in ("trace", "debug", "info"),
    }
    if workers > 1:
        model_dir = Path(model_dir).resolve()
        os.environ[ENV_MODEL_DIR] = str(model_dir)
        os.environ[ENV_WATCH] = str(watch_seconds or 2.0)
        os.environ[ENV_MODEL_ROOT] = str(model_root or model_dir.parent)
        if token:
            os.environ[ENV_TOKEN] = token  # the workers' copy; they are this user's processes
        else:
            os.environ.pop(ENV_TOKEN, None)
        # The processes are the parallelism (a request's work is small): intra-op threads
        # of every worker would outnumber the cores and spin against each other.
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
        sock = _listen(host, port)
        _announce(model_dir, host, sock.getsockname()[1])
        config = uvicorn.Config(
            "tripletrec.serving.server:app_from_environment",
            factory=True,
            workers=workers,
            **settings,
        )
        _run_workers(config, sock)
        return
    app = create_app(model_dir, watch_seconds=watch_seconds, token=token, model_root=model_root)
    sock = _listen(host, port)
    _announce(model_dir, host, sock.getsockname()[1])
    uvicorn.Server(uvicorn.Config(app, **settings)).run(sockets=[sock])


def _run_workers(config: Any, sock: socket.socket) -> None:
    """uvicorn's worker supervisor (restarts dead workers, stops them all on SIGINT /
    SIGTERM) over a socket bound here, so that ``port=0`` works with several workers."""
    import inspect

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    # Older uvicorn versions take the worker's function, newer ones build it themselves.
    wants_target = "target" in inspect.signature(Multiprocess).parameters
    extra = {"target": uvicorn.Server(config).run} if wants_target else {}
    try:
        Multiprocess(config, sockets=[sock], **extra).run()
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()


def _announce(model_dir: str | Path, host: str, port: int) -> None:
    print(f"serving {model_dir} on http://{host}:{port} (docs at /docs)", flush=True)
