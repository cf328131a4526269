"""Two history-aware forms of the default, on validation splits of the training positives
only (never test): a learned function of the user's history in the user vector, and an
item-item term.

* **history in the user vector** (the asymmetric-MF / FISM idea): each user's side
  features are the items of their training history, so a user's vector is their identity
  embedding plus ``feature_weight`` times the mean of learned embeddings of the items they
  liked (:func:`tripletrec.data.features.history_features`, a multi-valued column).
  Tried at the default ``feature_weight`` (0.25) and at 1.
* **an item-item term**: ``tripletrec.HybridRecommender``'s blend (its weight, floor and
  ``l2`` rule) of EASE and a factor model without history features (7 epochs).
* **both**: ``tripletrec.HybridRecommender()`` itself, whose factor model has the history
  features at ``feature_weight`` 1 and per-user batches.

Protocol: ``compare.py``'s split (random 80/20 row split, seed 42; positives rating > 7 on
anime-tv and anime-5k, >= 4 on MovieLens-100k, skipped with a note when ``../shared/data``
is absent), then ``tripletrec.validation_split(train, 0.2, random_state=0)``; every model
is fitted on the rest with seeds 0, 1, 2 and scored with full-ranking AUC and NDCG@10 on the
validation positives. Fit seconds are wall time of ``fit``.

Run alone: ``python benchmarks/studies/history_aware.py
[--datasets anime-tv,movielens-100k,anime-5k] [--seeds 3]``.
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

import tripletrec as tr  # noqa: E402
from tripletrec.data.features import matrix_history_features  # noqa: E402
from tripletrec.models.base import RecommenderBase  # noqa: E402
from tripletrec.models.hybrid import chosen_l2  # noqa: E402
from tripletrec.models.hybrid_factor import FACTOR_DEFAULTS  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _blend import Blend  # noqa: E402
from _results import mean_std_of  # noqa: E402
from _study import run_validation_study, validation_row  # noqa: E402

METRICS = ("auc", "ndcg@10")


def forms(fit_part: tr.Interactions, seed: int) -> dict[str, Callable[[], RecommenderBase]]:
    """The models compared, by name: each fits ``fit_part`` with ``seed`` when called."""
    features = matrix_history_features(fit_part.to_csr(), fit_part.user_map.ids)

    def with_history(weight: float, **params) -> Callable[[], RecommenderBase]:
        def fit() -> RecommenderBase:
            model = tr.TripletRecommender(random_state=seed, feature_weight=weight, **params)
            return model.fit(fit_part, user_features=features)

        return fit

    def hybrid_without_history() -> RecommenderBase:
        # HybridRecommender's blend, floor and l2 rule over a factor model without the
        # history features (its other FACTOR_DEFAULTS: 7 epochs; batches as "auto" picks).
        factor = tr.TripletRecommender(random_state=seed, epochs=FACTOR_DEFAULTS["epochs"])
        hybrid = tr.HybridRecommender()
        exponent = hybrid.user_weight_exponent
        l2, _ = chosen_l2(fit_part.to_csr(), seed, user_weight_exponent=exponent)
        ease = tr.EASERecommender(l2=l2, user_weight_exponent=exponent).fit(fit_part)
        return Blend.of(factor.fit(fit_part), ease, hybrid.weight, fit_part, hybrid.item_item_floor)

    return {
        "default": lambda: tr.TripletRecommender(random_state=seed).fit(fit_part),
        "history in the user vector (feature_weight 0.25)": with_history(0.25),
        "history in the user vector (feature_weight 1)": with_history(1.0),
        "HybridRecommender's blend without history features (item-item term)": (
            hybrid_without_history
        ),
        "HybridRecommender (history features and an item-item term)": lambda: tr.HybridRecommender(
            random_state=seed
        ).fit(fit_part),
    }


def study(
    dataset: str, fit_part: tr.Interactions, validation: tr.Interactions, seeds: int
) -> list[dict]:
    """One row per (model, seed)."""
    rows = []
    for seed in range(seeds):
        for name, fit in forms(fit_part, seed).items():
            start = time.perf_counter()
            model = fit()
            seconds = time.perf_counter() - start
            rows.append(validation_row(model, fit_part, validation, METRICS, dataset=dataset,
                                       model=name, seed=seed, seconds=seconds))  # fmt: skip
    return rows


def markdown(rows: list[dict], environment: dict) -> str:
    lines = [
        "# History-aware forms of the default, on validation splits",
        "",
        f"`{environment['command'].strip()}` — {environment['date']}, "
        f"{environment['machine']}; {environment['n_seeds']} seeds; wall time "
        f"{environment['wall_seconds']:.0f} s.",
        "",
        "Validation positives: 20 % of each data set's *training* positives (the test rows "
        "of compare.py are never read). Mean ± std over seeds.",
        "",
        "| data | model | AUC | NDCG@10 | fit s |",
        "|---|---|---|---|---|",
    ]
    for dataset, model in dict.fromkeys((r["dataset"], r["model"]) for r in rows):
        chosen = [r for r in rows if r["dataset"] == dataset and r["model"] == model]
        lines.append(
            f"| {dataset} | {model} | {mean_std_of([r['auc'] for r in chosen], 4)} | "
            f"{mean_std_of([r['ndcg@10'] for r in chosen], 4)} | "
            f"{mean_std_of([r['seconds'] for r in chosen], 1)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    run_validation_study(__file__, __doc__.splitlines()[0], study, markdown, argv, seeds=3)


if __name__ == "__main__":
    main()
