"""A real ``tripletrec serve`` process for the tests that need one: started on a free port,
waited for until healthy, stopped gracefully (and killed if a test fails first)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator


@contextlib.contextmanager
def serve_process(*args: str, start_timeout: float = 120.0) -> Iterator[tuple[str, str]]:
    """Run ``tripletrec serve ARGS --port 0``; yield ``(first stdout line, base URL)`` once
    ``/health`` answers. On leaving, SIGTERM must end it cleanly, without a traceback.

    Port 0: the server binds a free port itself and reports it, so no other process can
    take the port between choosing and binding it.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "tripletrec", "serve", *args, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = process.stdout.readline().decode()
        assert line.startswith("serving ") and ":0 " not in line, (
            line + process.stderr.read().decode()
        )
        base = line.split()[3]
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    assert json.loads(response.read())["status"] == "ok"
                    break
            except OSError:
                assert process.poll() is None, process.stderr.read().decode()
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        yield line, base
        process.send_signal(signal.SIGTERM)
        # uvicorn finishes in-flight requests, then re-raises the signal it caught.
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)
        assert b"Traceback" not in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
