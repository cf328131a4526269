"""The ``tripletrec`` command line: datasets -> train -> evaluate -> recommend.

Every user mistake (missing file or column, NaN ids, unknown user, ...) ends with one line
``tripletrec: error: ...`` on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tripletrec.config import DataSpec, RunConfig
from tripletrec.datasets import list_datasets
from tripletrec.evaluation import evaluate
from tripletrec.exceptions import TripletrecError
from tripletrec.io import load_model, read_manifest
from tripletrec.metrics import metric_key, parse_metric
from tripletrec.recommender import PRESETS

DEFAULT_METRICS = ("auc", "precision@10", "recall@10", "ndcg@10", "map@10")

# Command-line flags that map one-to-one onto TripletRecommender parameters.
_MODEL_FLAGS: dict[str, tuple[type, str]] = {
    "model": (str, "bilinear or deep"),
    "similarity": (str, "bilinear: cosine or dot"),
    "n_factors": (int, "bilinear: embedding dimension"),
    "user_dim": (int, "deep: user embedding dimension"),
    "item_dim": (int, "deep: item embedding dimension"),
    "dropout": (float, "deep: dropout rate"),
    "loss": (str, "margin or bpr"),
    "margin": (float, "margin of the margin loss"),
    "negatives": (str, "uniform or exclude_positives"),
    "epochs": (int, "passes over the training positives"),
    "batch_size": (int, "triplets per step"),
    "learning_rate": (float, "Adam step size"),
    "l2": (float, "weight decay"),
    "random_state": (int, "seed (same seed, same model)"),
    "device": (str, "cpu or cuda"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tripletrec",
        description="Train, evaluate and query triplet-loss recommenders on implicit feedback.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("datasets", help="list the bundled datasets")

    train = commands.add_parser("train", help="train a model, report test metrics, save it")
    train.add_argument(
        "data", nargs="?", help="bundled dataset name or CSV/Parquet file (default anime-tv)"
    )
    train.add_argument("--config", help="a config.json written by an earlier train run")
    train.add_argument(
        "--data-path", help="folder of a dataset that is not bundled (movielens-100k)"
    )
    train.add_argument("--user-col", help="user id column of a data file (default user_id)")
    train.add_argument("--item-col", help="item id column of a data file (default item_id)")
    train.add_argument(
        "--rating-col", help="rating column of a data file (default: none, every row positive)"
    )
    train.add_argument("--threshold", type=float, help="positives are ratings above this")
    train.add_argument(
        "--inclusive", action="store_true", default=None, help="positives are ratings >= threshold"
    )
    train.add_argument(
        "--test-size", type=float, help="test fraction of the random split (default 0.2)"
    )
    train.add_argument("--split-seed", type=int, help="seed of the random split (default 42)")
    train.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="start from these hyper-parameters (default bilinear)",
    )
    for name, (kind, help_text) in _MODEL_FLAGS.items():
        train.add_argument("--" + name.replace("_", "-"), type=kind, help=help_text)
    train.add_argument("--seed", dest="random_state", type=int, help=argparse.SUPPRESS)
    train.add_argument("--hidden-layers", help="deep: comma-separated widths, e.g. 128,64")
    train.add_argument(
        "--item-bias", action="store_true", default=None, help="bilinear: learn item biases"
    )
    train.add_argument(
        "--metrics", default=",".join(DEFAULT_METRICS), help="comma-separated metrics"
    )
    train.add_argument("--out", help="directory for the model, metrics.json and config.json")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    ev = commands.add_parser("evaluate", help="evaluate a saved model on its test split")
    ev.add_argument("model_dir")
    ev.add_argument("--metrics", default=",".join(DEFAULT_METRICS), help="comma-separated metrics")
    ev.add_argument("--json", dest="json_out", help="also write the results to this JSON file")

    rec = commands.add_parser("recommend", help="top-k items for a user of a saved model")
    rec.add_argument("model_dir")
    rec.add_argument("--user", required=True, help="raw user id")
    rec.add_argument("-k", type=int, default=10, help="number of items (default 10)")
    rec.add_argument(
        "--keep-seen", action="store_true", help="do not filter the user's training items"
    )
    rec.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


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


def _cmd_datasets(_: argparse.Namespace) -> int:
    for entry in list_datasets():
        counts = ", ".join(
            f"{entry[key]:,} {key.removeprefix('n_')}"
            for key in ("n_rows", "n_users", "n_items")
            if entry.get(key)
        )
        print(f"{entry['name']:<18} {entry['description']}" + (f" ({counts})" if counts else ""))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    config = _run_config(args)
    metric_names = _metric_names(args.metrics)
    data, train, test = config.prepare()
    model = config.build_model().set_params(verbose=not args.quiet)
    model.fit(train)
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
        print(f"saved model to {args.out}")
    return 0


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
    metric_names = _metric_names(args.metrics)
    model = load_model(args.model_dir)
    _, train, test = config.prepare()
    results = evaluate(model, train, test, metric_names)
    print(f"{config.data.source}: {results['n_users']:,} users evaluated")
    for name in metric_names:
        print(f"  {name:<14} {results[name]:.4f}")
    if args.json_out:
        from tripletrec.io import write_json_atomic

        write_json_atomic(args.json_out, results)
    return 0


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


_COMMANDS = {
    "datasets": _cmd_datasets,
    "train": _cmd_train,
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
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"tripletrec: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tripletrec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
