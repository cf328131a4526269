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

Loading memory-maps the weights by default (:mod:`tripletrec._safetensors_mmap`): the
model's large arrays are read-only views of the file, so every process that loads the same
directory (the workers of ``tripletrec serve --workers N``) shares one copy of them in the
page cache. A later save replaces the directory by a rename, which leaves the old file alive
for as long as a process still maps it.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from hashlib import sha256
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from tripletrec import _registry
from tripletrec._checks import printable
from tripletrec._files import (
    file_mode,
    json_lists_to_tuples,
    read_json_object,
    replace_directory,
    sha256_of_file,
    staging_directory,
    write_json_atomic,
)
from tripletrec._safetensors_mmap import map_safetensors
from tripletrec._version import __version__
from tripletrec.data.interactions import IdMap
from tripletrec.exceptions import ModelFileError, TripletrecError, first_line
from tripletrec.models.base import RecommenderBase

FORMAT_NAME = "tripletrec-model"
FORMAT_VERSION = 1
MODEL_FILE = "model.json"
WEIGHTS_FILE = "weights.safetensors"

#: The JSON type of each manifest field (optional ones may be absent). ``model.json`` has
#: no checksum, so a damaged or hand-edited one is checked field by field.
MANIFEST_TYPES: dict[str, tuple[type, ...]] = {
    "estimator": (str,),
    "params": (dict,),
    "n_users": (int,),
    "n_items": (int,),
    "user_ids": (list,),
    "item_ids": (list,),
    "weights_sha256": (str,),
    "item_metadata": (dict, type(None)),
    "metrics": (dict,),
    "fit": (dict,),
}
_JSON_NAMES = {str: "string", dict: "object", int: "integer", list: "array", type(None): "null"}

