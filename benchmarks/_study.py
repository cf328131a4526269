"""What the design studies share: the validation parts of the training positives, a row
of validation metrics, and the command line that runs a study and writes its results.

A study never reads the test positives: it holds :data:`~_protocol.VALIDATION_FRACTION`
of each data set's *training* positives out (``tripletrec.validation_split``, seed 0),
fits on the rest and scores on the part held out.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

import tripletrec as tr
from tripletrec.models.base import RecommenderBase

from _protocol import SHARED_DATA, THREADS, VALIDATION_FRACTION, load
from _results import RESULTS, mean_std_of, run_environment, write_results

#: The data sets a study runs on unless ``--datasets`` says otherwise.
DATASETS = "anime-tv,movielens-100k,anime-5k"
#: What a study scores on the small sets' validation parts, and on Gowalla's (LightGCN's).
SMALL_SET_METRICS = ("auc", "ndcg@10")
GOWALLA_METRICS = ("recall@20", "ndcg@20")


def validation_parts(
    names: str, fraction: float = VALIDATION_FRACTION
) -> Iterator[tuple[str, tr.Interactions, tr.Interactions]]:
    """``(name, fit part, validation part)`` of each comma-separated data set that is
    present: ``fraction`` of its *training* positives held out (``validation_split``,
    seed 0); its test positives are never read."""
    for name in names.split(","):
        loaded = load(name)
        if loaded is None:
            continue
        fit_part, validation = tr.validation_split(loaded[0], fraction, random_state=0)
        print(f"{name}: {len(fit_part):,} fit / {len(validation):,} validation positives")
        yield name, fit_part, validation


def validation_row(
    model: RecommenderBase,
    fit_part: tr.Interactions,
    validation: tr.Interactions,
    metrics: tuple[str, ...],
    /,
    **labels: Any,
) -> dict:
    """One result row of a validation study: ``labels`` and the model's ``metrics`` on
    ``validation`` (the fit part excluded from the ranking), printed as it is made."""
    scores = tr.evaluate(model, fit_part, validation, metrics)
    row = labels | {metric: scores[metric] for metric in metrics}
    shown = " ".join(
        f"{value:.1f} s" if key == "seconds" else value if isinstance(value, str)
        else f"{key} {value}" for key, value in labels.items() if key != "dataset"
    )  # fmt: skip
    print(f"  {shown}: " + ", ".join(f"{m} {scores[m]:.4f}" for m in metrics), flush=True)
    return row


def fitted_row(
    model: RecommenderBase,
    fit_part: tr.Interactions,
    validation: tr.Interactions,
    metrics: tuple[str, ...],
    /,
    describe: Callable[[Any], dict] | None = None,
    **labels: Any,
) -> dict:
    """:func:`validation_row` of ``model`` fitted on ``fit_part``, with ``labels``, the
    wall time of the fit as ``seconds`` and what ``describe(fitted model)`` adds."""
    start = time.perf_counter()
    model.fit(fit_part)
    labels["seconds"] = time.perf_counter() - start
    if describe is not None:
        labels |= describe(model)
    return validation_row(model, fit_part, validation, metrics, **labels)


def seeds_header(title: str, environment: dict, n_seeds: int) -> list[str]:
    """The opening lines of a study's markdown over model seeds: its title, and the
    command, date, machine, seeds and wall time of the run."""
    return [
        f"# {title}",
        "",
        f"`{environment['command'].strip()}` — {environment['date']}, "
        f"{environment['machine']}; {n_seeds} model seed(s), mean +- std; "
        f"wall time {environment['wall_seconds']:.0f} s.",
        "",
    ]


def seeds_cells(group: list[dict], metrics: tuple[str, ...]) -> list[str]:
    """The table cells of one setting's rows over seeds: each metric as mean +- std, then
    the median of their ``seconds``."""
    cells = [mean_std_of([row[metric] for row in group]) for metric in metrics]
    return [*cells, f"{statistics.median(row['seconds'] for row in group):.2f}"]


def run_validation_study(
    script: str,
    description: str,
    study: Callable[..., list[dict]],
    markdown: Callable[[list[dict], dict], str],
    argv: list[str] | None = None,
    *,
    seeds: int | None = None,
) -> None:
    """The command line of the study in ``script`` (its ``__file__``) on validation parts
    (:func:`validation_parts`): ``--datasets``, ``--out`` (``results/`` + the script's
    name) and, when ``seeds`` is given, ``--seeds`` (``seeds`` by default). Calls
    ``study(name, fit part, validation part[, seeds])`` per data set present and writes the
    rows and ``markdown(rows, environment)`` (``_results.write_results``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--datasets", default=DATASETS)
    parser.add_argument("--out", default=str(RESULTS / Path(script).stem))
    if seeds is not None:
        parser.add_argument("--seeds", type=int, default=seeds)
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    started = time.perf_counter()
    extra = () if seeds is None else (args.seeds,)
    rows: list[dict] = []
    for name, fit_part, validation in validation_parts(args.datasets):
        rows += study(name, fit_part, validation, *extra)
    n_seeds = 1 if seeds is None else args.seeds
    given = argv if argv is not None else sys.argv[1:]
    write_results(Path(args.out), rows, run_environment(script, given, n_seeds, started),
                  markdown)  # fmt: skip


def gowalla_parts(
    folder: Path, cores: tuple[int, ...], user_shares: tuple[float, ...]
) -> list[tuple[str, tr.Interactions, tr.Interactions]]:
    """``(name, fit part, validation part)`` of parts of the Gowalla split in ``folder``:
    for each of ``cores``, ``train.txt`` restricted to the items with at least that many
    training positives, and for each of ``user_shares``, to that share of the users (one
    permutation, seed 0: the samples are nested); ``valid.txt`` restricted alike.
    ``test.txt`` is never read."""
    from tripletrec.data.datasets.gowalla import load_gowalla

    split = load_gowalla(folder)
    train, valid = split.train, split.valid
    counts = np.bincount(train.items, minlength=train.n_items)
    parts = []
    for least in cores:
        raw_items = train.item_map.to_raw(np.flatnonzero(counts >= least))
        core = train.subset(np.isin(train.item_map.to_raw(train.items), raw_items)).compact()
        held_out = valid.subset(np.isin(valid.item_map.to_raw(valid.items), raw_items))
        parts.append((f"gowalla, items with >= {least} positives", core, held_out))
    order = np.random.default_rng(0).permutation(train.n_users)
    for share in user_shares:
        raw_users = train.user_map.to_raw(order[: int(share * train.n_users)])
        sample = train.subset(np.isin(train.user_map.to_raw(train.users), raw_users))
        held_out = valid.subset(np.isin(valid.user_map.to_raw(valid.users), raw_users))
        parts.append((f"gowalla, {share:.0%} of the users", sample, held_out))
    return parts


def grouped_runs(
    rows: list[dict], variants: Iterable[Any], key: str = "variant"
) -> Iterator[tuple[str, Any, list[dict], tuple[str, ...]]]:
    """``(data set, variant, its rows, their metrics)`` of a study's ``rows`` on the small
    sets and Gowalla, data sets in the rows' order, variants (the rows' ``key``) in
    ``variants``' order, those without rows left out; the metrics are
    :data:`SMALL_SET_METRICS` where the rows have an AUC, else :data:`GOWALLA_METRICS`."""
    for dataset in dict.fromkeys(row["dataset"] for row in rows):
        group = [row for row in rows if row["dataset"] == dataset]
        metrics = SMALL_SET_METRICS if "auc" in group[0] else GOWALLA_METRICS
        for variant in variants:
            runs = [row for row in group if row[key] == variant]
            if runs:
                yield dataset, variant, runs, metrics


def run_study_with_gowalla(
    script: str,
    description: str,
    small_set_rows: Callable[[str, tr.Interactions, tr.Interactions, int], list[dict]],
    gowalla_rows: Callable[[Path], list[dict]],
    markdown: Callable[[list[dict], dict], str],
    argv: list[str] | None = None,
) -> None:
    """The command line of the study in ``script`` on the small sets' validation parts and
    on Gowalla: ``--datasets`` (empty: none), ``--seeds`` (3), ``--gowalla`` (the split's
    folder, or ``none``) and ``--out``. Calls ``small_set_rows(name, fit part, validation
    part, seeds)`` per small set present and ``gowalla_rows(folder)`` where the folder
    holds ``train.txt``, and writes the rows and ``markdown(rows, environment)``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--datasets", default=DATASETS)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--gowalla", default=str(SHARED_DATA / "gowalla"))
    parser.add_argument("--out", default=str(RESULTS / Path(script).stem))
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    started = time.perf_counter()
    rows: list[dict] = []
    if args.datasets:
        for name, fit_part, validation in validation_parts(args.datasets):
            rows += small_set_rows(name, fit_part, validation, args.seeds)
    if args.gowalla.lower() != "none":
        if (Path(args.gowalla) / "train.txt").is_file():
            rows += gowalla_rows(Path(args.gowalla))
        else:
            print(f"{args.gowalla} has no train.txt: skipping gowalla", file=sys.stderr)
    given = argv if argv is not None else sys.argv[1:]
    write_results(Path(args.out), rows, run_environment(script, given, args.seeds, started),
                  markdown)  # fmt: skip
