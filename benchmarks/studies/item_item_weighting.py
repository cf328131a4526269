"""EASE with its users weighted by the length of their history, alone and inside
HybridRecommender, on validation splits of the training positives only (never test).

EASE's objective ``min sum_u w_u ||x_u - x_u B||^2 + l2 ||B||^2`` with every ``w_u = 1``
(Steck 2019) lets a user with 300 positives add 300 x 299 co-occurrences to ``X'X`` and a
user with 10 only 90: ``B`` is mostly learned from the heaviest users. ``w_u = n_u ** -a``
(rescaled so that all positives weigh as much in total, which keeps ``l2``'s scale;
``EASERecommender(user_weight_exponent=a)``) evens that out; ``a = 0`` is Steck's EASE.

Protocol: the validation parts of ``perf/compare.py``'s split (``_study.validation_parts``: 20 % of
each data set's *training* positives held out, seed 0; the test positives are never read).
Per exponent of :data:`EXPONENTS`: EASE at each ``l2`` of ``HybridRecommender``'s grid
(deterministic), and ``tripletrec.HybridRecommender(user_weight_exponent=a)`` with its own
``l2="auto"`` (chosen on an inner split of the fit part) over model seeds.

Run: ``python benchmarks/studies/item_item_weighting.py [--datasets ...] [--seeds 3]``.
Writes ``results/item_item_weighting.md`` and ``results/item_item_weighting.json``.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "2")

import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import tripletrec as tr  # noqa: E402
from tripletrec.models.hybrid import L2_GRID  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _results import mean_std_of  # noqa: E402
from _study import run_validation_study, validation_row  # noqa: E402

METRICS = ("auc", "ndcg@10")
EXPONENTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def study(
    dataset: str, fit_part: tr.Interactions, validation: tr.Interactions, seeds: int
) -> list[dict]:
    """One row per (EASE, exponent, l2) and per (HybridRecommender, exponent, seed)."""
    rows = []
    for exponent in EXPONENTS:
        for l2 in L2_GRID:
            start = time.perf_counter()
            model = tr.EASERecommender(l2=l2, user_weight_exponent=exponent).fit(fit_part)
            labels = {"dataset": dataset, "model": "EASE", "exponent": exponent, "l2": l2}
            rows.append(validation_row(model, fit_part, validation, METRICS, **labels,
                                       seconds=time.perf_counter() - start))  # fmt: skip
        for seed in range(seeds):
            start = time.perf_counter()
            model = tr.HybridRecommender(user_weight_exponent=exponent, random_state=seed)
            model.fit(fit_part)
            labels = {"dataset": dataset, "model": "HybridRecommender", "exponent": exponent}
            rows.append(validation_row(model, fit_part, validation, METRICS, **labels,
                                       seed=seed, l2=model.l2_,
                                       seconds=time.perf_counter() - start))  # fmt: skip
    return rows


def markdown(rows: list[dict], environment: dict) -> str:
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    n_seeds = len({r["seed"] for r in rows if "seed" in r})
    header = " | ".join(
        f"{d}: EASE (l2) AUC, NDCG@10 | {d}: HybridRecommender (l2) AUC, NDCG@10" for d in datasets
    )
    lines = [
        "# EASE with users weighted by their history's length, on validation splits",
        "",
        f"`{environment['command'].strip()}` — {environment['date']}, "
        f"{environment['machine']}; {n_seeds} model seed(s) for the hybrid, mean +- std; "
        f"wall time {environment['wall_seconds']:.0f} s.",
        "",
        "Validation positives: 20 % of each data set's *training* positives (the test rows "
        "of compare.py are never read). w_u = n_u^-a, rescaled to the same total; a = 0 is "
        "Steck's EASE. EASE: the best l2 of the grid for NDCG@10 on this split, with its AUC "
        "and NDCG@10. HybridRecommender: its own l2 (inner split of the fit part), AUC and "
        "NDCG@10 over the seeds. Sum: the hybrid's NDCG@10 means summed over the data sets.",
        "",
        f"| a | {header} | sum |",
        "|---|" + "---|---|" * len(datasets) + "---|",
    ]
    for exponent in EXPONENTS:
        cells, total = [], 0.0
        for dataset in datasets:
            of = [r for r in rows if r["dataset"] == dataset and r["exponent"] == exponent]
            ease = max((r for r in of if r["model"] == "EASE"), key=lambda r: r["ndcg@10"])
            cells.append(f"({ease['l2']:g}) {ease['auc']:.4f}, {ease['ndcg@10']:.4f}")
            hybrid = [r for r in of if r["model"] == "HybridRecommender"]
            chosen = "/".join(f"{v:g}" for v in sorted({r["l2"] for r in hybrid}))
            cells.append(
                f"({chosen}) {mean_std_of([r['auc'] for r in hybrid])}, "
                f"{mean_std_of([r['ndcg@10'] for r in hybrid])}"
            )
            total += statistics.fmean(r["ndcg@10"] for r in hybrid)
        lines.append(f"| {exponent:g} | " + " | ".join(cells) + f" | {total:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    run_validation_study(__file__, __doc__.splitlines()[0], study, markdown, argv, seeds=3)


if __name__ == "__main__":
    main()
