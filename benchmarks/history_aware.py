"""Two history-aware forms of the default, on validation splits of the training positives
only (never test): a learned function of the user's history in the user vector, and an
item-item term.

* **history in the user vector** (the asymmetric-MF / FISM idea): each user's side
  features are the items of their training history, so a user's vector is their identity
  embedding plus ``feature_weight`` times the mean of learned embeddings of the items they
  liked (:mod:`tripletrec.data.features`, a multi-valued column). Tried at the default
  ``feature_weight`` (0.25) and at 1.
* **an item-item term**: ``tripletrec.HybridRecommender()``, the default and EASE blended
  per user on standardised scores.

Protocol: ``compare.py``'s split (random 80/20 row split, seed 42; positives rating > 7 on
anime-tv and anime-5k, >= 4 on MovieLens-100k, skipped with a note when ``../shared/data``
is absent), then ``tripletrec.validation_split(train, 0.2, random_state=0)``; every model
is fitted on the rest with seed 0 and scored with full-ranking AUC and NDCG@10 on the
validation positives. Fit seconds are wall time of ``fit``.

Run alone: ``python benchmarks/history_aware.py [--datasets anime-tv,movielens-100k,anime-5k]``.
Writes ``results/history_aware.md`` and ``results/history_aware.json``.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "2")

import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import tripletrec as tr  # noqa: E402
from tripletrec._files import write_text_atomic  # noqa: E402
from tripletrec.data.features import Features  # noqa: E402
from tripletrec.models.base import RecommenderBase  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import run_validation_study  # noqa: E402

METRICS = ("auc", "ndcg@10")


def history_features(data: tr.Interactions) -> Features:
    """Each user's training items as one multi-valued feature column."""
    seen = data.to_csr()
    item_ids = data.item_map.ids
    liked = np.split(item_ids[seen.indices], seen.indptr[1:-1])
    table = pd.DataFrame({"liked": [list(items) for items in liked]}, index=data.user_map.ids)
    return Features(table, multi_valued={"liked": ""})


def forms(fit_part: tr.Interactions) -> dict[str, Callable[[], RecommenderBase]]:
    """The models compared, by name: each fits ``fit_part`` when called."""
    features = history_features(fit_part)

    def with_history(weight: float) -> Callable[[], RecommenderBase]:
        def fit() -> RecommenderBase:
            model = tr.TripletRecommender(random_state=0, feature_weight=weight)
            return model.fit(fit_part, user_features=features)

        return fit

    return {
        "default": lambda: tr.TripletRecommender(random_state=0).fit(fit_part),
        "history in the user vector (feature_weight 0.25)": with_history(0.25),
        "history in the user vector (feature_weight 1)": with_history(1.0),
        "HybridRecommender (item-item term)": lambda: tr.HybridRecommender(random_state=0).fit(
            fit_part
        ),
    }


def study(dataset: str, fit_part: tr.Interactions, validation: tr.Interactions) -> list[dict]:
    rows = []
    for name, fit in forms(fit_part).items():
        start = time.perf_counter()
        model = fit()
        seconds = time.perf_counter() - start
        scores = tr.evaluate(model, fit_part, validation, METRICS)
        rows.append(
            {"dataset": dataset, "model": name, "seconds": seconds}
            | {metric: scores[metric] for metric in METRICS}
        )
        print(f"  {name:<50} AUC {scores['auc']:.4f} NDCG@10 {scores['ndcg@10']:.4f} "
              f"fit {seconds:.1f} s", flush=True)  # fmt: skip
    return rows


def write_markdown(path: Path, rows: list[dict], environment: dict) -> None:
    lines = [
        "# History-aware forms of the default, on validation splits",
        "",
        f"`{environment['command'].strip()}` — {environment['date']}, "
        f"{environment['machine']}; seed 0; wall time {environment['wall_seconds']:.0f} s.",
        "",
        "Validation positives: 20 % of each data set's *training* positives (the test rows "
        "of compare.py are never read).",
        "",
        "| data | model | AUC | NDCG@10 | fit s |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['dataset']} | {row['model']} | {row['auc']:.4f} | {row['ndcg@10']:.4f} | "
            f"{row['seconds']:.1f} |"
        )
    write_text_atomic(path, "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    run_validation_study("history_aware.py", __doc__.splitlines()[0], study, write_markdown, argv)


if __name__ == "__main__":
    main()
