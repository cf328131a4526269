"""``tripletrec train`` and ``tripletrec tune``: run configurations from flags, and fitting.

``train --resume`` (continuing a killed run, or ``fit_partial`` on new data) is in
:mod:`tripletrec.cli.resume`; the run directory's layout in :mod:`tripletrec.cli.runs`.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from functools import partial
from pathlib import Path
from typing import Any

from tripletrec._checks import positive_int
from tripletrec._system import peak_rss_bytes, reuse_freed_memory
from tripletrec.cli.model_flags import CLI_DEFAULTS, given_model_params
from tripletrec.cli.outlock import output_lock
from tripletrec.cli.progress import is_quiet, note, progress_enabled
from tripletrec.cli.runs import CHECKPOINTS, refuse_data_parallel, save_run, start_run_directory
from tripletrec.config import DataSpec, RunConfig
from tripletrec.data.splits import validation_split
from tripletrec.evaluation.metrics import metric_key, parse_metric
from tripletrec.evaluation.protocols import evaluate, evaluation_users
from tripletrec.exceptions import TripletrecError
from tripletrec.models.base import RecommenderBase
from tripletrec.models.index_level import PARTS_KEY, RESOLVED_KEY
from tripletrec.models.triplet.distributed import DataParallel
from tripletrec.report import write_run_report
from tripletrec.training.distributed import launched_by_torchrun


def run_config(args: argparse.Namespace) -> RunConfig:
    """The run that the data, split and model flags describe, over ``--config`` if given."""
    config = RunConfig.read(args.config) if args.config else RunConfig()
    estimator = getattr(args, "estimator", None)
    if estimator is not None and estimator != config.estimator:
        if args.config:
            raise TripletrecError(
                f"--estimator {estimator}: {args.config} is a run of {config.estimator}; "
                "give --config or --estimator, not both"
            )
        config.estimator, config.model = estimator, {}
    if args.data is not None:
        config.data = DataSpec(source=args.data)
    for key, value in data_flags(args).items():
        setattr(config.data, key, value)
    if config.data.rating_col is not None and config.data.threshold is None:
        raise TripletrecError("--rating-col needs --threshold: which ratings are positives?")
    config.data = config.data.resolved()
    if args.test_size is not None:
        config.split.test_size = args.test_size
    if args.split_seed is not None:
        config.split.random_state = args.split_seed
    if args.validation_fraction is not None:
        config.split.validation_fraction = args.validation_fraction
    if args.sparse_gradients is not None:
        config.training.sparse_gradients = args.sparse_gradients
    estimator_cls = config.estimator_class()
    if args.preset:
        from_preset = getattr(estimator_cls, "from_preset", None)
        if from_preset is None:
            raise TripletrecError(
                f"--preset names TripletRecommender settings; {config.estimator} has no presets"
            )
        config.model = from_preset(args.preset).get_params()
    apply_model_flags(config, given_model_params(args, estimator_cls))
    return config


def apply_model_flags(config: RunConfig, given: dict[str, Any]) -> None:
    """Put the model flags given into the run's parameters (a part's settings merged into
    the part's mapping), then the command line's defaults (:data:`CLI_DEFAULTS`) where the
    config has none."""
    model, estimator = config.model, config.estimator_class()
    for name, value in given.items():
        part = name in estimator.part_settings
        model[name] = {**(model.get(name) or {}), **value} if part else value
    for name, value in CLI_DEFAULTS.items():
        if name in estimator._param_names():
            model.setdefault(name, value)


def refuse_unsupported_options(
    config: RunConfig, model: RecommenderBase, args: argparse.Namespace
) -> None:
    """What the run asks of the estimator that its capabilities do not declare: one clear
    error line. An estimator that does not train in epochs holds no validation part out:
    its fit follows no metric (``config`` says so)."""
    asked = {
        "--checkpoint-every": ("checkpoints", args.checkpoint_every is not None),
        "--features": ("side_features", config.data.features),
        "--sparse-gradients": ("data_parallel", config.training.sparse_gradients),
        "torchrun": ("data_parallel", launched_by_torchrun()),
        "--validation-fraction": ("epochs", bool(args.validation_fraction)),
    }
    for option, (capability, wanted) in asked.items():
        if wanted:
            model.require(capability, option)
    if not model.capabilities().epochs:
        config.split.validation_fraction = 0.0


def with_progress(model: RecommenderBase, args: argparse.Namespace) -> RecommenderBase:
    """``model`` with a progress bar unless ``--quiet`` (for estimators that draw one)."""
    if "verbose" in model._param_names():
        model.set_params(verbose=progress_enabled(args))
    return model


def data_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`DataSpec` fields that the data flags give (those not given left out;
    a command without ``--features`` gives none)."""
    given = {
        "path": args.data_path,
        "user_col": args.user_col,
        "item_col": args.item_col,
        "rating_col": args.rating_col,
        "threshold": args.threshold,
        "inclusive": args.inclusive,
        "features": getattr(args, "features", None),
    }
    return {key: value for key, value in given.items() if value is not None}


