"""Training checkpoints on disk: written atomically, read back checked, no pickle.

A checkpoint directory (``fit(..., checkpoint_dir=D)``; ``tripletrec train --out DIR
--checkpoint-every N`` uses ``DIR/checkpoints``) holds:

``epoch-0007/``
    One checkpoint, after epoch 7: ``state.safetensors`` (bare tensors: the scorer's
    weights, the optimiser's moments and step counts, the early-stopping monitor's best
    weights, torch's random-generator states) and ``checkpoint.json`` (the epoch, the
    learning-rate schedule's steps done, the history, NumPy's generator state, the
    monitor's best value and epoch, the optimisers' step sizes, the fingerprint of the
    settings and data, and the SHA-256 of ``state.safetensors``). See
    :mod:`tripletrec.training.state` for what each part is.
``latest.json``
    The name of the newest checkpoint.

Each checkpoint is built in a staging directory and renamed into place, then
``latest.json`` is replaced (atomically) to name it, then older checkpoints beyond the
last :data:`KEEP` are removed: a process killed at any point leaves ``latest.json`` naming
a complete checkpoint (or no ``latest.json`` at all, before the first).

A fit with a checkpoint directory also writes a *final* checkpoint when it ends (its
weights are the fitted model's: the best epoch's, after early stopping). Resuming from it
trains nothing; ``fit_partial`` reads its optimiser state to continue from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from tripletrec._checks import positive_int
from tripletrec._files import (
    file_mode,
    json_default,
    read_json_object,
    replace_directory,
    sha256_of_file,
    staging_directory,
    write_json_atomic,
)
from tripletrec._version import __version__
from tripletrec.exceptions import DataError, ModelFileError, ParameterError, first_line

if TYPE_CHECKING:
    from tripletrec.models.base import RecommenderBase

FORMAT_NAME = "tripletrec-checkpoint"
FORMAT_VERSION = 1
LATEST_FILE = "latest.json"
STATE_FILE = "state.safetensors"
META_FILE = "checkpoint.json"
#: Checkpoints kept in a directory: the newest and the one before it.
KEEP = 2
#: Settings that do not change what a fit computes, left out of the fingerprint.
UNFINGERPRINTED = frozenset({"verbose"})
_NAME = re.compile(r"^epoch-(\d+)$")


@dataclass(frozen=True)
class CheckpointSettings:
    """Where and how often a fit writes checkpoints, and whether it resumes.

    Attributes
    ----------
    directory : Path
        The checkpoint directory.
    every : int
        Epochs between checkpoints (a final one is always written at the end).
    resume : bool
        Continue from the directory's latest checkpoint (start afresh when it has none).
    keep : int
        Checkpoints kept.
    """

    directory: Path
    every: int = 1
    resume: bool = False
    keep: int = KEEP

    @classmethod
    def of(
        cls, directory: str | os.PathLike | None, every: int | None, resume: bool
    ) -> CheckpointSettings | None:
        """The settings of ``fit``'s arguments, checked (None: no checkpoints)."""
        if directory is None:
            if every is not None or resume:
                raise ParameterError("checkpoint_every and resume need a checkpoint_dir")
            return None
        every = 1 if every is None else positive_int("checkpoint_every", every)
        return cls(Path(directory), every, bool(resume))


@dataclass
class Checkpoint:
    """One checkpoint read back: its directory, JSON metadata and tensors."""

    directory: Path
    meta: dict
    tensors: dict[str, torch.Tensor]

    @property
    def epoch(self) -> int:
        return int(self.meta["epoch"])

    @property
    def final(self) -> bool:
        return bool(self.meta.get("final", False))

    @property
    def history(self) -> list[dict]:
        return list(self.meta.get("history", []))


def fingerprint(
    model: RecommenderBase,
    seen: sp.csr_matrix,
    validation: sp.csr_matrix | None = None,
) -> dict:
    """What must be equal for a checkpoint to continue a fit: the hyper-parameters (as
    JSON) and a SHA-256 of the training data (positives, raw ids, side-feature matrices,
    validation positives)."""
    params = {k: v for k, v in sorted(model.get_params().items()) if k not in UNFINGERPRINTED}
    params = json.loads(json.dumps(params, default=json_default))
    digest = hashlib.sha256()
    matrices = [
        seen,
        getattr(model, "user_features_", None),
        getattr(model, "item_features_", None),
    ]
    for matrix in [*matrices, validation]:
        if matrix is None:
            digest.update(b"none")
            continue
        matrix = sp.csr_matrix(matrix)
        digest.update(np.asarray(matrix.shape, np.int64).tobytes())
        for array in (matrix.indptr, matrix.indices):
            digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
        digest.update(np.ascontiguousarray(matrix.data, dtype=np.float32).tobytes())
    for id_map in (model.user_map_, model.item_map_):
        hashes = pd.util.hash_pandas_object(pd.Index(id_map.ids), index=False)
        digest.update(hashes.to_numpy().tobytes())
    return {"params": params, "data_sha256": digest.hexdigest()}


