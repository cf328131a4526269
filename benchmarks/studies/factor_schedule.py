"""The factor part's steps: fewer, larger per-user batches, on validation splits of the
training positives only (never test).

``tripletrec.Recommender``'s factor part groups its batches by user and took 7 epochs of
3,072 positives a step: 469 steps on anime-5k, 1,848 on Gowalla. Each step also pays
passes over the whole embedding tables (Adam, the norm bound), so the steps, not the
positives, were most of its time. This study fits the Recommender with its factor part in
each of two settings, named explicitly:

- *7 epochs of 3,072*: the setting before;
- *grown*: what ``hybrid_factor.grow_user_batches`` makes of ``TripletRecommender()`` for the
  part's positives: batches of at least 1/16 of them, up to 4 x 3,072, with the learning
  rate in proportion, 5 epochs (unchanged where 3,072 already holds 1/16).

On anime-tv and MovieLens-100k the factor part keeps its weight decay
(``hybrid_factor.FACTOR_DEFAULTS_BESIDE_EASE``). The Gowalla parts (``_study.gowalla_parts``) are
its cores of 2,714, 8,180 and 18,649 items (EASE, EASE and the graph filter beside the
factor part), a 20 % user sample (the graph filter) and the whole split (the graph
filter). The column *default* marks the setting ``Recommender()`` itself uses there: the
grown batches beside EASE without the decay, else 7 epochs of 3,072.

Protocol: small sets, the validation parts of ``perf/compare.py``'s split (20 % of the
training positives held out, seed 0), model seeds ``0 .. seeds - 1``, AUC / NDCG@10.
Gowalla: fitted on ``train.txt`` (restricted to the part), scored on ``valid.txt``
(restricted alike) with LightGCN's Recall@20 / NDCG@20, seed 0; ``test.txt`` is never
read. Fit seconds are wall times on the study's machine (2 threads), for orientation;
``perf/compare.py`` measures speed against the peers.

Run: ``python benchmarks/studies/factor_schedule.py [--datasets ...] [--seeds 3]
[--gowalla PATH | none]``. Writes ``results/factor_schedule.md`` and ``.json``.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "2")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import tripletrec as tr  # noqa: E402
from tripletrec.models.hybrid_factor import grow_user_batches  # noqa: E402

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

VARIANTS = ("7 epochs of 3,072", "grown")
#: Gowalla's cores (items with at least this many training positives) and user samples.
CORES = (40, 20, 12)
USER_SHARES = (0.2,)


def _settings(n_positives: int) -> dict[str, dict]:
    """Each variant's factor setting for a part of ``n_positives`` positives."""
    grown = tr.TripletRecommender()
    before = {"epochs": 7, "batch_size": grown.batch_size, "learning_rate": grown.learning_rate}
    grown.set_params(epochs=7)
    grow_user_batches(grown, n_positives)
    names = ("epochs", "batch_size", "learning_rate")
    return dict(zip(VARIANTS, (before, {name: getattr(grown, name) for name in names})))


def _fitted_rows(
    name: str, fit_part: tr.Interactions, held_out: tr.Interactions, metrics, seeds: int
) -> list[dict]:
    rows = []
    seen = fit_part.to_csr()
    default = tr.Recommender()._factor_model(tr.Recommender()._item_item_kind(seen.shape[1]), seen)

    def describe(model: tr.Recommender) -> dict:
        part = model.factor_
        return {
            "batch_size": part.batch_size,
            "learning_rate": part.learning_rate,
            "epochs": part.epochs,
            "l2": part.l2,
            "positives": len(fit_part),
            "item_item": model.item_item_kind_,
            "default": (part.batch_size, part.epochs) == (default.batch_size, default.epochs),
        }

    for variant, factor in _settings(len(fit_part)).items():
        for seed in range(seeds):
            model = tr.Recommender(random_state=seed, factor=factor)
            labels = {"dataset": name, "variant": variant, "seed": seed}
            rows.append(fitted_row(model, fit_part, held_out, metrics, describe, **labels))
    return rows


def small_set_rows(
    dataset: str, fit_part: tr.Interactions, validation: tr.Interactions, seeds: int
) -> list[dict]:
    """One row per (variant, seed) on a small set's validation part."""
    tr.Recommender(random_state=0).fit(fit_part)  # warm-up, not recorded
    return _fitted_rows(dataset, fit_part, validation, SMALL_SET_METRICS, seeds)


def gowalla_rows(folder: Path) -> list[dict]:
    """One row per (variant, Gowalla part), seed 0; the whole split last."""
    from tripletrec.data.datasets.gowalla import load_gowalla

    rows = []
    for name, fit_part, held_out in gowalla_parts(folder, CORES, USER_SHARES):
        rows += _fitted_rows(name, fit_part, held_out, GOWALLA_METRICS, 1)
    split = load_gowalla(folder)
    rows += _fitted_rows("gowalla, whole", split.train, split.valid, GOWALLA_METRICS, 1)
    return rows


def markdown(rows: list[dict], environment: dict) -> str:
    lines = [
        "# The factor part's steps without weight decay",
        "",
        f"`{environment['command'].strip()}` — {environment['date']}, "
        f"{environment['machine']}; wall time {environment['wall_seconds']:.0f} s.",
        "",
        "Validation positives only (the test rows of compare.py and Gowalla's test.txt are "
        "never read). Small sets: mean +- std over model seeds, AUC / NDCG@10; Gowalla "
        "parts: fitted on train.txt restricted to the part, scored on valid.txt restricted "
        "alike, seed 0, Recall@20 / NDCG@20. Batch, learning rate, epochs and l2: the "
        "factor part's, as fitted; default: the setting Recommender() uses on this data. "
        "Fit s: median wall time of the whole Recommender fit, for orientation.",
        "",
        "| data | positives | item-item | variant | batch | lr | epochs | l2 | default | "
        "AUC / Recall@20 | NDCG@10 / NDCG@20 | fit s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset, variant, runs, metrics in grouped_runs(rows, VARIANTS):
        first = runs[0]
        setting = [f"{first['batch_size']:,}", f"{first['learning_rate']:.3g}",
                   str(first["epochs"]), f"{first['l2']:g}",
                   "yes" if first["default"] else ""]  # fmt: skip
        cells = [dataset, f"{first['positives']:,}", first["item_item"], variant, *setting,
                 *seeds_cells(runs, metrics)]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_study_with_gowalla(
        __file__, __doc__.splitlines()[0], small_set_rows, gowalla_rows, markdown
    )