def metric_names(text: str) -> tuple[str, ...]:
    """Canonical names of a comma-separated metric list."""
    names = tuple(metric_key(*parse_metric(n.strip())) for n in text.split(",") if n.strip())
    if not names:
        raise TripletrecError("--metrics names no metric")
    return names


def _evaluation_users(args: argparse.Namespace, n_items: int) -> int | None:
    """The test users to rank the catalogue for, at most: ``--evaluation-users`` (0: all),
    else :func:`~tripletrec.evaluation.protocols.evaluation_users` of the catalogue."""
    given = getattr(args, "evaluation_users", None)
    if given is None:
        return evaluation_users(n_items)
    if given < 0:
        raise TripletrecError(f"--evaluation-users must be 0 (all) or more, got {given}")
    return given or None


def _evaluated(results: dict) -> str:
    """``"N users"``, or ``"N sampled of M users"``."""
    n, of = results["n_users"], results["n_test_users"]
    return f"{n:,} users" if n == of else f"{n:,} sampled of {of:,} users"


def cmd_train(args: argparse.Namespace) -> int:
    reuse_freed_memory()  # this process trains: steps free and rebuild large temporaries
    if args.resume is not None:
        from tripletrec.cli.resume import cmd_resume

        return cmd_resume(args)
    if args.new_data is not None:
        raise TripletrecError("--data names new positives for --resume DIR; give the data first")
    config = run_config(args)
    model = with_progress(config.build_model(), args)
    refuse_unsupported_options(config, model, args)
    every = None
    if args.checkpoint_every is not None:
        if not args.out:
            raise TripletrecError(
                "--checkpoint-every needs --out: checkpoints go to OUT/checkpoints"
            )
        every = positive_int("--checkpoint-every", args.checkpoint_every)
    names = metric_names(args.metrics)
    fraction = config.split.validation_fraction
    if not 0.0 <= fraction < 1.0:
        raise TripletrecError(f"--validation-fraction must be in [0, 1), got {fraction}")
    # Under torchrun every process trains its shard; rank 0 alone evaluates and saves.
    parallel = None
    if model.capabilities().data_parallel:
        sparse = config.training.sparse_gradients
        parallel = DataParallel.from_environment(model.device, sparse_gradients=sparse)
    out = Path(args.out) if args.out else None
    saves = out is not None and (parallel is None or parallel.is_main)
    # Taken before the data is loaded: a second training into the same directory fails
    # at once, and the first one's model is never overwritten half-way by another run.
    with output_lock(out) if saves else contextlib.nullcontext():
        if out is not None and every is not None:
            refuse_data_parallel(parallel)
            start_run_directory(out, config, every)
        return train_run(args, config, names, model, parallel, out, checkpoint_every=every)


def train_run(
    args: argparse.Namespace,
    config: RunConfig,
    names: tuple[str, ...],
    model: RecommenderBase,
    parallel: DataParallel | None,
    out: Path | None,
    *,
    checkpoint_every: int | None = None,
    resume: bool = False,
) -> int:
    """Fit (checkpointed under ``out`` with ``checkpoint_every``; ``resume``: from the
    latest checkpoint), evaluate on the test split, save to ``out``."""
    started = time.perf_counter()
    data, train, test = config.prepare()
    prepare_seconds = time.perf_counter() - started
    fraction = config.split.validation_fraction
    fit = model.fit if parallel is None else partial(parallel.fit, model)
    features = config.data.side_features(data)
    if out is not None and checkpoint_every is not None:
        features |= {
            "checkpoint_dir": out / CHECKPOINTS,
            "checkpoint_every": checkpoint_every,
            "resume": resume,
        }
    validation = None
    if fraction > 0:
        fit_part, validation = validation_split(train, fraction, config.split.random_state)
        fit(fit_part, validation=validation, **features)
    else:
        fit(train, **features)
    if parallel is not None:
        parallel.close()
        if not parallel.is_main:
            return 0
    # Test rankings exclude the whole train part, validation rows included.
    started = time.perf_counter()
    results = evaluate(
        model, train, test, names, progress=progress_enabled(args),
        max_users=_evaluation_users(args, model.n_items_), random_state=config.split.random_state,
    )  # fmt: skip
    evaluate_seconds = time.perf_counter() - started
    metrics = {
        **{name: results[name] for name in names},
        "fit_seconds": model.fit_seconds_,
        "prepare_seconds": prepare_seconds,
        "evaluate_seconds": evaluate_seconds,
        "n_users": data.n_users,
        "n_items": data.n_items,
        "n_train_positives": len(train),
        "n_test_positives": len(test),
        "n_users_evaluated": results["n_users"],
        "n_test_users": results["n_test_users"],
        **_size_summary(model),
        "validation_fraction": fraction,
        "n_validation_positives": 0 if validation is None else len(validation),
        **({} if parallel is None else parallel.summary()),
        **_training_summary(model),
        "peak_rss_mb": peak_rss_bytes() / 2**20,
    }
    print(
        f"{config.data.source}: test AUC {metrics['auc']:.4f} over {_evaluated(results)} "
        f"({len(train):,} train / {len(test):,} test positives), fit {model.fit_seconds_:.2f} s"
    )
    for name in names:
        if name != "auc":
            print(f"  {name:<14} {metrics[name]:.4f}")
    if out is not None:
        config.model = model.get_params()
        if "verbose" in config.model:
            config.model["verbose"] = False
        # Epoch by epoch, for estimators trained in epochs.
        history = getattr(model, "history_", None)
        extra_json = {"metrics.json": metrics, "config.json": config.to_dict()}
        save_run(
            model,
            out,
            metrics=metrics,
            extra_json=extra_json | ({} if history is None else {"history.json": history}),
        )
        if history is not None:
            write_learning_curve(history, out / "learning_curve.png", args)
        # From what is in memory: the report reloads neither the model nor the data.
        write_run_report(out, model=model, data=data)
        print(f"saved model to {out}")
    return 0