def check_fingerprint(saved: dict, current: dict, where: Path) -> None:
    """Raise when checkpoint ``where`` was written by a fit of other settings or data.

    Raises
    ------
    ParameterError
        Other hyper-parameters (the message names up to three).
    DataError
        Other training data.
    """
    before, now = saved.get("params", {}), current["params"]
    if before != now:
        differ = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
        shown = "; ".join(
            f"{k}={before.get(k)!r} there, {now.get(k)!r} here" for k in differ[:3]
        ) + (" ..." if len(differ) > 3 else "")
        raise ParameterError(
            f"{where}: written by a fit with other settings ({shown}); resume with the "
            "same settings, or train afresh into another directory"
        )
    if saved.get("data_sha256") != current["data_sha256"]:
        raise DataError(
            f"{where}: written for other training data (positives, ids, side features or "
            "validation positives differ); resume on the same data, or train afresh into "
            "another directory"
        )


def checkpoint_names(directory: Path) -> list[tuple[int, Path]]:
    """``(epoch, path)`` of every checkpoint in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found = [
        (int(match[1]), path)
        for path in directory.iterdir()
        if (match := _NAME.match(path.name)) and path.is_dir()
    ]
    return sorted(found)


def prepare_directory(settings: CheckpointSettings) -> Checkpoint | None:
    """Check the checkpoint directory before a fit; the checkpoint to resume from.

    Removes staging directories a killed writer left behind. Without ``resume``, a
    directory that holds checkpoints is refused: they are another fit's.
    """
    directory = settings.directory
    if directory.exists() and not directory.is_dir():
        raise ParameterError(f"checkpoint_dir {directory}: exists and is not a directory")
    if directory.is_dir():
        for leftover in directory.glob(".epoch-*"):
            shutil.rmtree(leftover, ignore_errors=True)
    if settings.resume:
        return latest_checkpoint(directory)
    if (directory / LATEST_FILE).exists() or checkpoint_names(directory):
        raise ParameterError(
            f"{directory}: holds the checkpoints of another fit; pass resume=True to continue "
            "it (tripletrec train --resume), or use an empty directory"
        )
    return None


def write_checkpoint(
    directory: Path, epoch: int, tensors: dict[str, torch.Tensor], meta: dict, keep: int = KEEP
) -> Path:
    """Write checkpoint ``epoch-NNNN`` atomically, point ``latest.json`` at it, prune."""
    target = directory / f"epoch-{epoch:04d}"
    staging = staging_directory(target)
    try:
        plain = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
        save_file(plain, str(staging / STATE_FILE))
        os.chmod(staging / STATE_FILE, file_mode())  # safetensors makes it owner-only
        payload = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "library_version": __version__,
            "epoch": epoch,
            **meta,
            "state_sha256": sha256_of_file(staging / STATE_FILE),
        }
        write_json_atomic(staging / META_FILE, payload)
        replace_directory(staging, target)  # an existing one of the same epoch is replaced
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    write_json_atomic(directory / LATEST_FILE, {"checkpoint": target.name, "epoch": epoch})
    for _, old in checkpoint_names(directory)[:-keep]:
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    return target


def latest_checkpoint(directory: Path) -> Checkpoint | None:
    """The checkpoint ``latest.json`` names, read and checked; None when there is none.

    Raises
    ------
    ModelFileError
        If the pointer or the checkpoint is damaged (corrupt JSON, a missing file, a
        checksum mismatch) or of another format version.
    """
    pointer = directory / LATEST_FILE
    if not pointer.is_file():
        return None
    name = read_json_object(pointer, ModelFileError).get("checkpoint")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ModelFileError(f"{pointer}: does not name a checkpoint")
    return read_checkpoint(directory / name)


def read_checkpoint(path: Path) -> Checkpoint:
    """The checkpoint in directory ``path``, its checksum and format checked."""
    meta_path, state_path = path / META_FILE, path / STATE_FILE
    if not meta_path.is_file() or not state_path.is_file():
        raise ModelFileError(f"{path}: not a complete checkpoint ({META_FILE}, {STATE_FILE})")
    meta = read_json_object(meta_path, ModelFileError)
    if meta.get("format") != FORMAT_NAME or meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{meta_path}: not a {FORMAT_NAME} file of version {FORMAT_VERSION} "
            f"(found {meta.get('format')!r} version {meta.get('format_version')!r})"
        )
    if sha256_of_file(state_path) != meta.get("state_sha256"):
        raise ModelFileError(f"{state_path}: checksum mismatch (the file is corrupt or truncated)")
    try:
        tensors = load_file(str(state_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"{state_path}: unreadable ({first_line(exc)})") from exc
    for key in ("epoch", "history", "optimizer", "numpy_rng", "fingerprint"):
        if key not in meta:
            raise ModelFileError(f"{meta_path}: missing field {key!r}")
    return Checkpoint(path, meta, tensors)


def checkpoint_meta(
    *,
    kind: str,
    final: bool,
    steps_done: int,
    epochs: int,
    history: list[dict],
    fit_seconds: float,
    fingerprint: dict,
    state_meta: dict[str, Any],
) -> dict:
    """The JSON of a checkpoint besides what :func:`write_checkpoint` adds."""
    return {
        "kind": kind,
        "final": final,
        "epochs": epochs,
        "steps_done": steps_done,
        "fit_seconds": fit_seconds,
        "history": history,
        "fingerprint": fingerprint,
        **state_meta,
    }
