"""One training at a time per output directory: an advisory lock file beside it."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from tripletrec.exceptions import TripletrecError


class OutputLockedError(TripletrecError):
    """Another process holds the lock of an output directory."""


def lock_path(out: str | Path) -> Path:
    """``OUT.lock``, beside the directory (inside it, the lock would be replaced with it:
    saving a model swaps the whole directory)."""
    out = Path(out)
    return out.with_name(out.name + ".lock")


@contextlib.contextmanager
def output_lock(out: str | Path) -> Iterator[Path]:
    """Hold the advisory lock of output directory ``out`` for the ``with`` block.

    ``flock`` locks are released by the kernel when the process exits, however it exits,
    so a killed training never leaves a stale lock behind; the lock file is removed on a
    normal exit.

    Raises
    ------
    OutputLockedError
        If another process holds the lock.
    """
    path = lock_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputLockedError(
                f"{out}: another training is writing this directory (it holds {path}); "
                "wait for it or choose another --out"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        # The holder before us may have removed the file between our open and our lock:
        # then we locked an orphan, and a third process could lock a new file. Retry until
        # the locked file is the one at the path.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)  # a killed holder left its pid in the file
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        # Remove while still holding the lock, so that nobody locks the file being removed.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)
