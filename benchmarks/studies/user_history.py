"""The factor model's user vector on validation splits: its own embedding alone, or with the
mean of its history's item embeddings (``TripletRecommender(user_history=...)``).

Which one ``user_history="auto"`` picks follows the batches: a user's embedding gets one step
per epoch when the batches group positives by user (``batch_by_ == "user"``), while the
items of their history move at every step. Each data set is fitted both ways, at the
defaults otherwise, and the row ``"auto"`` resolves to is marked.

Protocol: small sets as ``compare.py`` splits them (random 80/20 row split, seed 42;
positives rating > 7 on anime-tv and anime-5k, >= 4 on MovieLens-100k), then
``validation_split(train, 0.2, random_state=0)``: fitted on the rest with seeds 0, 1, 2 and
scored with full-ranking AUC and NDCG@10 on the validation positives. Gowalla (LightGCN's
split, ``../shared/data/gowalla``): fitted on ``train.txt`` with seed 0, scored on
``valid.txt`` with LightGCN's Recall@20 / NDCG@20; ``test.txt`` is never read. Fit seconds
are wall time of ``fit``, measured beside nothing else.

Run alone: ``python benchmarks/studies/user_history.py [--datasets ...] [--seeds 3]
[--gowalla PATH | --gowalla none]``. Writes ``results/user_history.md`` and ``.json``.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "2")

import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import tripletrec as tr  # noqa: E402
from tripletrec.models.triplet._features import resolved_user_history  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _results import mean_std_of  # noqa: E402
from _study import GOWALLA_METRICS, SMALL_SET_METRICS, run_study_with_gowalla  # noqa: E402


def auto_choice(fit_part: tr.Interactions) -> bool:
    """What ``user_history="auto"`` resolves to on ``fit_part`` at the defaults."""
    model = tr.TripletRecommender()
    seen = model._set_training_data(fit_part)
    return resolved_user_history(model, seen, None)


def fit_both(
    dataset: str,
    fit_part: tr.Interactions,
    validation: tr.Interactions,
    metrics: tuple[str, ...],
    seeds: int,
) -> list[dict]:
    """One row per (user_history, seed)."""
    auto = auto_choice(fit_part)
    rows = []
    for seed in range(seeds):
        for history in (False, True):
            start = time.perf_counter()
            model = tr.TripletRecommender(user_history=history, random_state=seed).fit(fit_part)
            seconds = time.perf_counter() - start
            scores = tr.evaluate(model, fit_part, validation, metrics)
            rows.append({
                "dataset": dataset, "user_history": history, "auto": history == auto,
                "batch_by": model.batch_by_, "seed": seed, "seconds": seconds,
                **{metric: scores[metric] for metric in metrics},
            })  # fmt: skip
            shown = ", ".join(f"{metric} {scores[metric]:.4f}" for metric in metrics)
            print(f"  {dataset} user_history={history} seed {seed}: {shown}, "
                  f"{seconds:.1f} s", flush=True)  # fmt: skip
    return rows


def markdown(rows: list[dict], environment: dict) -> str:
    lines = [
        "# The factor model's user vector: its embedding, or with its history",
        "",
        f"`{environment['command'].strip()}` — {environment['date']}, "
        f"{environment['machine']}; wall time {environment['wall_seconds']:.0f} s.",
        "",
        "`TripletRecommender(user_history=...)` at the defaults otherwise; **auto** marks what "
        '`user_history="auto"` resolves to (True when batches group positives by user). '
        "Small sets: validation positives are 20 % of each data set's *training* positives, "
        "mean ± std over seeds, AUC / NDCG@10. Gowalla: fitted on train.txt, scored on "
        "valid.txt, Recall@20 / NDCG@20; test.txt never read.",
        "",
        "| data set | batches | user_history | AUC (small sets) / Recall@20 (Gowalla) | "
        "NDCG@10 / NDCG@20 | fit s |",
        "|---|---|---|---|---|---|",
    ]
    for dataset, history in dict.fromkeys((r["dataset"], r["user_history"]) for r in rows):
        chosen = [r for r in rows if r["dataset"] == dataset and r["user_history"] == history]
        metrics = GOWALLA_METRICS if dataset == "gowalla" else SMALL_SET_METRICS
        label = f"{history}{' (**auto**)' if chosen[0]['auto'] else ''}"
        cells = [mean_std_of([r[metric] for r in chosen], 4) for metric in metrics]
        seconds = mean_std_of([r["seconds"] for r in chosen], 1)
        lines.append(
            f"| {dataset} | {chosen[0]['batch_by']} | {label} | {' | '.join(cells)} | {seconds} |"
        )
    return "\n".join(lines) + "\n"


def small_set_rows(
    dataset: str, fit_part: tr.Interactions, validation: tr.Interactions, seeds: int
) -> list[dict]:
    return fit_both(dataset, fit_part, validation, SMALL_SET_METRICS, seeds)


def gowalla_rows(folder: Path) -> list[dict]:
    from tripletrec.data.datasets.gowalla import load_gowalla

    split = load_gowalla(folder)
    return fit_both("gowalla", split.train, split.valid, GOWALLA_METRICS, 1)


if __name__ == "__main__":
    run_study_with_gowalla(
        __file__, __doc__.splitlines()[0], small_set_rows, gowalla_rows, markdown
    )
