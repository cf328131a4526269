"""Atomic file writes: the one implementation every writer in tripletrec uses.

A file is written under a temporary name in its target directory and renamed into place,
so a crash never leaves a half-written file where a reader looks, and a reader never sees
one. ``tempfile.mkstemp`` creates files readable by their owner only (mode 0600); every
writer here gives the final file the mode ``open()`` would have given it (0666 less the
umask), because results, figures and exports are meant to be shared.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


def _umask() -> int:
    # os.umask can only be read by setting it; set it straight back.
    umask = os.umask(0)
    os.umask(umask)
    return umask


def file_mode() -> int:
    """The mode ``open()`` would give a new file: 0666 less the process umask."""
    return 0o666 & ~_umask()


def directory_mode() -> int:
    """The mode ``mkdir`` would give a new directory: 0777 less the process umask."""
    return 0o777 & ~_umask()


@contextlib.contextmanager
def atomic_path(path: str | Path, *, mode: int | None = None) -> Iterator[Path]:
    """A temporary path next to ``path`` for a writer that needs a file name.

    On a clean exit the temporary file gets ``mode`` (default :func:`file_mode`) and
    replaces ``path``; on an error it is removed and ``path`` is left as it was. The parent
    directory is created.

    Examples
    --------
    >>> with atomic_path("figure.png") as tmp:  # doctest: +SKIP
    ...     figure.savefig(tmp, format="png")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, file_mode() if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def json_default(value: Any) -> Any:
    """``json.dumps`` ``default`` for the values results hold: numpy scalars and arrays,
    tuples and sets (as lists) and paths (as strings)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, set)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def write_json_atomic(path: str | Path, payload: Any) -> None:
    """Write ``payload`` as indented JSON to ``path`` atomically (see :func:`json_default`)."""
    write_text_atomic(path, json.dumps(payload, indent=2, default=json_default) + "\n")


def read_json_object(path: str | Path, error: type[Exception]) -> dict:
    """The JSON object in file ``path``; raises ``error`` naming the file when it is
    anything else (corrupt JSON, not UTF-8, or a JSON value that is not an object)."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: corrupt JSON ({exc})") from exc
    if not isinstance(payload, dict):
        raise error(f"{path}: expected a JSON object")
    return payload


def staging_directory(target: str | Path) -> Path:
    """A new empty directory next to ``target`` to build its replacement in (see
    :func:`replace_directory`), with the mode ``mkdir`` would give it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    os.chmod(staging, directory_mode())  # mkdtemp makes directories private (0700)
    return staging


def replace_directory(staging: str | Path, target: str | Path) -> None:
    """Put directory ``staging`` in the place of ``target`` (which may not exist).

    Both must be on the same file system (build ``staging`` with
    :func:`staging_directory`). An existing ``target`` is moved aside first, because a
    directory cannot be renamed over a non-empty one, and removed after the swap.
    """
    staging, target = Path(staging), Path(target)
    if not target.exists():
        os.replace(staging, target)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.replace(target, retired)
    os.replace(staging, target)
    shutil.rmtree(retired, ignore_errors=True)


def json_lists_to_tuples(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with every list value as a tuple.

    JSON has no tuples, so sequence hyper-parameters such as ``hidden_layers=(128,)`` come
    back from a file as lists; constructors and ``get_params`` comparisons expect tuples.
    """
    return {
        key: tuple(value) if isinstance(value, list) else value for key, value in params.items()
    }


def sha256_of_file(path: str | Path) -> str:
    """The SHA-256 hex digest of the file at ``path``, read in blocks: the checksum that
    model directories and checkpoints record for their tensor files."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
