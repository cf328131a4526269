"""The ``tripletrec`` command line: datasets -> train -> evaluate -> recommend.

Every user mistake (missing file or column, NaN ids, unknown user, ...) ends with one line
``tripletrec: error: ...`` on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from tripletrec.config import DataSpec, RunConfig, SplitSpec
from tripletrec.data.datasets import list_datasets
from tripletrec.data.parquet import peak_rss_bytes
from tripletrec.data.splits import validation_split
from tripletrec.evaluation.metrics import metric_key, parse_metric
from tripletrec.evaluation.protocols import evaluate, evaluate_sampled
from tripletrec.exceptions import TripletrecError, first_line
from tripletrec.models.triplet import PRESETS
from tripletrec.persistence import load_model, read_manifest
from tripletrec.training.distributed import DataParallel

DEFAULT_METRICS = ("auc", "precision@10", "recall@10", "ndcg@10", "map@10")
DEFAULT_SAMPLED_METRICS = ("hit_rate@10", "ndcg@10")


# Command-line flags that map one-to-one onto TripletRecommender parameters.
def _float_or_auto(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', not {text!r}") from None


_MODEL_FLAGS: dict[str, tuple[Callable[[str], Any], str]] = {
    "model": (str, "bilinear or deep"),
    "similarity": (str, "bilinear: cosine or dot"),
    "n_factors": (int, "bilinear: embedding dimension"),
    "ranking_bias_scale": (
        _float_or_auto,
        "bilinear: weight of the item bias when ranking, or auto (0.75 for the full softmax)",
    ),
    "feature_weight": (float, "with --features: weight of the features beside the identity"),
    "user_dim": (int, "deep: user embedding dimension"),
    "item_dim": (int, "deep: item embedding dimension"),
    "dropout": (float, "deep: dropout rate"),
    "dot_factors": (int, "deep: dimension of a dot product beside the MLP (NeuMF-style)"),
    "loss": (str, "margin, bpr, adaptive_hinge, warp or softmax"),
    "margin": (float, "margin of the hinge losses"),
    "negatives": (str, "uniform, exclude_positives, popularity or all (softmax only)"),
    "n_negatives": (int, "negatives drawn per positive"),
    "epochs": (int, "passes over the training positives"),
    "batch_size": (int, "triplets per step"),
    "learning_rate": (float, "Adam step size"),
    "l2": (float, "weight decay"),
    "max_norm": (float, "largest length of an embedding row (max-norm constraint)"),
    "lr_schedule": (str, "constant, linear or cosine (decay to zero over training)"),
    "patience": (int, "stop after this many epochs without validation improvement"),
    "random_state": (int, "seed (same seed, same model)"),
    "device": (str, "cpu or cuda"),
    "n_threads": (int, "CPU threads for training (1 when other jobs share the cores)"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tripletrec",
        description="Train, evaluate and query triplet-loss recommenders on implicit feedback.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    datasets = commands.add_parser(
        "datasets", help="list the bundled datasets; 'datasets synth' writes synthetic data"
    )
    _add_synth_arguments(datasets)

    train = commands.add_parser("train", help="train a model, report test metrics, save it")
    _add_run_arguments(
        train,
        validation_help="share of the train positives held out (seeded by --split-seed) to "
        "record validation AUC and NDCG@10 after every epoch; the model is fitted on the rest. "
        f"0 fits on every train positive and records the loss only (default "
        f"{SplitSpec.validation_fraction})",
    )
    train.add_argument(
        "--metrics", default=",".join(DEFAULT_METRICS), help="comma-separated metrics"
    )
    train.add_argument(
        "--out",
        help="directory for the model, metrics.json, config.json, history.json and "
        "learning_curve.png",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    tune = commands.add_parser(
        "tune", help="search hyper-parameters on a validation split, write the best config"
    )
    _add_run_arguments(
        tune,
        validation_help="share of the train positives held out (seeded by --split-seed) to "
        "score each trial; the test part is never used "
        f"(default {SplitSpec.validation_fraction})",
    )
    tune.add_argument("--trials", type=int, default=20, help="at most this many trials (20)")
    tune.add_argument(
        "--timeout",
        type=float,
        help="start no new trial after this many seconds (default: no limit)",
    )
    tune.add_argument("--metric", default="ndcg@10", help="validation metric to maximise (ndcg@10)")
    tune.add_argument(
        "--out",
        default="best_config.json",
        help="file for the best config, for 'train --config' (best_config.json); the trial "
        "log goes to tuning.json next to it",
    )
    tune.add_argument("--quiet", action="store_true", help="no line per trial")

    ev = commands.add_parser("evaluate", help="evaluate a saved model on its test split")
    ev.add_argument("model_dir")
    ev.add_argument(
        "--protocol",
        choices=("full", "sampled"),
        default="full",
        help="full: rank every item except the user's train positives (default); sampled: "
        "rank each test positive among --negatives sampled unseen items (NCF; can order "
        "models differently from full ranking)",
    )
    ev.add_argument(
        "--metrics",
        help="comma-separated metrics (default "
        f"{','.join(DEFAULT_METRICS)}; sampled: {','.join(DEFAULT_SAMPLED_METRICS)})",
    )
    ev.add_argument(
        "--negatives", type=int, default=99, help="sampled: negatives per test positive (99)"
    )
    ev.add_argument("--sample-seed", type=int, default=0, help="sampled: seed of the negatives (0)")
    ev.add_argument("--json", dest="json_out", help="also write the results to this JSON file")

    rec = commands.add_parser("recommend", help="top-k items for a user of a saved model")
    rec.add_argument("model_dir")
    rec.add_argument("--user", help="raw user id")
    rec.add_argument("-k", type=int, default=10, help="number of items (default 10)")
    rec.add_argument(
        "--keep-seen", action="store_true", help="do not filter the user's training items"
    )
    rec.add_argument("--json", action="store_true", help="print JSON instead of a table")
    rec.add_argument("--all", action="store_true", help="top-k for every user, to --out")
    rec.add_argument("--out", help="with --all: Parquet file (user_id, rank, item_id, score)")
    rec.add_argument(
        "--chunk-users", type=int, default=2048, help="with --all: users per chunk (2048)"
    )
    rec.add_argument("--quiet", action="store_true", help="with --all: no progress bar")

    serve = commands.add_parser("serve", help="serve a saved model over HTTP (FastAPI)")
    serve.add_argument("model_dir")
    serve.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument(
        "--watch", type=float, help="reload when the model directory changes, polling every N s"
    )
    serve.add_argument("--log-level", default="warning", help="uvicorn log level (warning)")

    index = commands.add_parser("index", help="build the approximate index of a saved model")
    index.add_argument("model_dir")
    index.add_argument("--n-lists", type=int, help="inverted lists (default about 2 sqrt(n))")
    index.add_argument("--nprobe", type=int, help="lists scanned per query (default n_lists/32)")
    index.add_argument("--seed", type=int, default=0, help="seed of the clustering (0)")
    return parser


def _add_synth_arguments(parser: argparse.ArgumentParser) -> None:
    """``datasets synth``: synthetic implicit feedback (see :mod:`tripletrec.data.synthetic`)."""
    actions = parser.add_subparsers(dest="datasets_action")
    synth = actions.add_parser(
        "synth",
        help="write synthetic implicit feedback (power-law popularity and activity, latent "
        "topics) to a Parquet file, reproducible by --seed",
    )
    synth.add_argument("--users", type=int, required=True, help="number of users")
    synth.add_argument("--items", type=int, required=True, help="number of items")
    synth.add_argument(
        "--interactions", type=int, required=True, help="distinct (user, item) rows, exactly"
    )
    synth.add_argument("--out", required=True, help="Parquet file to write (user_id, item_id)")
    synth.add_argument("--seed", type=int, default=0, help="seed (0)")
    synth.add_argument("--topics", type=int, default=32, help="latent topics (32)")
    synth.add_argument(
        "--item-exponent", type=float, default=0.8, help="Zipf exponent of item popularity (0.8)"
    )
    synth.add_argument(
        "--user-exponent", type=float, default=0.5, help="Zipf exponent of user activity (0.5)"
    )


def _add_run_arguments(parser: argparse.ArgumentParser, validation_help: str) -> None:
    """The data, split and model flags that :func:`_run_config` reads (train and tune)."""
    parser.add_argument(
        "data", nargs="?", help="bundled dataset name or CSV/Parquet file (default anime-tv)"
    )
    parser.add_argument("--config", help="a config.json written by an earlier train run")
    parser.add_argument(
        "--data-path", help="folder of a dataset that is not bundled (movielens-100k)"
    )
    parser.add_argument("--user-col", help="user id column of a data file (default user_id)")
    parser.add_argument("--item-col", help="item id column of a data file (default item_id)")
    parser.add_argument(
        "--rating-col", help="rating column of a data file (default: none, every row positive)"
    )
    parser.add_argument("--threshold", type=float, help="positives are ratings above this")
    parser.add_argument(
        "--inclusive", action="store_true", default=None, help="positives are ratings >= threshold"
    )
    parser.add_argument(
        "--features",
        action="store_true",
        default=None,
        help="train with the dataset's built-in side features (named datasets only)",
    )
    parser.add_argument(
        "--test-size", type=float, help="test fraction of the random split (default 0.2)"
    )
    parser.add_argument("--split-seed", type=int, help="seed of the random split (default 42)")
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="start from these hyper-parameters (default: default)",
    )
    for name, (kind, help_text) in _MODEL_FLAGS.items():
        parser.add_argument("--" + name.replace("_", "-"), type=kind, help=help_text)
    parser.add_argument("--seed", dest="random_state", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--hidden-layers", help="deep: comma-separated widths, e.g. 128,64")
    parser.add_argument(
        "--item-bias", action="store_true", default=None, help="bilinear: learn item biases"
    )
    parser.add_argument("--validation-fraction", type=float, default=None, help=validation_help)
    parser.add_argument(
        "--sparse-gradients",
        action="store_true",
        default=None,
        help="sparse embedding gradients, only the batch's rows updated (for large tables; "
        "see docs/scaling.md); under torchrun, data-parallel training either way",
    )


def _run_config(args: argparse.Namespace) -> RunConfig:
    config = RunConfig.read(args.config) if args.config else RunConfig()
    if args.data is not None:
        config.data = DataSpec(source=args.data)
    data_overrides = {
        "path": args.data_path,
        "user_col": args.user_col,
        "item_col": args.item_col,
        "rating_col": args.rating_col,
        "threshold": args.threshold,
        "inclusive": args.inclusive,
        "features": args.features,
    }
    for key, value in data_overrides.items():
        if value is not None:
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
    if args.preset:
        config.model = dict(PRESETS[args.preset])
    for name in [*_MODEL_FLAGS, "item_bias"]:
        value = getattr(args, name)
        if value is not None:
            config.model[name] = value
    if args.hidden_layers:
        try:
            config.model["hidden_layers"] = [int(w) for w in args.hidden_layers.split(",")]
        except ValueError as exc:
            raise TripletrecError(
                f"--hidden-layers must be integers like 128,64, not {args.hidden_layers!r}"
            ) from exc
    config.model.setdefault("random_state", 0)
    return config


def _metric_names(text: str) -> tuple[str, ...]:
    names = tuple(metric_key(*parse_metric(n.strip())) for n in text.split(",") if n.strip())
    if not names:
        raise TripletrecError("--metrics names no metric")
    return names


def _cmd_datasets(args: argparse.Namespace) -> int:
    if getattr(args, "datasets_action", None) == "synth":
        return _cmd_synth(args)
    for entry in list_datasets():
        counts = ", ".join(
            f"{entry[key]:,} {key.removeprefix('n_')}"
            for key in ("n_rows", "n_users", "n_items")
            if entry.get(key)
        )
        print(f"{entry['name']:<18} {entry['description']}" + (f" ({counts})" if counts else ""))
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from tripletrec.data.synthetic import write_synthetic_parquet

    summary = write_synthetic_parquet(
        args.out, args.users, args.items, args.interactions, n_topics=args.topics,
        item_exponent=args.item_exponent, user_exponent=args.user_exponent,
        random_state=args.seed,
    )  # fmt: skip
    print(
        f"wrote {summary['n_rows']:,} interactions of {summary['n_users']:,} users x "
        f"{summary['n_items']:,} items to {args.out} in {summary['seconds']:.1f} s "
        f"(seed {args.seed})"
    )
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    config = _run_config(args)
    metric_names = _metric_names(args.metrics)
    fraction = config.split.validation_fraction
    if not 0.0 <= fraction < 1.0:
        raise TripletrecError(f"--validation-fraction must be in [0, 1), got {fraction}")
    data, train, test = config.prepare()
    model = config.build_model().set_params(verbose=not args.quiet)
    # Under torchrun every process trains its shard; rank 0 alone evaluates and saves.
    sparse = config.training.sparse_gradients
    parallel = DataParallel.from_environment(model.device, sparse_gradients=sparse)
    fit = model.fit if parallel is None else partial(parallel.fit, model)
    features = config.data.side_features(data)
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
    results = evaluate(model, train, test, metric_names)
    metrics = {
        **{name: results[name] for name in metric_names},
        "fit_seconds": model.fit_seconds_,
        "n_users": data.n_users,
        "n_items": data.n_items,
        "n_train_positives": len(train),
        "n_test_positives": len(test),
        "n_users_evaluated": results["n_users"],
        "n_parameters": model.n_parameters_,
        "validation_fraction": fraction,
        "n_validation_positives": 0 if validation is None else len(validation),
        **({} if parallel is None else parallel.summary()),
        "peak_rss_mb": peak_rss_bytes() / 2**20,
    }
    print(
        f"{config.data.source}: test AUC {metrics['auc']:.4f} over {results['n_users']:,} users "
        f"({len(train):,} train / {len(test):,} test positives), fit {model.fit_seconds_:.2f} s"
    )
    for name in metric_names:
        if name != "auc":
            print(f"  {name:<14} {metrics[name]:.4f}")
    if args.out:
        config.model = model.get_params() | {"verbose": False}
        model.save(
            args.out,
            metrics=metrics,
            extra_json={
                "metrics.json": metrics,
                "config.json": config.to_dict(),
                "history.json": model.history_,
            },
        )
        _write_learning_curve(model.history_, Path(args.out) / "learning_curve.png")
        print(f"saved model to {args.out}")
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from tripletrec.persistence import write_json_atomic
    from tripletrec.tuning import default_search_space, tune

    config = _run_config(args)
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
    fixed = {name for name in _MODEL_FLAGS if getattr(args, name) is not None}
    space = {k: v for k, v in default_search_space(config.model).items() if k not in fixed}
    result = tune(
        config, n_trials=args.trials, timeout_seconds=args.timeout, metric=args.metric,
        validation_fraction=fraction, random_state=config.split.random_state,
        search_space=space, verbose=not args.quiet,
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


def _write_learning_curve(history: list[dict], path: Path) -> None:
    from tripletrec.plots import plot_learning_curve

    if plot_learning_curve(history, path) is None:
        print(
            "tripletrec: note: matplotlib is not installed, so no learning_curve.png "
            "(pip install tripletrec[plot])",
            file=sys.stderr,
        )


def _saved_config(model_dir: str) -> RunConfig:
    config_path = Path(model_dir) / "config.json"
    read_manifest(model_dir)  # a clear error first if this is not a model directory at all
    if not config_path.is_file():
        raise TripletrecError(
            f"{model_dir}: no config.json; it was not written by 'tripletrec train'"
        )
    return RunConfig.read(config_path)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    config = _saved_config(args.model_dir)
    sampled = args.protocol == "sampled"
    default = DEFAULT_SAMPLED_METRICS if sampled else DEFAULT_METRICS
    metric_names = _metric_names(args.metrics or ",".join(default))
    model = load_model(args.model_dir)
    _, train, test = config.prepare()
    if sampled:
        results = _evaluate_sampled(model, train, test, metric_names, args)
        cases = f"{results['n_cases']:,} test positives of {results['n_users']:,} users"
        header = f"{cases}, each ranked among {args.negatives} sampled negatives"
    else:
        results = evaluate(model, train, test, metric_names)
        header = f"{results['n_users']:,} users evaluated, full ranking"
    results = {"protocol": args.protocol, **results}
    print(f"{config.data.source}: {header}")
    width = max(len(name) for name in metric_names)
    print(f"  {'metric':<{width}}  value")
    for name in metric_names:
        print(f"  {name:<{width}}  {results[name]:.4f}")
    if args.json_out:
        from tripletrec.persistence import write_json_atomic

        write_json_atomic(args.json_out, results)
    return 0


def _evaluate_sampled(
    model: Any, train: Any, test: Any, metric_names: Sequence[str], args: argparse.Namespace
) -> dict:
    """Sampled hit rate / NDCG at each cut-off asked for, the warning as a one-line note."""
    parsed = [parse_metric(name) for name in metric_names]
    unsupported = [
        n for n, (base, _) in zip(metric_names, parsed) if base not in ("hit_rate", "ndcg")
    ]
    if unsupported:
        raise TripletrecError(
            f"the sampled protocol reports hit_rate@k and ndcg@k only, not {', '.join(unsupported)}"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        results = evaluate_sampled(
            model, train, test, args.negatives, [k for _, k in parsed], args.sample_seed
        )
    for message in {str(w.message) for w in caught}:
        print(f"tripletrec: warning: {message}", file=sys.stderr)
    return results


def _parse_user(model: Any, text: str) -> Any:
    """The raw user id typed on the command line, as the model's id type."""
    ids = model.user_map_.ids
    if np.issubdtype(ids.dtype, np.integer):
        try:
            return int(text)
        except ValueError:
            pass
    return text


