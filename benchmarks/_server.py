"""A `tripletrec serve` subprocess on 127.0.0.1 and a small HTTP/1.1 client, for the load
and soak benchmarks.

Only 127.0.0.1 is ever contacted (:data:`HOST`, not configurable): the server binds it,
the client connects to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HOST = "127.0.0.1"  # never anything else: these tools load the local machine only


def free_port() -> int:
    """A port free now (for servers that cannot bind port 0 themselves)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Server:
    """``python -m tripletrec serve MODEL_DIR`` on 127.0.0.1, stopped on exit.

    Parameters
    ----------
    model_dir : Path
        The model directory to serve.
    workers : int
        Worker processes.
    port : int
        0: the server binds a free port itself and prints it (this tree's CLI); otherwise
        that port (for older trees, which cannot bind port 0 with several workers).
    args : list of str
        More ``serve`` arguments (``--token-file``, ``--model-root``).
    env : dict, optional
        Extra environment (``PYTHONPATH`` of another source tree).
    log : Path
        Where the server's stderr goes (a pipe nobody reads could fill up and block it).
    """

    def __init__(
        self,
        model_dir: Path,
        workers: int,
        *,
        port: int = 0,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        log: Path,
    ) -> None:
        self.log = log
        command = [
            sys.executable, "-m", "tripletrec", "serve", str(model_dir), "--host", HOST,
            "--port", str(port), "--workers", str(workers), *(args or []),
        ]  # fmt: skip
        with open(log, "wb") as stderr:
            self.process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            )
        self.port = port

    def __enter__(self) -> Server:
        try:
            if self.port == 0:
                self.port = self._announced_port(timeout=120)
            self.wait_healthy(timeout=120)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _announced_port(self, timeout: float) -> int:
        # "serving DIR on http://127.0.0.1:PORT (docs at /docs)"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.5)
            if ready:
                line = self.process.stdout.readline().decode()
                if line.startswith("serving ") and " on http://" in line:
                    return int(line.split(" on http://")[1].split()[0].rsplit(":", 1)[1])
            if self.process.poll() is not None:
                break
        raise RuntimeError(f"server did not start: {self.log.read_text()[-2000:]}")

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.base}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("server did not become healthy")

    def pids(self) -> list[int]:
        """The server's processes: the command and every process below it."""
        found, frontier = [], [self.process.pid]
        while frontier:
            pid = frontier.pop()
            found.append(pid)
            try:
                text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
            except OSError:
                text = " ".join(str(p) for p in _children_by_scan(pid))
            frontier += [int(p) for p in text.split()]
        return found

    def rss_bytes(self) -> dict[int, int]:
        """Resident memory of each server process (psutil if installed, else /proc)."""
        return {pid: rss for pid in self.pids() if (rss := process_rss(pid)) is not None}

    def anonymous_bytes(self) -> dict[int, int]:
        """Anonymous memory of each server process (:func:`process_anonymous`)."""
        return {pid: n for pid in self.pids() if (n := process_anonymous(pid)) is not None}

    def memory(self) -> dict[str, int]:
        """The server's processes together: their number and summed RSS and PSS (PSS
        shares each page among the processes that map it: the memory they really use)."""
        from tripletrec._system import memory_usage

        readings = [memory_usage(f"/proc/{pid}/smaps_rollup") for pid in self.pids()]
        return {
            "processes": len(readings),
            "rss_bytes": sum(r["rss_bytes"] or 0 for r in readings),
            "pss_bytes": sum(r["pss_bytes"] or 0 for r in readings),
        }

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 30 s; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode


def _children_by_scan(parent: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                children.append(int(entry.name))
    return children


def process_rss(pid: int) -> int | None:
    """Resident set size of ``pid`` in bytes; None once it is gone."""
    try:
        import psutil
    except ImportError:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None
    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return None


def process_anonymous(pid: int) -> int | None:
    """Anonymous memory of ``pid`` in bytes (its heap and other private allocations, not the
    file pages it maps: what a leak grows), from ``/proc/PID/smaps_rollup``; None once it is
    gone or off Linux."""
    from tripletrec._system import rollup_bytes

    return rollup_bytes(f"/proc/{pid}/smaps_rollup").get("Anonymous")


class HttpError(Exception):
    """A request that got no complete HTTP answer (refused, reset, timed out, garbled)."""


class Connection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1 (answers with Content-Length only,
    as the service gives them); reconnects after the server closed it."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.port, self.timeout = port, timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, bytes]:
        """(status, body); raises :class:`HttpError` without an answer."""
        try:
            return await asyncio.wait_for(self._request(method, path, body, headers), self.timeout)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            await self.close()
            raise HttpError(f"{type(exc).__name__}: {exc}") from exc

    async def _request(self, method, path, body, headers) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        lines = [f"{method} {path} HTTP/1.1", f"host: {HOST}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if body is not None:
            lines += ["content-type: application/json", f"content-length: {len(body)}"]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        fields = dict(
            (name.strip().lower(), value.strip())
            for name, _, value in (h.partition(":") for h in header_lines if h)
        )
        if "content-length" not in fields:
            raise ValueError(f"answer without content-length: {status_line}")
        payload = await self.reader.readexactly(int(fields["content-length"]))
        if fields.get("connection", "").lower() == "close":
            await self.close()
        return status, payload

    async def close(self) -> None:
        if self.writer is not None:
            writer, self.writer, self.reader = self.writer, None, None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
