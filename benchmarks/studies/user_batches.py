"""Per-user batches of the full softmax against shuffled positives: fit time and quality,
both measured in one run, on validation splits of the training positives only (never test).

The full softmax scores the whole catalogue once per distinct user of a batch. Batches of
shuffled positives hold almost as many users as positives, so an epoch scores about
positives x items pairs; ``batch_by="user"`` keeps each user's positives together, so an
epoch scores about (users + batches) x items. Both train the same objective (every
positive's ``logsumexp - s_pos``); the difference is the order the optimiser sees it in.

Protocol: ``compare.py``'s split (random 80/20 row split, seed 42; positives rating > 7 on
anime-tv and anime-5k, >= 4 on MovieLens-100k, skipped with a note when ``../shared/data``
is absent), then ``tripletrec.validation_split(train, 0.2, random_state=0)``. The default
is fitted on the rest with ``batch_by="positive"`` and with ``batch_by="user"``, nothing
else changed, for seeds 0, 1, 2, and scored with full-ranking AUC and NDCG@10 on the
validation positives. Fit seconds are wall time of ``fit`` after an untimed one-epoch
warm-up of each; speed is reported as the
ratio of the two, measured side by side. What ``batch_by="auto"`` picks is shown per set.

Run alone (no other busy process on the cores): ``python benchmarks/studies/user_batches.py
[--datasets anime-tv,movielens-100k,anime-5k] [--seeds 3]``. Writes
``results/user_batches.md`` and ``results/user_batches.json``.
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
from tripletrec.training import losses  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _results import mean_std_of  # noqa: E402
from _study import run_validation_study, validation_row  # noqa: E402

METRICS = ("auc", "ndcg@10")
BATCH_BY = ("positive", "user")


def study(dataset: str, fit_part: tr.Interactions, validation: tr.Interactions, seeds: int):
    """One row per (batch_by, seed): fit seconds and the validation metrics."""
    rows = []
    for batch_by in BATCH_BY:  # untimed: the first fit of a process pays one-time costs
        tr.TripletRecommender(random_state=0, batch_by=batch_by, epochs=1).fit(fit_part)
    for seed in range(seeds):
        for batch_by in BATCH_BY:
            start = time.perf_counter()
            model = tr.TripletRecommender(random_state=seed, batch_by=batch_by).fit(fit_part)
            seconds = time.perf_counter() - start
            rows.append(validation_row(model, fit_part, validation, METRICS, dataset=dataset,
                                       batch_by=batch_by, seed=seed, seconds=seconds))  # fmt: skip
    auto = losses.resolve_batch_by("auto", "all", len(fit_part), fit_part.n_items)
    for row in rows:
        row |= {"n_positives": len(fit_part), "n_items": fit_part.n_items, "auto": auto}
    return rows


def markdown(rows: list[dict], environment: dict) -> str:
    lines = [
        "# Per-user batches of the full softmax, on validation splits",
        "",
        f"`{environment['command'].strip()}` — {environment['date']}, "
        f"{environment['machine']}; {environment['n_seeds']} seeds; wall time "
        f"{environment['wall_seconds']:.0f} s.",
        "",
        'The default with `batch_by="positive"` (shuffled positives) and with '
        '`batch_by="user"` (each user\'s positives together), nothing else changed; '
        "validation positives are 20 % of the *training* positives. Mean ± std over "
        "seeds. The time ratio is user over positive, both measured in this run. "
        '`auto` is what `batch_by="auto"` picks for this shape (budget '
        f"{losses.PER_POSITIVE_PAIR_BUDGET:.2g} positive x item pairs).",
        "",
        "| data | positives x items | batch_by | AUC | NDCG@10 | fit s | time ratio | auto |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        subset = [r for r in rows if r["dataset"] == dataset]
        mean_seconds = {
            b: statistics.fmean(r["seconds"] for r in subset if r["batch_by"] == b)
            for b in BATCH_BY
        }
        for batch_by in BATCH_BY:
            chosen = [r for r in subset if r["batch_by"] == batch_by]
            ratio = mean_seconds[batch_by] / mean_seconds["positive"]
            first = chosen[0]
            lines.append(
                f"| {dataset} | {first['n_positives'] * first['n_items']:.3g} | {batch_by} | "
                f"{mean_std_of([r['auc'] for r in chosen], 4)} | "
                f"{mean_std_of([r['ndcg@10'] for r in chosen], 4)} | "
                f"{mean_std_of([r['seconds'] for r in chosen], 1)} | {ratio:.2f} | "
                f"{first['auto']} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    run_validation_study(__file__, __doc__.splitlines()[0], study, markdown, argv, seeds=3)


if __name__ == "__main__":
    main()