def _cmd_recommend(args: argparse.Namespace) -> int:
    if args.all:
        return _cmd_recommend_all(args)
    if args.user is None:
        raise TripletrecError("recommend needs --user ID, or --all --out FILE")
    model = load_model(args.model_dir)
    user = _parse_user(model, args.user)
    items, scores = model.recommend([user], k=args.k, filter_seen=not args.keep_seen)
    items, scores = items[0], scores[0]
    names = model.item_names(items)
    rows = [
        {"rank": rank, "item_id": item, "score": float(score)}
        | ({} if names is None else {"name": names[rank - 1]})
        for rank, (item, score) in enumerate(zip(items.tolist(), scores), start=1)
    ]
    if args.json:
        print(json.dumps({"user": user, "items": rows}, indent=2, default=str))
        return 0
    print(f"top {len(rows)} for user {user}:")
    for row in rows:
        name = f"  {row['name']}" if "name" in row else ""
        print(f"{row['rank']:>3}. {row['item_id']!s:>8}  {row['score']:+.4f}{name}")
    return 0


def _cmd_recommend_all(args: argparse.Namespace) -> int:
    from tripletrec.serving.retrieval import write_all_recommendations

    if not args.out:
        raise TripletrecError("recommend --all needs --out FILE.parquet")
    if args.user is not None:
        raise TripletrecError("give either --user or --all, not both")
    model = load_model(args.model_dir)
    stats = write_all_recommendations(
        model, args.out, k=args.k, filter_seen=not args.keep_seen,
        chunk_users=args.chunk_users, progress=not args.quiet,
    )  # fmt: skip
    print(
        f"wrote top {args.k} for {stats['n_users']:,} users to {args.out} "
        f"in {stats['seconds']:.2f} s ({stats['users_per_second']:,.0f} users/s)"
    )
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        from tripletrec.serving.app import run_server
    except ImportError as exc:
        raise TripletrecError("serve needs FastAPI: pip install 'tripletrec[serve]'") from exc
    if not 0 < args.port < 65536 or args.workers < 1:
        raise TripletrecError("--port must be in 1..65535 and --workers >= 1")
    print(f"serving {args.model_dir} on http://{args.host}:{args.port} (docs at /docs)")
    run_server(
        args.model_dir, args.host, args.port, workers=args.workers,
        watch_seconds=args.watch, log_level=args.log_level,
    )  # fmt: skip
    return 0


def _cmd_index(args: argparse.Namespace) -> int:
    import time

    from tripletrec.serving.retrieval import IndexSettings, build_model_index

    start = time.perf_counter()
    settings = IndexSettings(n_lists=args.n_lists, nprobe=args.nprobe, random_state=args.seed)
    path, index = build_model_index(args.model_dir, settings)
    print(
        f"indexed {len(index):,} items in {time.perf_counter() - start:.2f} s "
        f"({index.settings.n_lists} lists, nprobe {index.settings.nprobe}) -> {path}"
    )
    return 0


_COMMANDS = {
    "serve": _cmd_serve,
    "index": _cmd_index,
    "datasets": _cmd_datasets,
    "train": _cmd_train,
    "tune": _cmd_tune,
    "evaluate": _cmd_evaluate,
    "recommend": _cmd_recommend,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tripletrec`` command."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except (TripletrecError, ValueError, OSError) as exc:
        print(f"tripletrec: error: {first_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tripletrec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
