"""The run directory of ``tripletrec train --out DIR`` when it is checkpointed.

A checkpointed run writes ``DIR/config.json`` and ``DIR/checkpoints/run.json`` (the
checkpoint interval) before it trains, so that ``train --resume DIR`` knows the run and its
settings even if it is killed before the first checkpoint; then it checkpoints under
``DIR/checkpoints/`` while it trains (:mod:`tripletrec.training.checkpoints`), and at the
end saves the model into ``DIR`` keeping the checkpoints: the final one holds the
optimiser state that ``train --resume DIR --data NEW`` (``fit_partial``) continues from.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from tripletrec._files import (
    read_json_object,
    replace_directory,
    staging_directory,
    write_json_atomic,
)
from tripletrec.config import RunConfig
from tripletrec.exceptions import TripletrecError
from tripletrec.models.base import RecommenderBase
from tripletrec.models.triplet.distributed import DataParallel
from tripletrec.persistence import MODEL_FILE

CHECKPOINTS = "checkpoints"
CONFIG_FILE = "config.json"
#: In ``DIR/checkpoints``: how the command line checkpoints the run.
RUN_FILE = "run.json"


def refuse_data_parallel(parallel: DataParallel | None) -> None:
    """Checkpoints and resuming are for one process: refuse a torchrun job up front."""
    if parallel is not None and parallel.context.distributed:
        raise TripletrecError(
            "--checkpoint-every and --resume are not supported under torchrun (each process "
            "has its own random stream); train in one process (--sparse-gradients works there)"
        )


def start_run_directory(out: Path, config: RunConfig, checkpoint_every: int) -> None:
    """Make ``out`` the directory of a new checkpointed run: its config and a checkpoint
    directory without checkpoints (those of a run trained there before are removed: this
    run replaces it)."""
    if out.exists():
        if not out.is_dir():
            raise TripletrecError(f"--out {out}: exists and is not a directory")
        names = {path.name for path in out.iterdir()}
        if names and MODEL_FILE not in names and not names <= {CONFIG_FILE, CHECKPOINTS}:
            raise TripletrecError(
                f"--out {out}: exists and is not a tripletrec run directory; not overwriting"
            )
        shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    (out / CHECKPOINTS).mkdir(parents=True)
    write_json_atomic(out / CHECKPOINTS / RUN_FILE, {"checkpoint_every": checkpoint_every})
    write_json_atomic(out / CONFIG_FILE, config.to_dict())


def checkpoint_every_of(out: Path) -> int | None:
    """The checkpoint interval of the run in ``out`` (None: not a checkpointed run)."""
    path = out / CHECKPOINTS / RUN_FILE
    if not path.is_file():
        return None
    every = read_json_object(path, TripletrecError).get("checkpoint_every")
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise TripletrecError(f"{path}: checkpoint_every must be a positive integer")
    return every


def save_run(
    model: RecommenderBase, out: Path, *, metrics: dict, extra_json: dict[str, Any]
) -> None:
    """Save ``model`` into run directory ``out`` atomically, keeping ``out/checkpoints``.

    The new directory is built beside ``out`` with the checkpoints hard-linked into it
    (copied where links are not possible), then swapped in: a crash leaves ``out`` as it
    was, checkpoints included.
    """
    checkpoints = out / CHECKPOINTS
    if not checkpoints.is_dir():
        model.save(out, metrics=metrics, extra_json=extra_json)
        return
    fresh = staging_directory(out)
    try:
        model.save(fresh, metrics=metrics, extra_json=extra_json)
        shutil.copytree(checkpoints, fresh / CHECKPOINTS, copy_function=_link_or_copy)
        replace_directory(fresh, out)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
