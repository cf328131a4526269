"""The report pages: one run (``RUN_DIR/report.html``) and runs side by side.

Each function turns :class:`~tripletrec.report.run.RunFacts` into sections of
:mod:`tripletrec.report.html`; nothing here reads files or models.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from tripletrec import plots
from tripletrec._version import __version__
from tripletrec.report.html import (
    Html,
    cell,
    contents,
    escape,
    image,
    join,
    note,
    page,
    section,
    table,
    tag,
)
from tripletrec.report.run import DataFacts, Figure, RunFacts, is_metric
from tripletrec.report.samples import SAMPLE_QUANTILES, NamedItem, Samples, SampleUser

#: Keys of metrics.json shown as timings and resources rather than as facts of the run.
_RESOURCE_SUFFIXES = ("_seconds", "_mb")
#: Rows of one settings table before the group continues in the next column.
_SETTINGS_PER_COLUMN = 18
#: The smallest share of a history item shown as a reason ("because you liked ..."): 1%.
_MIN_SHARE = 0.005


def flatten(payload: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys; lists as compact JSON text."""
    flat: dict[str, Any] = {}
    for key, value in payload.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= flatten(value, f"{name}.")
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(value, default=str)
        else:
            flat[name] = value
    return flat


def _split_metrics(metrics: Mapping[str, Any]) -> tuple[dict, dict, dict]:
    """``metrics.json`` as (test metrics, timings and resources, other facts)."""
    scores, resources, facts = {}, {}, {}
    for key, value in flatten(metrics).items():
        if is_metric(key):
            scores[key] = value
        elif key.endswith(_RESOURCE_SUFFIXES):
            resources[key] = value
        else:
            facts[key] = value
    return scores, resources, facts


def _figures(figures: Sequence[Figure]) -> Html:
    return tag("div", join(tag("div", image(f.png, f.title)) for f in figures),
               class_="grid figures")  # fmt: skip


def _item(named: NamedItem) -> Html:
    """An item as its name (its id where it has none), the id in the tooltip."""
    if named.name is None:
        return escape(f"item {named.item}")
    return tag("span", named.name, title=f"item {named.item}")


# --------------------------------------------------------------------------- one run
def _data_section(data: DataFacts | None) -> list[Html]:
    if data is None:
        return []
    summary = data.summary
    overview = [(k, v) for k, v in summary.items() if v is not None and not isinstance(v, Mapping)]
    tables = [table(("quantity", "value"), overview, caption="overview")]
    for group, values in summary.items():
        if isinstance(values, Mapping):
            # The rating histogram has its figure; its counts are in the table only without.
            rows = [
                (key, value)
                for key, value in flatten(values).items()
                if not (data.figures and key.startswith("histogram."))
            ]
            tables.append(table(("quantity", "value"), rows, caption=group))
    return [
        section(
            f"Data: {data.source}",
            tag("div", join(tables), class_="grid"),
            _figures(data.figures),
            id_="data",
        )
    ]


def _settings_section(config: Mapping[str, Any]) -> Html:
    if not config:
        return section("Settings", note("no config.json in the run directory"), id_="settings")
    parts = []
    for group, values in config.items():
        rows = list(flatten(values).items()) if isinstance(values, Mapping) else [(group, values)]
        # A long group (the model's parameters) in columns side by side, not one tall table.
        for start in range(0, len(rows), _SETTINGS_PER_COLUMN):
            shown = group if start == 0 else f"{group} (continued)"
            chunk = rows[start : start + _SETTINGS_PER_COLUMN]
            parts.append(table(("setting", "value"), chunk, caption=shown))
    return section("Settings (config.json)", tag("div", join(parts), class_="grid"), id_="settings")


def _metrics_section(metrics: Mapping[str, Any]) -> Html:
    scores, _, facts = _split_metrics(metrics)
    tables = [table(("metric", "value"), scores.items()), table(("fact", "value"), facts.items())]
    return section("Test metrics (metrics.json)", tag("div", join(tables), class_="grid"),
                   id_="metrics")  # fmt: skip


