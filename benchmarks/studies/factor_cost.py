"""Cheaper settings for ``tripletrec.Recommender``'s factor model, on validation splits of
the training positives only (never test): what each saves and what it costs in ranking.

The default's fit on the bundled anime-5k is mostly its factor model (7 epochs of the
full softmax over 7,157 items, per-user batches of 3,072 positives, 128 factors), and its
fit time is the one target of issue 23 still missed (``perf/compare.py``: at most LightFM
WARP's). Each row changes the factor model's settings (``Recommender(factor=...)``): more
positives per batch (fewer steps, so less of the per-step work over whole tables: Adam,
the max-norm bound) with a larger step size, fewer epochs, fewer factors. None is a
default: this study records why (``docs/models.md``, "The factor model and an item-item
model together").

Protocol: the validation parts of ``perf/compare.py``'s split (``_study.validation_parts``:
20 % of each data set's *training* positives held out, seed 0; the test positives are never
read), model seeds ``0 .. seeds - 1``. Fit seconds are medians of the whole fit, run alone,
for orientation (``perf/compare.py`` times fits against the peers).

Run: ``python benchmarks/studies/factor_cost.py [--datasets ...] [--seeds 3]``.
Writes ``results/factor_cost.md`` and ``results/factor_cost.json``.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "2")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import tripletrec as tr  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _study import (  # noqa: E402
    SMALL_SET_METRICS,
    fitted_row,
    grouped_runs,
    run_validation_study,
    seeds_cells,
    seeds_header,
)

#: Each variant's factor settings over the default's (an empty mapping: the default).
VARIANTS: dict[str, dict] = {
    "default": {},
    "batch 6,144, learning rate 0.08": {"batch_size": 6144, "learning_rate": 0.08},
    "6 epochs": {"epochs": 6},
    "5 epochs": {"epochs": 5},
    "64 factors": {"n_factors": 64},
}


def study(
    dataset: str, fit_part: tr.Interactions, validation: tr.Interactions, seeds: int
) -> list[dict]:
    """One row per (variant, seed): ``tripletrec.Recommender`` with that factor model."""
    rows = []
    tr.Recommender(random_state=0).fit(fit_part)  # warm-up, not recorded
    for variant, settings in VARIANTS.items():
        for seed in range(seeds):
            model = tr.Recommender(random_state=seed, factor=settings or None)
            labels = {"dataset": dataset, "variant": variant, "seed": seed}
            rows.append(fitted_row(model, fit_part, validation, SMALL_SET_METRICS, **labels))
    return rows


def markdown(rows: list[dict], environment: dict) -> str:
    n_seeds = len({r["seed"] for r in rows})
    title = "Cheaper settings for the default's factor model, on validation splits"
    lines = [
        *seeds_header(title, environment, n_seeds),
        "Validation positives: 20 % of each data set's *training* positives (the test rows "
        "of compare.py are never read). `tripletrec.Recommender(random_state=seed, "
        "factor=...)`; the default's factor model trains 7 epochs of per-user batches of "
        "3,072 positives at learning rate 0.04 with 128 factors. Fit s: median of the whole "
        "fit, run alone; for orientation (`perf/compare.py` times fits).",
        "",
        "| data set | factor model | AUC | NDCG@10 | fit s |",
        "|---|---|---|---|---|",
    ]
    for dataset, variant, group, metrics in grouped_runs(rows, VARIANTS):
        lines.append("| " + " | ".join([dataset, variant, *seeds_cells(group, metrics)]) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_validation_study(
        __file__,
        "Cheaper settings for Recommender's factor model, on validation splits.",
        study,
        markdown,
        seeds=3,
    )
