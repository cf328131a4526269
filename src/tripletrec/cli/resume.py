"""``tripletrec train --resume DIR``: continue a killed run, or train a finished one on.

* ``train --resume DIR`` continues the checkpointed run in ``DIR`` (see
  :mod:`tripletrec.cli.runs`) from its latest checkpoint, with ``DIR/config.json``: the
  same data, split and settings, so the model is the one the uninterrupted run would have
  saved. A run whose final checkpoint exists is rebuilt from it, without training.
* ``train --resume DIR --data NEW_FILE`` loads the finished model in ``DIR`` and runs
  ``fit_partial`` on the file's positives (:mod:`tripletrec.models.triplet.incremental`),
  continuing from the optimiser state of ``DIR``'s final checkpoint when it has one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tripletrec._checks import positive_int
from tripletrec.cli.model_flags import given_model_params
from tripletrec.cli.outlock import output_lock
from tripletrec.cli.progress import progress_enabled
from tripletrec.cli.runs import (
    CHECKPOINTS,
    CONFIG_FILE,
    checkpoint_every_of,
    refuse_data_parallel,
    save_run,
)
from tripletrec.cli.training import metric_names, train_run, write_learning_curve
from tripletrec.config import DEFAULT_ESTIMATOR, DataSpec, RunConfig, estimator_class
from tripletrec.exceptions import TripletrecError
from tripletrec.models.triplet.distributed import DataParallel
from tripletrec.persistence import MODEL_FILE, load_model
from tripletrec.report import write_run_report
from tripletrec.training.checkpoints import latest_checkpoint
from tripletrec.training.distributed import launched_by_torchrun

#: Flags that describe a new run; a resumed one has its own (DIR/config.json).
_RUN_FLAGS = (
    "data", "config", "data_path", "features", "test_size", "split_seed", "preset",
    "validation_fraction", "sparse_gradients", "out",
)  # fmt: skip
#: Flags that describe the new data of ``--resume DIR --data FILE``.
_DATA_FLAGS = ("user_col", "item_col", "rating_col", "threshold", "inclusive")


def cmd_resume(args: argparse.Namespace) -> int:
    directory = Path(args.resume)
    if launched_by_torchrun():  # every rank would write DIR; checkpoints are one process's
        raise TripletrecError("--resume is not supported under torchrun; run it in one process")
    config_path = directory / CONFIG_FILE
    estimator = (
        RunConfig.read(config_path).estimator_class()
        if config_path.is_file()
        else estimator_class(DEFAULT_ESTIMATOR)
    )
    given = [name for name in _RUN_FLAGS if getattr(args, name, None) is not None]
    model_flags = set(given_model_params(args, estimator)) - (
        {"epochs"} if args.new_data else set()
    )
    if args.new_data is None:
        given += [name for name in _DATA_FLAGS if getattr(args, name, None) is not None]
    if given or model_flags:
        shown = ", ".join(
            "a data argument" if name == "data" else "--" + name.replace("_", "-")
            for name in [*given, *sorted(model_flags)]
        )
        raise TripletrecError(
            f"--resume continues the run in {directory} with its own config.json; {shown} "
            "cannot change it (new positives: --data FILE, with its column flags and --epochs)"
        )
    if not config_path.is_file():
        raise TripletrecError(
            f"{directory}: no {CONFIG_FILE}; not a run directory of tripletrec train --out"
        )
    config = RunConfig.read(config_path)
    wanted = "checkpoints" if args.new_data is None else "fit_partial"
    config.build_model().require(wanted, f"--resume {directory}")
    with output_lock(directory):
        if args.new_data is not None:
            return _train_on(args, directory, config)
        return _continue(args, directory, config)


def _continue(args: argparse.Namespace, directory: Path, config: RunConfig) -> int:
    """Resume the checkpointed run in ``directory``."""
    checkpoints = directory / CHECKPOINTS
    every = checkpoint_every_of(directory)
    if every is None:
        raise TripletrecError(
            f"{directory}: has no checkpoints (it was trained without --checkpoint-every); "
            "nothing to resume"
        )
    if args.checkpoint_every is not None:
        every = positive_int("--checkpoint-every", args.checkpoint_every)
    model = config.build_model().set_params(verbose=progress_enabled(args))
    parallel = DataParallel.from_environment(
        model.device, sparse_gradients=config.training.sparse_gradients
    )
    refuse_data_parallel(parallel)
    latest = latest_checkpoint(checkpoints)
    if latest is None:
        print(f"{checkpoints}: no checkpoint yet; training from the first epoch")
    elif latest.final:
        print(f"{checkpoints}: training had finished; rebuilding the model from its checkpoint")
    else:
        print(f"{checkpoints}: resuming after epoch {latest.epoch} of {model.epochs}")
    names = metric_names(args.metrics)
    return train_run(
        args, config, names, model, parallel, directory, checkpoint_every=every, resume=True
    )


def _train_on(args: argparse.Namespace, directory: Path, config: RunConfig) -> int:
    """``fit_partial`` of the finished model in ``directory`` on the positives of
    ``--data``."""
    if not (directory / MODEL_FILE).is_file():
        raise TripletrecError(
            f"{directory}: holds no finished model ({MODEL_FILE}); resume the killed training "
            f"first (tripletrec train --resume {directory}), then add data"
        )
    if config.training.sparse_gradients:
        raise TripletrecError(
            "--resume --data trains with dense gradients; this run used --sparse-gradients"
        )
    spec = DataSpec(source=args.new_data)
    for key in _DATA_FLAGS:
        if getattr(args, key) is not None:
            setattr(spec, key, getattr(args, key))
    if spec.rating_col is not None and spec.threshold is None:
        raise TripletrecError("--rating-col needs --threshold: which ratings are positives?")
    spec = spec.resolved()
    positives = spec.positives(spec.load())
    # A copy, not a map: training goes on from these arrays, and the result replaces the
    # very directory they were read from.
    model = load_model(directory, mmap=False).set_params(verbose=progress_enabled(args))
    checkpoints = directory / CHECKPOINTS
    if latest_checkpoint(checkpoints) is None:
        print(
            f"{directory}: no checkpoint, so the optimiser starts afresh (a run trained with "
            "--checkpoint-every keeps its state)"
        )
    epochs = given_model_params(args, type(model)).get("epochs")
    model.fit_partial(positives, epochs=epochs, checkpoint_dir=checkpoints)
    added = model.partial_fit_
    metrics = dict(model.metrics_)
    metrics.setdefault("partial_fits", []).append(
        {"data": spec.source, **added, "fit_seconds": model.fit_seconds_}
    )
    print(
        f"{spec.source}: {added['n_positives']:,} positives ({added['n_new_users']:,} new "
        f"users, {added['n_new_items']:,} new items), {added['epochs']} epochs over "
        f"{model.seen_.nnz:,} positives in {model.fit_seconds_:.2f} s; metrics.json keeps "
        "the first fit's test metrics (tripletrec evaluate re-scores)"
    )
    save_run(
        model,
        directory,
        metrics=metrics,
        extra_json={
            "metrics.json": metrics,
            CONFIG_FILE: config.to_dict(),
            "history.json": model.history_,
        },
    )
    write_learning_curve(model.history_, directory / "learning_curve.png", args)
    # The data summary is of the data config.json names: the run's first fit.
    write_run_report(directory, model=model)
    print(f"saved model to {directory}")
    return 0