#: What restoring a model from fields that passed the type checks can still raise, when
#: their values do not fit the weights or each other (a damaged or edited file).
_RESTORE_ERRORS = (
    KeyError,
    IndexError,
    ValueError,
    TypeError,
    AttributeError,
    RuntimeError,
    OverflowError,
    TripletrecError,
)


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
    model._check_fitted()
    path = Path(path)
    if path.exists() and (
        not path.is_dir() or (any(path.iterdir()) and not (path / MODEL_FILE).exists())
    ):
        raise ModelFileError(
            f"{printable(path)}: exists and is not a tripletrec model directory; not overwriting"
        )
    staging = staging_directory(path)
    try:
        state = {name: np.ascontiguousarray(a) for name, a in model._get_state().items()}
        save_file(state, str(staging / WEIGHTS_FILE))
        # safetensors creates the file readable by its owner only; a model directory is
        # meant to be shared like every other output (0666 less the umask).
        os.chmod(staging / WEIGHTS_FILE, file_mode())
        metadata = model.item_metadata_
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "library_version": __version__,
            "estimator": type(model).__name__,
            # Where the class is defined, for the error message of a loader that has not
            # imported it (loading never imports a module a file names: files run no code).
            "estimator_module": type(model).__module__,
            "params": model.get_params(),
            "n_users": model.n_users_,
            "n_items": model.n_items_,
            "user_ids": model.user_map_.to_list(),
            "item_ids": model.item_map_.to_list(),
            "item_metadata": None
            if metadata is None
            else json.loads(metadata.to_json(orient="split")),
            "metrics": metrics or {},
            "fit": model.fit_summary(),
            "weights_sha256": sha256_of_file(staging / WEIGHTS_FILE),
        }
        write_json_atomic(staging / MODEL_FILE, manifest)
        for name, payload in (extra_json or {}).items():
            write_json_atomic(staging / name, payload)
        replace_directory(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def read_manifest(path: str | Path) -> dict:
    """The validated ``model.json`` of model directory ``path``."""
    path = Path(path)
    manifest_path = path / MODEL_FILE
    try:
        is_dir, has_manifest = path.is_dir(), manifest_path.is_file()
    except OSError as exc:  # a name too long for the file system, for one
        raise ModelFileError(f"{printable(path)}: cannot read ({first_line(exc)})") from exc
    if not is_dir:
        raise ModelFileError(f"{printable(path)}: no such model directory")
    if not has_manifest:
        raise ModelFileError(f"{printable(path)}: not a model directory (no {MODEL_FILE})")
    try:
        manifest = read_json_object(manifest_path, ModelFileError)
    except OSError as exc:  # not ModelFileError (an OSError too): permissions, I/O errors
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(
            f"{printable(manifest_path)}: cannot read ({first_line(exc)})"
        ) from exc
    if manifest.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{printable(manifest_path)}: not a {FORMAT_NAME} file")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"{printable(manifest_path)}: format version {version!r} is not supported "
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
        raise ModelFileError(f"{printable(manifest_path)}: missing field(s) {', '.join(missing)}")
    for key, types in MANIFEST_TYPES.items():
        value = manifest.get(key, None if type(None) in types else types[0]())
        # bool is an int to Python, not a count to JSON.
        if not isinstance(value, types) or (int in types and isinstance(value, bool)):
            wanted = " or ".join(_JSON_NAMES[t] for t in types)
            raise ModelFileError(
                f"{printable(manifest_path)}: field {key!r} must be a JSON {wanted}, "
                f"got {type(value).__name__}"
            )
    return manifest


def _id_map(manifest_path: Path, manifest: dict, side: str) -> IdMap:
    try:
        return IdMap(manifest[f"{side}_ids"], side)
    except (TypeError, TripletrecError) as exc:  # unhashable or repeated ids
        raise ModelFileError(
            f"{printable(manifest_path)}: {side}_ids is not a list of unique ids "
            f"({first_line(exc)})"
        ) from exc


def _check_digest(path: Path, handle: BinaryIO, expected: str) -> None:
    """Refuse the open weights file ``handle`` unless its SHA-256 is ``expected``."""
    digest = sha256()
    # Read through the page cache: the pages stay cached for the map that follows.
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
    if digest.hexdigest() != expected:
        raise ModelFileError(
            f"{printable(path)}: checksum mismatch (the file is corrupt or truncated)"
        )


def _estimator_class(path: Path, manifest: dict) -> type[RecommenderBase]:
    name = manifest["estimator"]
    estimator_cls = _registry.lookup(name) if isinstance(name, str) else None
    if estimator_cls is None:
        module = manifest.get("estimator_module")
        where = (
            f"import {module}" if isinstance(module, str) else "import the module that defines it"
        )
        raise ModelFileError(
            f"{printable(path)}: holds a {name!r}, which is not a known estimator; {where} before "
            "loading (a class is known once its module is imported)"
        )
    return estimator_cls


def load_model(path: str | Path, *, mmap: bool = True) -> RecommenderBase:
    """Load a model directory written by :func:`save_model`.

    Parameters
    ----------
    path : str or Path
        The model directory.
    mmap : bool, default True
        Memory-map the weights file: the model's arrays are read-only views of it, shared
        through the page cache with every other process that maps the same file. False
        copies every array into this process's memory (writeable). Both give the same
        arrays, byte for byte, so the same scores.

    Raises
    ------
    ModelFileError
        If the directory is missing, of another format or version, truncated, corrupt
        (checksum mismatch), its weights file's header is inconsistent, or its arrays do
        not fit the declared shapes.
    """
    path = Path(path)
    manifest = read_manifest(path)
    weights_path = path / WEIGHTS_FILE
    if not weights_path.is_file():
        raise ModelFileError(f"{printable(path)}: missing {WEIGHTS_FILE}")
    try:
        # One open file for the checksum and the map: the bytes mapped are the bytes
        # checked, even if a new save replaces the directory in between.
        with open(weights_path, "rb") as handle:
            _check_digest(weights_path, handle, manifest["weights_sha256"])
            if mmap:
                state = map_safetensors(weights_path, handle)
    except OSError as exc:
        if isinstance(exc, ModelFileError):  # a subclass of OSError
            raise
        raise ModelFileError(f"{printable(weights_path)}: cannot read ({first_line(exc)})") from exc
    estimator_cls = _estimator_class(path, manifest)
    if not mmap:
        try:
            state = load_file(str(weights_path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelFileError(
                f"{printable(weights_path)}: unreadable ({first_line(exc)})"
            ) from exc

    try:
        params = json_lists_to_tuples(manifest["params"])
        params = _registry.saved_params(manifest["estimator"], params)
        model = estimator_cls(**params)
    except (TypeError, ValueError) as exc:  # ValueError: ParameterError from a constructor
        raise ModelFileError(
            f"{printable(path)}: parameters do not fit {manifest['estimator']} ({first_line(exc)})"
        ) from exc
    user_ids, item_ids = manifest["user_ids"], manifest["item_ids"]
    if len(user_ids) != manifest["n_users"] or len(item_ids) != manifest["n_items"]:
        raise ModelFileError(f"{printable(path)}: id lists do not match n_users / n_items")
    manifest_path = path / MODEL_FILE
    model.user_map_ = _id_map(manifest_path, manifest, "user")
    model.item_map_ = _id_map(manifest_path, manifest, "item")
    metadata = manifest.get("item_metadata")
    try:
        model.item_metadata_ = (
            None
            if metadata is None
            else pd.read_json(io.StringIO(json.dumps(metadata)), orient="split")
        )
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise ModelFileError(
            f"{printable(manifest_path)}: item_metadata is not a table ({first_line(exc)})"
        ) from exc
    model.metrics_ = manifest.get("metrics", {})
    try:
        model._set_state(state, manifest.get("fit", {}))
    except _RESTORE_ERRORS as exc:
        raise ModelFileError(
            f"{printable(path)}: weights do not match the model ({first_line(exc)})"
        ) from exc
    return model
