"""``datasets``, ``evaluate``, ``recommend``, ``serve`` and ``index``: everything but training."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tripletrec.cli.parser import DEFAULT_METRICS, DEFAULT_SAMPLED_METRICS
from tripletrec.cli.progress import progress_enabled
from tripletrec.cli.training import metric_names
from tripletrec.config import RunConfig
from tripletrec.data.datasets import list_datasets
from tripletrec.evaluation.metrics import parse_metric
from tripletrec.evaluation.protocols import evaluate, evaluate_sampled
from tripletrec.exceptions import TripletrecError
from tripletrec.persistence import load_model, read_manifest

#: Environment variable holding the admin token of ``tripletrec serve``.
TOKEN_ENV = "TRIPLETREC_TOKEN"


def cmd_datasets(args: argparse.Namespace) -> int:
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


def _saved_config(model_dir: str) -> RunConfig:
    config_path = Path(model_dir) / "config.json"
    read_manifest(model_dir)  # a clear error first if this is not a model directory at all
    if not config_path.is_file():
        raise TripletrecError(
            f"{model_dir}: no config.json; it was not written by 'tripletrec train'"
        )
    return RunConfig.read(config_path)


def cmd_evaluate(args: argparse.Namespace) -> int:
    config = _saved_config(args.model_dir)
    sampled = args.protocol == "sampled"
    default = DEFAULT_SAMPLED_METRICS if sampled else DEFAULT_METRICS
    names = metric_names(args.metrics or ",".join(default))
    model = load_model(args.model_dir)
    _, train, test = config.prepare()
    if sampled:
        results = _evaluate_sampled(model, train, test, names, args)
        cases = f"{results['n_cases']:,} test positives of {results['n_users']:,} users"
        header = f"{cases}, each ranked among {args.negatives} sampled negatives"
    else:
        results = evaluate(model, train, test, names, progress=progress_enabled(args))
        header = f"{results['n_users']:,} users evaluated, full ranking"
    results = {"protocol": args.protocol, **results}
    print(f"{config.data.source}: {header}")
    width = max(len(name) for name in names)
    print(f"  {'metric':<{width}}  value")
    for name in names:
        print(f"  {name:<{width}}  {results[name]:.4f}")
    if args.json_out:
        from tripletrec._files import write_json_atomic

        write_json_atomic(args.json_out, results)
    return 0


def _evaluate_sampled(
    model: Any, train: Any, test: Any, names: Sequence[str], args: argparse.Namespace
) -> dict:
    """Sampled hit rate / NDCG at each cut-off asked for, the warning as a one-line note."""
    parsed = [parse_metric(name) for name in names]
    unsupported = [n for n, (base, _) in zip(names, parsed) if base not in ("hit_rate", "ndcg")]
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


def cmd_recommend(args: argparse.Namespace) -> int:
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
    from tripletrec.serving.export import write_all_recommendations

    if not args.out:
        raise TripletrecError("recommend --all needs --out FILE.parquet")
    if args.user is not None:
        raise TripletrecError("give either --user or --all, not both")
    model = load_model(args.model_dir)
    stats = write_all_recommendations(
        model, args.out, k=args.k, filter_seen=not args.keep_seen,
        chunk_users=args.chunk_users, progress=progress_enabled(args),
    )  # fmt: skip
    print(
        f"wrote top {args.k} for {stats['n_users']:,} users to {args.out} "
        f"in {stats['seconds']:.2f} s ({stats['users_per_second']:,.0f} users/s)"
    )
    return 0


def admin_token(token_file: str | None) -> str | None:
    """The admin token: the first line of ``token_file``, else ``$TRIPLETREC_TOKEN``; None
    when neither is set (then the service refuses every admin request)."""
    if token_file is not None:
        try:
            text = Path(token_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TripletrecError(f"--token-file {token_file}: cannot read it ({exc})") from exc
        lines = text.strip().splitlines()
        if not lines or not lines[0].strip():
            raise TripletrecError(f"--token-file {token_file}: the file is empty")
        return lines[0].strip()
    return os.environ.get(TOKEN_ENV, "").strip() or None


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from tripletrec.serving.server import run_server
    except ImportError as exc:
        raise TripletrecError("serve needs FastAPI: pip install 'tripletrec[serve]'") from exc
    if not 0 <= args.port < 65536 or args.workers < 1:
        raise TripletrecError("--port must be in 0..65535 and --workers >= 1")
    token = admin_token(args.token_file)
    read_manifest(args.model_dir)  # a broken model directory: its error alone, no note first
    if token is None:
        print(
            f"tripletrec: note: no admin token (--token-file or ${TOKEN_ENV}), so POST "
            "/reload answers 403",
            file=sys.stderr,
        )
    run_server(
        args.model_dir, args.host, args.port, workers=args.workers,
        watch_seconds=args.watch, log_level=args.log_level, token=token,
        model_root=args.model_root,
    )  # fmt: skip
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from tripletrec.serving.retrieval import IndexSettings, build_model_index

    start = time.perf_counter()
    settings = IndexSettings(n_lists=args.n_lists, nprobe=args.nprobe, random_state=args.seed)
    path, index = build_model_index(args.model_dir, settings, progress=progress_enabled(args))
    print(
        f"indexed {len(index):,} items in {time.perf_counter() - start:.2f} s "
        f"({index.settings.n_lists} lists, nprobe {index.settings.nprobe}) -> {path}"
    )
    return 0