def _history_section(facts: RunFacts) -> Html:
    history = facts.history
    if not history:
        return section(
            "Learning curves", note("no history.json in the run directory"), id_="curves"
        )
    columns = list(dict.fromkeys(key for record in history for key in record))
    rows = [[record.get(key) for key in columns] for record in history]
    parts: list[Any] = []
    if facts.learning_curve is not None:
        parts.append(image(facts.learning_curve.png, "learning curve: loss and validation"))
    parts.append(tag("details", join([tag("summary", "per epoch"), table(columns, rows)])))
    return section("Learning curves (history.json)", *parts, id_="curves")


def _user(sample: SampleUser) -> Html:
    shown = ", ".join(_item(item) for item in sample.history)
    more = sample.n_history - len(sample.history)
    if more > 0:
        shown += escape(f" ... and {more:,} more")
    rows = []
    for rank, rec in enumerate(sample.recommendations, 1):
        # Items that pull the score down (or hardly up) are no reason to like it.
        reasons = [b for b in rec.because if b.share >= _MIN_SHARE]
        because = ", ".join(f"{_item(b.item)} ({b.share:.0%})" for b in reasons)
        rows.append(
            (rank, _item(rec.item), rec.score, tag("span", Html(because), class_="because"))
        )
    history = Html(f"<b>history</b> ({sample.n_history:,} items): {shown}")
    header = ("rank", "recommended", "score", "because you liked (share of the score)")
    return tag(
        "div",
        join([
            tag("h3", f"user {sample.user}"),
            tag("p", history, class_="history"),
            table(header, rows, numeric=(0, 2)),
        ]),
        class_="user",
    )  # fmt: skip


def _samples_section(samples: Samples | None) -> list[Html]:
    if samples is None:
        return []
    if not samples.users:
        return [
            section("Sample recommendations", note("no user has a training history"), id_="samples")
        ]
    quantiles = [f"{q:.0%}" for q in SAMPLE_QUANTILES]
    shown = (
        f"{', '.join(quantiles[:-1])} and {quantiles[-1]}" if len(quantiles) > 1 else quantiles[0]
    )
    parts: list[Any] = [
        note(
            f"Users at {shown} of the history lengths (shortest first); a history is the "
            "user's training positives, which the recommendations leave out. The share of a "
            "history item is its part of the score's split over the whole history "
            "(model.explain)."
        )
    ]
    if samples.explain_note is not None:
        parts.append(note(samples.explain_note))
    parts += [_user(user) for user in samples.users]
    return [section("Sample recommendations", *parts, id_="samples")]


def _timings_section(facts: RunFacts) -> Html:
    _, resources, _ = _split_metrics(facts.metrics)
    rows = list(resources.items())
    seconds = [r["seconds"] for r in facts.history if isinstance(r.get("seconds"), (int, float))]
    if seconds:
        rows += [
            ("epochs", len(seconds)),
            ("mean epoch seconds", sum(seconds) / len(seconds)),
        ]
    return section("Timings", table(("what", "value"), rows), id_="timings")


def run_page(facts: RunFacts) -> str:
    """The HTML report of one run."""
    source = facts.config.get("data", {}).get("source", "?")
    scores, _, _ = _split_metrics(facts.metrics)
    headline = ", ".join(f"{escape(k)} {cell(v)}" for k, v in list(scores.items())[:3])
    # Results first, then what produced them.
    sections: list[Html] = [
        _metrics_section(facts.metrics),
        _history_section(facts),
        *_samples_section(facts.samples),
        *_data_section(facts.data),
        _settings_section(facts.config),
        _timings_section(facts),
    ]
    return page(
        f"tripletrec run: {facts.directory.name}",
        Html(
            f"{escape(source)}: {headline} &middot; tripletrec {escape(__version__)} "
            f"&middot; <code>{escape(facts.directory)}</code>"
        ),
        [_contents(sections), *(note(text) for text in facts.notes), *sections],
    )


