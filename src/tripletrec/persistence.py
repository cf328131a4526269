"""Saving and loading fitted recommenders, without pickle.

A model directory holds:

``model.json``
    Format name and version, library version, estimator class and hyper-parameters, the
    raw user and item ids (index order), item metadata, training metrics, and the SHA-256
    of the weights file.
``weights.safetensors``
    Every array of the fitted state (network weights, the users' seen items) in the
    safetensors format, which stores bare tensors and cannot execute code when read.

Writes are atomic: the directory is written under a temporary name and renamed into place,
so a crash never leaves a half-written model where a loader looks. Loading checks the
format version, the checksum and every shape, and raises :class:`ModelFileError` naming
what is wrong.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from tripletrec.data.interactions import IdMap
from tripletrec.exceptions import ModelFileError
from tripletrec.models.base import RecommenderBase

FORMAT_NAME = "tripletrec-model"
FORMAT_VERSION = 1
MODEL_FILE = "model.json"
WEIGHTS_FILE = "weights.safetensors"

#: Hyper-parameters added after files of this format were first written, per estimator,
#: with the value that gives a file saved without them the behaviour it had when saved
#: (the constructor's default may have moved since).
PARAMS_ADDED_LATER: dict[str, dict[str, Any]] = {
    "TripletRecommender": {"ranking_bias_scale": 1.0, "feature_weight": 1.0},
}


def _estimators() -> dict[str, type[RecommenderBase]]:
    # Imported here: the estimator modules import this one for their save/load methods.
    from tripletrec.models.baselines import (
        ItemKNNRecommender,
        PopularityRecommender,
        RandomRecommender,
    )
    from tripletrec.models.triplet import TripletRecommender

    return {
        "TripletRecommender": TripletRecommender,
        "RandomRecommender": RandomRecommender,
        "PopularityRecommender": PopularityRecommender,
        "ItemKNNRecommender": ItemKNNRecommender,
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, default_file_mode())  # mkstemp makes files private (0600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | Path, payload: Any) -> None:
    """Write ``payload`` as JSON to ``path`` through a temporary file and a rename."""
    write_text_atomic(path, json.dumps(payload, indent=2, default=_json_default) + "\n")


def default_file_mode() -> int:
    """The mode ``open()`` would give a new file: 0666 less the process umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, set)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def save_model(
    model: RecommenderBase,
    path: str | Path,
    *,
    metrics: dict | None = None,
    extra_json: dict[str, Any] | None = None,
) -> Path:
    """Save a fitted ``model`` to directory ``path``, replacing it atomically.

    Parameters
    ----------
    model : RecommenderBase
        A fitted recommender.
    path : str or Path
        The model directory. An existing directory is replaced only if it is a model
        directory (has ``model.json``) or empty.
    metrics : dict, optional
        Evaluation results to keep with the model.
    extra_json : dict, optional
        More JSON files to write into the directory in the same atomic step, by file name.

    Returns
    -------
    Path
        The model directory.
    """
    from tripletrec import __version__

    model._check_fitted()
    path = Path(path)
    if path.exists() and (
        not path.is_dir() or (any(path.iterdir()) and not (path / MODEL_FILE).exists())
    ):
        raise ModelFileError(
            f"{path}: exists and is not a tripletrec model directory; not overwriting"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        state = {name: np.ascontiguousarray(a) for name, a in model._get_state().items()}
        save_file(state, str(staging / WEIGHTS_FILE))
        metadata = model.item_metadata_
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "library_version": __version__,
            "estimator": type(model).__name__,
            "params": model.get_params(),
            "n_users": model.n_users_,
            "n_items": model.n_items_,
            "user_ids": model.user_map_.to_list(),
            "item_ids": model.item_map_.to_list(),
            "item_metadata": None
            if metadata is None
            else json.loads(metadata.to_json(orient="split")),
            "metrics": metrics or {},
            "fit": model._fit_summary(),
            "weights_sha256": _sha256(staging / WEIGHTS_FILE),
        }
        write_json_atomic(staging / MODEL_FILE, manifest)
        for name, payload in (extra_json or {}).items():
            write_json_atomic(staging / name, payload)
        _replace_directory(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def _replace_directory(new: Path, target: Path) -> None:
    if not target.exists():
        os.replace(new, target)
        return
    # A directory cannot be renamed over a non-empty one: move the old one aside first.
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.replace(target, retired)
    os.replace(new, target)
    shutil.rmtree(retired, ignore_errors=True)


def read_json_object(path: Path, error: type[Exception]) -> dict:
    """The JSON object in file ``path``; ``error`` names the file when it is anything else."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: corrupt JSON ({exc})") from exc
    if not isinstance(payload, dict):
        raise error(f"{path}: expected a JSON object")
    return payload


def read_manifest(path: str | Path) -> dict:
    """The validated ``model.json`` of model directory ``path``."""
    path = Path(path)
    manifest_path = path / MODEL_FILE
    if not path.is_dir():
        raise ModelFileError(f"{path}: no such model directory")
    if not manifest_path.is_file():
        raise ModelFileError(f"{path}: not a model directory (no {MODEL_FILE})")
    manifest = read_json_object(manifest_path, ModelFileError)
    if manifest.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{manifest_path}: not a {FORMAT_NAME} file")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"{manifest_path}: format version {version!r} is not supported "
            f"(this tripletrec reads version {FORMAT_VERSION})"
        )
    required = (
        "estimator",
        "params",
        "n_users",
        "n_items",
        "user_ids",
        "item_ids",
        "weights_sha256",
    )
    missing = [key for key in required if key not in manifest]
    if missing:
        raise ModelFileError(f"{manifest_path}: missing field(s) {', '.join(missing)}")
    return manifest


def load_model(path: str | Path) -> RecommenderBase:
    """Load a model directory written by :func:`save_model`.

    Raises
    ------
    ModelFileError
        If the directory is missing, of another format or version, truncated, corrupt
        (checksum mismatch), or its arrays do not fit the declared shapes.
    """
    path = Path(path)
    manifest = read_manifest(path)
    weights_path = path / WEIGHTS_FILE
    if not weights_path.is_file():
        raise ModelFileError(f"{path}: missing {WEIGHTS_FILE}")
    if _sha256(weights_path) != manifest["weights_sha256"]:
        raise ModelFileError(
            f"{weights_path}: checksum mismatch (the file is corrupt or truncated)"
        )
    estimator_cls = _estimators().get(manifest["estimator"])
    if estimator_cls is None:
        raise ModelFileError(f"{path}: unknown estimator {manifest['estimator']!r}")
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"{weights_path}: unreadable ({exc})") from exc

    try:
        # JSON has no tuples: sequence hyper-parameters come back as lists.
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in manifest["params"].items()}
        params = {**PARAMS_ADDED_LATER.get(manifest["estimator"], {}), **params}
        model = estimator_cls(**params)
    except TypeError as exc:
        raise ModelFileError(
            f"{path}: parameters do not fit {manifest['estimator']} ({exc})"
        ) from exc
    user_ids, item_ids = manifest["user_ids"], manifest["item_ids"]
    if len(user_ids) != manifest["n_users"] or len(item_ids) != manifest["n_items"]:
        raise ModelFileError(f"{path}: id lists do not match n_users / n_items")
    model.user_map_ = IdMap(user_ids, "user")
    model.item_map_ = IdMap(item_ids, "item")
    metadata = manifest.get("item_metadata")
    model.item_metadata_ = (
        None
        if metadata is None
        else pd.read_json(io.StringIO(json.dumps(metadata)), orient="split")
    )
    model.metrics_ = manifest.get("metrics", {})
    try:
        model._set_state(state, manifest.get("fit", {}))
    except (KeyError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: weights do not match the model ({exc})") from exc
    return model
