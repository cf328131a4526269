"""The factor part's weight decay beside EASE, by how dense the data is: on validation
splits of the training positives only (never test).

``tripletrec.Recommender`` fits EASE beside its factor model on catalogues of up to
``hybrid.EASE_MAX_ITEMS`` items, and there its factor model kept a small weight decay
(``hybrid_factor.FACTOR_DEFAULTS_BESIDE_EASE``, chosen on anime-tv, MovieLens-100k and anime-5k).
Adam's coupled decay pushes rows with rare, small gradients to zero (``docs/models.md``,
"Weight decay and sparse catalogues"): on Gowalla it made the factor model rank like
popularity, and Gowalla fits the graph filter, without the decay. A catalogue of under
10,000 items can be as sparse as Gowalla, though. This study fits the default with and
without the decay on the three small sets and on Gowalla's cores (the items with at least
12, 15, 20, 30 or 40 training positives: 18,649 to 2,714 items, 0.10 % to 0.31 % of their
users x items filled), with the graph filter beside them, and on 20 % and 35 % user samples
of Gowalla (36,561 and 40,063 active items, of which 7,919 and 17,682 have EASE's 5
positives). The graph filter's rows test the item-item rule (EASE up to
``hybrid.EASE_MAX_ITEMS`` items by catalogue size) on both sides: cores past 10,000 items
that EASE covers whole, and samples whose items are mostly too rare for EASE.

Density: training positives over (users with a positive) x (items with a positive).

Protocol: small sets, the validation parts of ``perf/compare.py``'s split
(``_study.validation_parts``: 20 % of the training positives held out, seed 0), model seeds
``0 .. seeds - 1``. Gowalla: fitted on ``train.txt`` restricted to the core's items (or to
the sampled users, seed 0), scored on ``valid.txt`` restricted alike (LightGCN's
Recall@20 / NDCG@20); ``test.txt`` is never read; one seed (0). Fit seconds are wall times
on the study's machine (2 threads), for orientation only.

Run: ``python benchmarks/studies/decay_density.py [--datasets ...] [--seeds 3]
[--gowalla PATH | none]``. Writes ``results/decay_density.md`` and ``.json``.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "2")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import tripletrec as tr  # noqa: E402
from tripletrec.models.hybrid import EASE_MIN_ITEM_POSITIVES  # noqa: E402
from tripletrec.models.hybrid_factor import (  # noqa: E402
    FACTOR_DEFAULTS_BESIDE_EASE,
    positives_density,
)
from tripletrec.models.item_item import ItemItemMixin  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _study import (  # noqa: E402
    GOWALLA_METRICS,
    SMALL_SET_METRICS,
    fitted_row,
    gowalla_parts,
    grouped_runs,
    run_study_with_gowalla,
    seeds_cells,
)

DECAY = FACTOR_DEFAULTS_BESIDE_EASE["l2"]
#: Each variant: the estimator's keyword arguments.
VARIANTS: dict[str, dict] = {
    f"EASE, factor l2 {DECAY:g}": {"item_item": "ease", "factor": {"l2": DECAY}},
    "EASE, factor l2 0": {"item_item": "ease", "factor": {"l2": 0.0}},
    "graph filter (factor l2 0)": {"item_item": "graph_filter"},
}
#: Gowalla's cores: the items with at least this many training positives.
CORES = (12, 15, 20, 30, 40)
#: The shares of Gowalla's users in the user samples (nested: one permutation, seed 0).
USER_SHARES = (0.2, 0.35)


def _shape(fit_part: tr.Interactions) -> dict:
    seen = fit_part.to_csr()
    return {
        "active_items": len(ItemItemMixin._active_columns(seen)),
        "kept_items": len(ItemItemMixin._active_columns(seen, EASE_MIN_ITEM_POSITIVES)),
        "density": positives_density(seen),
    }


def small_set_rows(
    dataset: str, fit_part: tr.Interactions, validation: tr.Interactions, seeds: int
) -> list[dict]:
    """One row per (EASE variant, seed) on a small set's validation part."""
    rows, shape = [], _shape(fit_part)
    tr.Recommender(random_state=0).fit(fit_part)  # warm-up, not recorded
    for variant, kwargs in list(VARIANTS.items())[:2]:
        for seed in range(seeds):
            model = tr.Recommender(random_state=seed, **kwargs)
            labels = {"dataset": dataset, "variant": variant, "seed": seed}
            rows.append(
                fitted_row(model, fit_part, validation, SMALL_SET_METRICS, **labels) | shape
            )
    return rows


def gowalla_rows(folder: Path) -> list[dict]:
    """One row per (variant, Gowalla part), seed 0."""
    rows = []
    for name, fit_part, held_out in gowalla_parts(folder, CORES, USER_SHARES):
        shape = _shape(fit_part)
        for variant, kwargs in VARIANTS.items():
            model = tr.Recommender(random_state=0, **kwargs)
            labels = {"dataset": name, "variant": variant, "seed": 0}
            rows.append(fitted_row(model, fit_part, held_out, GOWALLA_METRICS, **labels) | shape)
    return rows


def markdown(rows: list[dict], environment: dict) -> str:
    lines = [
        "# The factor part's weight decay beside EASE, by density",
        "",
        f"`{environment['command'].strip()}` — {environment['date']}, "
        f"{environment['machine']}; wall time {environment['wall_seconds']:.0f} s.",
        "",
        "Validation positives only (the test rows of compare.py and Gowalla's test.txt are "
        "never read). Density: training positives over (users with a positive) x (items "
        "with a positive); kept items: those with EASE's 5 training positives. Small sets: "
        "mean +- std over model seeds, AUC / NDCG@10; Gowalla parts: fitted on train.txt "
        "restricted to the part, scored on valid.txt restricted alike, seed 0, "
        "Recall@20 / NDCG@20. Fit s: median wall time, for orientation.",
        "",
        "| data | density | active items | kept items | model | AUC / Recall@20 | "
        "NDCG@10 / NDCG@20 | fit s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    shapes = {row["dataset"]: row for row in rows}
    for dataset, variant, runs, metrics in grouped_runs(rows, VARIANTS):
        first = shapes[dataset]
        shape = [f"{first['density']:.2%}", f"{first['active_items']:,}",
                 f"{first['kept_items']:,}"]  # fmt: skip
        cells = [dataset, *shape, variant, *seeds_cells(runs, metrics)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_study_with_gowalla(
        __file__, __doc__.splitlines()[0], small_set_rows, gowalla_rows, markdown
    )