#: Anchor and link text of every section a page may have, in the order pages show them.
_CONTENTS = (
    ("runs", "runs"), ("metrics", "test metrics"), ("curves", "learning curves"),
    ("samples", "sample recommendations"), ("data", "data"), ("settings", "settings"),
    ("timings", "timings"), ("facts", "facts"),
)  # fmt: skip


def _contents(sections: Sequence[Html]) -> Html:
    """Links to the sections present."""
    ids = {anchor for anchor, _ in _CONTENTS if any(f'id="{anchor}"' in s for s in sections)}
    return contents([(anchor, title) for anchor, title in _CONTENTS if anchor in ids])


# --------------------------------------------------------------------------- side by side
def run_labels(runs: Sequence[RunFacts]) -> list[str]:
    """Column labels: directory names, or the paths where two names are the same."""
    names = [run.directory.name for run in runs]
    if len(set(names)) < len(names):
        names = [str(run.directory) for run in runs]
    return [name if names.count(name) == 1 else f"{name} #{i + 1}" for i, name in enumerate(names)]


def _side_by_side(
    labels: Sequence[str], columns: Sequence[Mapping[str, Any]], *, best: bool = False
) -> tuple[list[str], list[list[Any]]]:
    keys = list(dict.fromkeys(key for column in columns for key in column))
    rows = []
    for key in keys:
        values = [column.get(key) for column in columns]
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        top = max(numbers) if best and numbers else None
        rows.append([key, *(tag("b", v) if top is not None and v == top else v for v in values)])
    return ["", *labels], rows


def _settings_diff(labels: Sequence[str], runs: Sequence[RunFacts]) -> Html:
    columns = [flatten(run.config) for run in runs]
    header, rows = _side_by_side(labels, columns)
    differs = [row for row in rows if len({json.dumps(v, default=str) for v in row[1:]}) > 1]
    parts: list[Any] = [
        table(header, differs, caption="settings that differ")
        if differs
        else note("every setting is the same")
    ]
    parts.append(tag("details", join([tag("summary", "all settings"), table(header, rows)])))
    return section("Settings (config.json)", *parts, id_="settings")


def _overlaid_curves(labels: Sequence[str], runs: Sequence[RunFacts]) -> Html:
    histories = {label: run.history for label, run in zip(labels, runs) if run.history}
    if not histories:
        return section("Learning curves", note("no run has a history.json"), id_="curves")
    figure = plots.learning_curve_figure(histories)
    if figure is None:
        return section("Learning curves", note("matplotlib is not installed"), id_="curves")
    try:
        png = plots.figure_png(figure)
    finally:
        plots.close_figure(figure)
    return section("Learning curves", image(png, "learning curves, overlaid"), id_="curves")


def comparison_page(runs: Sequence[RunFacts]) -> str:
    """The HTML page of several runs side by side."""
    labels = run_labels(runs)
    split = [_split_metrics(run.metrics) for run in runs]
    score_header, score_rows = _side_by_side(labels, [s[0] for s in split], best=True)
    resource_header, resource_rows = _side_by_side(labels, [s[1] for s in split])
    fact_header, fact_rows = _side_by_side(labels, [s[2] for s in split])
    runs_table = table(
        ("run", "data", "directory"),
        [
            (label, run.config.get("data", {}).get("source", "?"), Html(tag("code", run.directory)))
            for label, run in zip(labels, runs)
        ],
        numeric=(),
    )
    sections = [
        section("Runs", runs_table, id_="runs"),
        section(
            "Test metrics (metrics.json)",
            note("the best value of each metric in bold (higher is better)"),
            table(score_header, score_rows),
            id_="metrics",
        ),
        _overlaid_curves(labels, runs),
        _settings_diff(labels, runs),
        section("Timings", table(resource_header, resource_rows), id_="timings"),
        section("Facts", table(fact_header, fact_rows), id_="facts"),
    ]
    return page(
        f"tripletrec: {len(runs)} runs side by side",
        f"tripletrec {__version__}",
        [_contents(sections), *sections],
    )