def _size_summary(model: object) -> dict:
    """The number of learned parameters, for estimators that count them."""
    n_parameters = getattr(model, "n_parameters_", None)
    return {} if n_parameters is None else {"n_parameters": n_parameters}


def _training_summary(model: RecommenderBase) -> dict:
    """What metrics.json says of the training: the choices the fit resolved (``"auto"``
    settings: the negatives, loss kind and batch grouping of a factor model, the l2 an
    item-item part chose), its own and its parts'; nothing for an estimator without any."""

    def resolved(summary: dict) -> dict:
        parts = summary.get(PARTS_KEY, {}).values()
        return {k: v for part in parts for k, v in resolved(part["fit"]).items()} | dict(
            summary.get(RESOLVED_KEY, {})
        )

    choices = resolved(model.fit_summary())
    return {"training": choices} if choices else {}


def cmd_tune(args: argparse.Namespace) -> int:
    from tripletrec._files import write_json_atomic
    from tripletrec.tuning import default_search_space, tune

    config = run_config(args)
    config.build_model().require("tuning", "tune")
    fraction = config.split.validation_fraction
    if not 0.0 < fraction < 1.0:
        raise TripletrecError(f"tune needs --validation-fraction in (0, 1), got {fraction}")
    if args.trials < 1:
        raise TripletrecError(f"--trials must be at least 1, got {args.trials}")
    if args.timeout is not None and not 0 < args.timeout < float("inf"):
        raise TripletrecError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    out = Path(args.out)
    trial_log = out.parent / "tuning.json"
    if out.resolve() == trial_log.resolve():
        raise TripletrecError("--out cannot be tuning.json: that name is the trial log's")
    # A model flag given on the command line is the user's choice: hold it fixed.
    fixed = set(given_model_params(args, config.estimator_class()))
    space = {k: v for k, v in default_search_space(config.model).items() if k not in fixed}
    result = tune(
        config, n_trials=args.trials, timeout_seconds=args.timeout, metric=args.metric,
        validation_fraction=fraction, random_state=config.split.random_state,
        search_space=space, verbose=not is_quiet(args), progress=progress_enabled(args),
    )  # fmt: skip
    write_json_atomic(out, result.best_config.to_dict())
    write_json_atomic(trial_log, result.summary())
    print(
        f"{config.data.source}: best validation {result.metric} {result.best_value:.4f} "
        f"after {len(result.trials)} trial(s) in {result.seconds:.1f} s "
        f"({result.n_fit:,} fit / {result.n_validation:,} validation positives)"
    )
    for name, value in result.best_params.items():
        print(f"  {name:<14} {value:.4g}" if isinstance(value, float) else f"  {name:<14} {value}")
    print(f"wrote {out} and {trial_log}; train it with: tripletrec train --config {out}")
    return 0


def write_learning_curve(history: list[dict], path: Path, args: argparse.Namespace) -> None:
    from tripletrec.plots import plot_learning_curve

    if plot_learning_curve(history, path) is None:
        note(
            args,
            f"matplotlib is not installed, so no {path.name} (pip install tripletrec[plot])",
        )
