"""How few positives an item may have and still enter the EASE part of
``tripletrec.Recommender``, on validation splits of the training positives only (never
test).

EASE's inverse costs the cube of the items it holds, and under the ridge ``l2`` the
weights of an item with a handful of positives stay near zero in both directions (what it
predicts, what predicts it). ``EASERecommender(min_item_positives=m)`` leaves items with
fewer than ``m`` training positives out of the inverse; the hybrid's factor model still
ranks them. This study fits ``tripletrec.Recommender`` with the EASE part's threshold set
to each of :data:`THRESHOLDS` (``hybrid.EASE_MIN_ITEM_POSITIVES``; 1 keeps every item with
a positive, the estimator before the threshold) and reports the validation metrics, the
items EASE kept and the fit time.

Protocol: the validation parts of ``perf/compare.py``'s split (``_study.validation_parts``:
20 % of each data set's *training* positives held out, seed 0; the test positives are never
read), model seeds ``0 .. seeds - 1``. Fit seconds are wall times of the whole fit on the
study's machine (2 threads), for orientation only: ``perf/compare.py`` times fits.

Run: ``python benchmarks/studies/ease_min_positives.py [--datasets ...] [--seeds 3]``.
Writes ``results/ease_min_positives.md`` and ``results/ease_min_positives.json``.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "2")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import tripletrec as tr  # noqa: E402
from tripletrec.models import hybrid  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _study import (  # noqa: E402
    SMALL_SET_METRICS,
    fitted_row,
    grouped_runs,
    run_validation_study,
    seeds_cells,
    seeds_header,
)

THRESHOLDS = (1, 3, 5, 8, 13)


def study(
    dataset: str, fit_part: tr.Interactions, validation: tr.Interactions, seeds: int
) -> list[dict]:
    """One row per (threshold, seed): ``tripletrec.Recommender`` with its EASE part kept to
    the items with at least that many training positives."""
    rows = []
    default = hybrid.EASE_MIN_ITEM_POSITIVES
    try:
        for least in THRESHOLDS:
            hybrid.EASE_MIN_ITEM_POSITIVES = least
            for seed in range(seeds):
                labels = {"dataset": dataset, "min_item_positives": least, "seed": seed}
                rows.append(fitted_row(tr.Recommender(random_state=seed), fit_part, validation,
                                       SMALL_SET_METRICS, _kept, **labels))  # fmt: skip
    finally:
        hybrid.EASE_MIN_ITEM_POSITIVES = default
    return rows


def _kept(model: tr.Recommender) -> dict:
    """The fitted Recommender's EASE l2 and the items in its inverse."""
    return {"l2": model.l2_, "kept_items": len(model.item_item_.active_items_)}


def markdown(rows: list[dict], environment: dict) -> str:
    n_seeds = len({r["seed"] for r in rows})
    title = "The EASE part's least positives per item, on validation splits"
    lines = [
        *seeds_header(title, environment, n_seeds),
        "Validation positives: 20 % of each data set's *training* positives (the test rows "
        "of compare.py are never read). `tripletrec.Recommender(random_state=seed)` with its "
        "EASE part fitted on the items with at least *m* training positives "
        "(`hybrid.EASE_MIN_ITEM_POSITIVES`; m = 1: every item with a positive). Kept items: "
        "those in EASE's inverse. Fit s: the whole fit (factor model, l2 search, EASE), "
        "median, while nothing else ran; for orientation (`perf/compare.py` times fits).",
        "",
        "| data set | m | kept items | l2 | AUC | NDCG@10 | fit s |",
        "|---|---|---|---|---|---|---|",
    ]
    for dataset, least, group, metrics in grouped_runs(rows, THRESHOLDS, "min_item_positives"):
        l2_values = ", ".join(f"{v:g}" for v in sorted({r["l2"] for r in group}))
        cells = [dataset, str(least), f"{group[0]['kept_items']:,}", l2_values]
        lines.append("| " + " | ".join(cells + seeds_cells(group, metrics)) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_validation_study(
        __file__,
        "Recommender's EASE part kept to items with at least m positives, on validation splits.",
        study,
        markdown,
        seeds=3,
    )
