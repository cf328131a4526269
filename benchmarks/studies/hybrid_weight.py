"""HybridRecommender's EASE weight on validation splits, over model seeds, and by how long
the users' histories are.

Protocol: the validation parts of ``perf/compare.py``'s split (``_study.validation_parts``: 20 % of
each data set's *training* positives held out, seed 0; the test positives are never read).
Per model seed, ``tripletrec.HybridRecommender(random_state=seed)`` is fitted once on the
fit part and scored at each weight of :data:`WEIGHTS`: the weight enters only the blend of
the two parts' scores (``hybrid.blend``), not their fits, so ``set_params(weight=w)`` on
the fitted model scores exactly what ``HybridRecommender(weight=w)`` would.

Two questions: is the default weight the best summed NDCG@10 over the three sets beyond
the seeds' noise; and does the best weight grow with a user's history (the number of
fit-part positives, in quintiles), which would let a per-user weight follow the amount of
data, as the best weight does on anime-5k (``hybrid_data_size.py``).

Run: ``python benchmarks/studies/hybrid_weight.py [--datasets ...] [--seeds 3]``.
Writes ``results/hybrid_weight.md`` and ``results/hybrid_weight.json``.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "2")

import statistics  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import tripletrec as tr  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _results import mean_std_of  # noqa: E402
from _study import run_validation_study  # noqa: E402

METRICS = ("auc", "ndcg@10")
WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.7)
DEFAULT_WEIGHT = tr.HybridRecommender().weight
N_BUCKETS = 5


def study(
    dataset: str, fit_part: tr.Interactions, validation: tr.Interactions, seeds: int
) -> list[dict]:
    """One row per (seed, weight): AUC, NDCG@10, and NDCG@10 per history-length quintile."""
    rows = []
    for seed in range(seeds):
        model = tr.HybridRecommender(random_state=seed).fit(fit_part)
        for weight in WEIGHTS:
            model.set_params(weight=weight)
            scores = tr.evaluate(model, fit_part, validation, METRICS, per_user=True)
            lengths = np.diff(model.seen_.indptr)[model.user_map_.to_index(scores["users"])]
            bounds = np.quantile(lengths, np.linspace(0, 1, N_BUCKETS + 1))
            # Each user in one bucket: the upper bound of the last is included.
            bucket = np.clip(np.searchsorted(bounds, lengths, side="right") - 1, 0, N_BUCKETS - 1)
            ndcg = scores["per_user"]["ndcg@10"]
            rows.append(
                {"dataset": dataset, "seed": seed, "weight": weight}
                | {metric: scores[metric] for metric in METRICS}
                | {
                    "length_bounds": bounds.tolist(),
                    "ndcg@10_by_length": [
                        float(np.nanmean(ndcg[bucket == b])) for b in range(N_BUCKETS)
                    ],
                }
            )
            print(f"  seed {seed} w {weight}: AUC {scores['auc']:.4f} "
                  f"NDCG@10 {scores['ndcg@10']:.4f}", flush=True)  # fmt: skip
    return rows


def markdown(rows: list[dict], environment: dict) -> str:
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    n_seeds = len({r["seed"] for r in rows})
    lines = [
        "# HybridRecommender's weight on validation splits",
        "",
        f"`{environment['command'].strip()}` — {environment['date']}, "
        f"{environment['machine']}; {n_seeds} model seed(s), mean +- std; "
        f"wall time {environment['wall_seconds']:.0f} s.",
        "",
        "Validation positives: 20 % of each data set's *training* positives (the test rows "
        "of compare.py are never read). One fit per seed, scored at each weight (the "
        f"default is {DEFAULT_WEIGHT:g}). Sum: the NDCG@10 means summed over the data sets.",
        "",
        "| weight | " + " | ".join(f"{d} AUC | {d} NDCG@10" for d in datasets) + " | sum |",
        "|---|" + "---|---|" * len(datasets) + "---|",
    ]
    for weight in WEIGHTS:
        cells, total = [], 0.0
        for dataset in datasets:
            subset = [r for r in rows if r["dataset"] == dataset and r["weight"] == weight]
            cells += [mean_std_of([r[m] for r in subset]) for m in METRICS]
            total += statistics.fmean(r["ndcg@10"] for r in subset)
        lines.append(f"| {weight:g} | " + " | ".join(cells) + f" | {total:.4f} |")
    lines += [
        "",
        "## The best weight by history length",
        "",
        "Users in quintiles of their number of fit-part positives (bounds from the first "
        "seed); each cell the weight with the best mean NDCG@10 over the seeds, and that "
        "NDCG@10.",
        "",
        "| data | " + " | ".join(f"quintile {b + 1}" for b in range(N_BUCKETS)) + " |",
        "|---|" + "---|" * N_BUCKETS,
    ]
    for dataset in datasets:
        subset = [r for r in rows if r["dataset"] == dataset]
        bounds = subset[0]["length_bounds"]
        cells = []
        for b in range(N_BUCKETS):
            means = {
                w: statistics.fmean(r["ndcg@10_by_length"][b] for r in subset if r["weight"] == w)
                for w in WEIGHTS
            }
            chosen = max(means, key=means.__getitem__)
            cells.append(
                f"{bounds[b]:.0f}-{bounds[b + 1]:.0f} items: w {chosen:g} ({means[chosen]:.4f})"
            )
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    run_validation_study(__file__, __doc__.splitlines()[0], study, markdown, argv, seeds=3)


if __name__ == "__main__":
    main()
