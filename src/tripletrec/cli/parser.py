"""The ``tripletrec`` argument parser: one sub-command per task."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from tripletrec import _registry
from tripletrec.cli.model_flags import add_model_flags
from tripletrec.cli.progress import add_quiet_flag
from tripletrec.config import DEFAULT_ESTIMATOR, RunConfig, SplitSpec, estimator_class
from tripletrec.evaluation.protocols import EVAL_SCORE_BUDGET
from tripletrec.exceptions import TripletrecError
from tripletrec.models.base import RecommenderBase
from tripletrec.models.triplet.presets import PRESETS

DEFAULT_METRICS = ("auc", "precision@10", "recall@10", "ndcg@10", "map@10")
DEFAULT_SAMPLED_METRICS = ("hit_rate@10", "ndcg@10")
DEBUG_HELP = "show the traceback of an unexpected error instead of one line"


def estimator_of(argv: Sequence[str]) -> type[RecommenderBase]:
    """The estimator whose flags ``train`` and ``tune`` take on this command line:
    ``--estimator NAME``, else the one that ``--config FILE`` or ``--resume DIR``'s
    config.json names, else the default. A name or file that cannot be read gives the
    default here; the full parse or the run then says what is wrong with it."""
    scan = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    scan.add_argument("--estimator", "-e")
    for flag in ("--config", "--resume"):
        scan.add_argument(flag)
    known, _ = scan.parse_known_args(list(argv))
    try:
        if known.estimator is not None:
            return estimator_class(known.estimator)
        config = known.config or (known.resume and Path(known.resume) / "config.json")
        if config and Path(config).is_file():
            return RunConfig.read(config).estimator_class()
    except TripletrecError:
        pass
    return estimator_class(DEFAULT_ESTIMATOR)


def _estimator_name(text: str) -> str:
    """``--estimator``'s value as a registered class name."""
    try:
        return estimator_class(text).__name__
    except TripletrecError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--estimator: ")) from None


def build_parser(estimator: type[RecommenderBase] | None = None) -> argparse.ArgumentParser:
    """The parser of every sub-command; ``args.command`` names the one given.

    ``train`` and ``tune`` take the hyper-parameter flags of ``estimator`` (default: the
    product's default estimator; see :func:`estimator_of`)."""
    estimator = estimator or estimator_class(DEFAULT_ESTIMATOR)
    # --debug is accepted before and after the sub-command; SUPPRESS keeps a sub-command's
    # unset flag from overwriting a --debug given before it.
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help=DEBUG_HELP)  # fmt: skip
    parser = argparse.ArgumentParser(
        prog="tripletrec",
        description="Train, evaluate and query triplet-loss recommenders on implicit feedback.",
    )
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, parents=[debug])

    _add_synth_arguments(
        command("datasets", "list the bundled datasets; 'datasets synth' writes synthetic data")
    )
    _add_data_arguments(command("data", "explore a dataset: 'data describe' summarises it"))
    _add_train_arguments(command("train", "train a model, report test metrics, save it"), estimator)
    _add_tune_arguments(
        command("tune", "search hyper-parameters on a validation split, write the best config"),
        estimator,
    )
    _add_evaluate_arguments(command("evaluate", "evaluate a saved model on its test split"))
    _add_recommend_arguments(command("recommend", "top-k items for a user of a saved model"))
    _add_serve_arguments(command("serve", "serve a saved model over HTTP (FastAPI)"))

    index = command("index", "build the approximate index of a saved model")
    index.add_argument("model_dir")
    index.add_argument("--n-lists", type=int, help="inverted lists (default about 2 sqrt(n))")
    index.add_argument("--nprobe", type=int, help="lists scanned per query (default n_lists/32)")
    index.add_argument("--seed", type=int, default=0, help="seed of the clustering (0)")
    add_quiet_flag(index)

    report = command("report", "HTML report of a run, or of several runs side by side")
    report.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="run directories of tripletrec train --out")  # fmt: skip
    report.add_argument(
        "--out",
        help="the HTML file to write (default: RUN_DIR/report.html for one run, "
        "./comparison.html for several)",
    )
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


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """``data describe``: the data exploration of :func:`tripletrec.describe`."""
    actions = parser.add_subparsers(dest="data_action", required=True, metavar="{describe}")
    describe = actions.add_parser(
        "describe",
        help="users, items, sparsity, rating histogram, positives, item popularity (the "
        "long tail) and history lengths of a dataset or file",
    )
    describe.add_argument(
        "data", nargs="?", help="bundled dataset name or CSV/Parquet file (default anime-tv)"
    )
    describe.add_argument(
        "--data-path", help="folder of a dataset that is not bundled (movielens-100k, gowalla)"
    )
    describe.add_argument("--user-col", help="user id column of a data file (default user_id)")
    describe.add_argument("--item-col", help="item id column of a data file (default item_id)")
    describe.add_argument("--rating-col", help="rating column of a data file (default: none)")
    describe.add_argument(
        "--threshold",
        type=float,
        help="positives are ratings above this (default: the dataset's own rule; none for "
        "a file, whose rows are then described without a positives section)",
    )
    describe.add_argument(
        "--inclusive", action="store_true", default=None, help="positives are ratings >= threshold"
    )
    describe.add_argument(
        "--out", help="directory for summary.json and the PNGs (matplotlib) of the figures"
    )
    add_quiet_flag(describe)
    describe.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                          help=DEBUG_HELP)  # fmt: skip


