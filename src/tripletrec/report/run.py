"""The facts a report shows about one run directory of ``tripletrec train --out``.

:func:`collect_run` reads ``config.json``, ``metrics.json`` and ``history.json``; for a
full report it also takes the fitted model and the interactions, from memory when the
caller has them (``tripletrec train`` does: the report costs no reload), else from the
directory and the data its config names. Figures become PNG bytes here, so rendering
(:mod:`tripletrec.report.pages`) is plain string work.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tripletrec import plots
from tripletrec._files import read_json_object
from tripletrec.data.summary import describe
from tripletrec.exceptions import ParameterError, TripletrecError, first_line
from tripletrec.report.samples import Samples, collect_samples

METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
CURVE_FILE = "learning_curve.png"


@dataclass(frozen=True)
class Figure:
    """A titled PNG."""

    title: str
    png: bytes


@dataclass(frozen=True)
class DataFacts:
    """The data summary (``tripletrec.describe``) of the run's interactions."""

    source: str
    summary: dict[str, Any]
    figures: tuple[Figure, ...]


@dataclass(frozen=True)
class RunFacts:
    """What a report shows of one run.

    ``data`` and ``samples`` are None in a comparison, or when they could not be made;
    ``notes`` then say why.
    """

    directory: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    learning_curve: Figure | None
    data: DataFacts | None
    samples: Samples | None
    notes: tuple[str, ...]


def read_run(directory: str | Path) -> tuple[dict, dict, list]:
    """``(config, metrics, history)`` of a run directory; a TripletrecError naming the
    directory when it is not one."""
    directory = Path(directory)
    if not (directory / METRICS_FILE).is_file():
        raise TripletrecError(
            f"{directory}: no {METRICS_FILE}; not a run directory of tripletrec train --out"
        )
    metrics = read_json_object(directory / METRICS_FILE, TripletrecError)
    config_path = directory / CONFIG_FILE
    config = read_json_object(config_path, TripletrecError) if config_path.is_file() else {}
    history: Any = []
    history_path = directory / HISTORY_FILE
    if history_path.is_file():
        try:
            history = json.loads(history_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TripletrecError(f"{history_path}: corrupt JSON ({exc})") from exc
        valid = isinstance(history, list) and all(
            isinstance(r, dict) and "epoch" in r and "loss" in r for r in history
        )
        if not valid:
            raise TripletrecError(
                f"{history_path}: expected a list of epoch records with epoch and loss"
            )
    return config, metrics, history


def collect_run(
    directory: str | Path,
    *,
    model: Any = None,
    data: Any = None,
    detail: bool = True,
) -> RunFacts:
    """The facts of the run in ``directory``.

    Parameters
    ----------
    directory : str or Path
        A run directory of ``tripletrec train --out``.
    model : RecommenderBase, optional
        The run's fitted model; loaded from ``directory`` when needed and not given.
    data : Interactions, optional
        The run's interactions (all rows, before the positive rule) for the data summary;
        loaded from the config's data when needed and not given.
    detail : bool
        Collect the data summary and the sample recommendations (a single-run report);
        False: settings, metrics and history only (a comparison).

    Returns
    -------
    RunFacts
    """
    directory = Path(directory)
    config, metrics, history = read_run(directory)
    notes: list[str] = []
    curve = _learning_curve(directory, history) if history else None
    if history and curve is None:
        notes.append(
            "no learning curve: matplotlib is not installed (pip install tripletrec[plot])"
        )
    facts_data = samples = None
    if detail:
        facts_data = _data_facts(config, data, notes)
        if model is None:
            from tripletrec.persistence import load_model

            model = load_model(directory)
        samples = collect_samples(model)
    return RunFacts(directory, config, metrics, history, curve, facts_data, samples, tuple(notes))


def _learning_curve(directory: Path, history: list[dict]) -> Figure | None:
    """The run's learning curve: the PNG ``tripletrec train`` wrote beside the history,
    drawn from the history where it is missing."""
    path = directory / CURVE_FILE
    if path.is_file():
        return Figure("learning curve", path.read_bytes())
    figure = plots.learning_curve_figure({"": history})
    if figure is None:
        return None
    try:
        return Figure("learning curve", plots.figure_png(figure))
    finally:
        plots.close_figure(figure)


def _data_facts(config: dict, data: Any, notes: list[str]) -> DataFacts | None:
    """The data summary of the run's interactions; None with a note when there is none."""
    from tripletrec.config import RunConfig

    if not config:  # an estimator saved by hand: its data is not known
        notes.append(f"no data summary: no {CONFIG_FILE} says which data the run used")
        return None
    try:
        spec = RunConfig.from_dict(config, CONFIG_FILE).data
        if data is None:
            data = spec.load()
    except TripletrecError as exc:
        notes.append(f"no data summary: {first_line(exc)}")
        return None
    summary = describe(data, threshold=spec.threshold, inclusive=bool(spec.inclusive))
    return DataFacts(spec.source, summary.to_dict(), tuple(_figures(summary)))


def _figures(summary: Any) -> list[Figure]:
    """The summary's figures as PNGs (none without matplotlib)."""
    try:
        figures = summary.figures()
    except ImportError:
        return []
    if figures is None:
        return []
    named = figures.items() if isinstance(figures, Mapping) else enumerate(figures)
    out = []
    for key, figure in named:
        try:
            title = key if isinstance(key, str) else _figure_title(figure)
            out.append(Figure(title, plots.figure_png(figure)))
        finally:
            plots.close_figure(figure)
    return out


def _figure_title(figure: Any) -> str:
    suptitle = getattr(figure, "_suptitle", None)
    if suptitle is not None and suptitle.get_text():
        return str(suptitle.get_text())
    titles = [axis.get_title() for axis in figure.get_axes() if axis.get_title()]
    return ", ".join(titles) or "figure"


def is_metric(name: str) -> bool:
    """Whether ``name`` is a canonical ranking-metric name (``"ndcg@10"``, ``"auc"``)."""
    from tripletrec.evaluation.names import metric_key, parse_metric

    try:
        return metric_key(*parse_metric(name)) == name
    except ParameterError:
        return False