def _add_train_arguments(train: argparse.ArgumentParser, estimator: type[RecommenderBase]) -> None:
    _add_run_arguments(
        train,
        estimator,
        validation_help="share of the train positives held out (seeded by --split-seed) to "
        "record validation AUC and NDCG@10 after every epoch; the model is fitted on the rest. "
        f"0 fits on every train positive and records the loss only (default "
        f"{SplitSpec.validation_fraction})",
    )
    train.add_argument(
        "--metrics", default=",".join(DEFAULT_METRICS), help="comma-separated metrics"
    )
    train.add_argument(
        "--evaluation-users",
        type=int,
        metavar="N",
        help="rank the catalogue for a seeded random sample of N test users (0: all of them; "
        f"default: all up to {EVAL_SCORE_BUDGET:,} users x items, else that many scores' "
        "worth, 10,000 users at 200,000 items)",
    )
    train.add_argument(
        "--out",
        help="directory for the model, metrics.json, config.json, history.json, "
        "learning_curve.png and report.html; one training at a time may write it (OUT.lock "
        "beside it)",
    )
    add_quiet_flag(train)
    train.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help="with --out: a checkpoint under OUT/checkpoints every N epochs and at the end "
        "(weights, optimiser and random states), from which --resume continues a killed run",
    )
    train.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the killed training in DIR (written with --checkpoint-every) from its "
        "last checkpoint, with DIR's config.json; with --data, train DIR's finished model "
        "further on new positives (new users and items included)",
    )
    train.add_argument(
        "--data",
        dest="new_data",
        metavar="FILE",
        help="with --resume: CSV/Parquet file of new interactions (--user-col, --item-col, "
        "--rating-col, --threshold, --inclusive apply; --epochs sets the epochs)",
    )


def _add_tune_arguments(tune: argparse.ArgumentParser, estimator: type[RecommenderBase]) -> None:
    _add_run_arguments(
        tune,
        estimator,
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
    add_quiet_flag(tune, also="no line per trial")


def _add_run_arguments(
    parser: argparse.ArgumentParser, estimator: type[RecommenderBase], validation_help: str
) -> None:
    """The data, split and model flags that ``run_config`` reads (train and tune)."""
    parser.add_argument(
        "data", nargs="?", help="bundled dataset name or CSV/Parquet file (default anime-tv)"
    )
    parser.add_argument("--config", help="a config.json written by an earlier train run")
    parser.add_argument(
        "--data-path", help="folder of a dataset that is not bundled (movielens-100k, gowalla)"
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
    names = sorted(_registry.short_name(c) for c in _registry.registered().values())
    parser.add_argument(
        "--estimator",
        "-e",
        type=_estimator_name,
        metavar="NAME",
        help=f"the estimator to train, by class name or short name ({', '.join(names)}; "
        f"default {DEFAULT_ESTIMATOR}, the product's default); the hyper-parameter flags "
        "below are those of the estimator named here",
    )
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="TripletRecommender: start from these hyper-parameters (default: default)",
    )
    parser.add_argument("--validation-fraction", type=float, default=None, help=validation_help)
    parser.add_argument(
        "--sparse-gradients",
        action="store_true",
        default=None,
        help="sparse embedding gradients, only the batch's rows updated (for large tables; "
        "see docs/scaling.md); under torchrun, data-parallel training either way",
    )
    add_model_flags(parser, estimator)


def _add_evaluate_arguments(ev: argparse.ArgumentParser) -> None:
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
    add_quiet_flag(ev)


def _add_recommend_arguments(rec: argparse.ArgumentParser) -> None:
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
    add_quiet_flag(rec)


def _add_serve_arguments(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("model_dir")
    serve.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=8000, help="port (default 8000; 0: a free one, printed)"
    )
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument(
        "--watch", type=float, help="reload when the model directory changes, polling every N s"
    )
    serve.add_argument("--log-level", default="warning", help="uvicorn log level (warning)")
    serve.add_argument(
        "--token-file",
        help="file holding the bearer token that POST /reload requires (default: "
        "$TRIPLETREC_TOKEN; with neither, admin endpoints answer 403)",
    )
    serve.add_argument(
        "--model-root",
        help="POST /reload loads only model directories under this one (default: the "
        "served model's parent directory)",
    )
