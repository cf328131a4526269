"""HybridRecommender's rule, on validation splits of the training positives only (never
test): the floor on EASE's standardised scores, the factor model's epochs, and the
catalogue and users the ``l2`` search runs on.

* **floor** (``item_item_floor``): None blends ``z(EASE)`` as it is; 0 and 1 raise it to at
  least that value, so EASE reorders only the items it scores above the user's mean (or one
  standard deviation above it) and the factor model orders the rest.
* **factor epochs** (``factor={"epochs": e}``): 10 is TripletRecommender's default; 7 is
  30 % less training.
* **the l2 search** (``tripletrec.models.ease_l2.chosen_l2``): on the whole catalogue, and,
  where the catalogue is larger, on the :data:`~tripletrec.models.ease_l2.L2_SEARCH_ITEMS`
  most popular items, judged on every held-out user and, where there are more, on a
  sample of :data:`~tripletrec.models.ease_l2.L2_SEARCH_USERS`; the value each chooses
  and its wall time (EASE as the hybrid fits it: users weighted, items with fewer than
  ``EASE_MIN_ITEM_POSITIVES`` positives left out).

Every hybrid row is ``tripletrec.HybridRecommender`` itself (its ``l2`` chosen by its own
inner split of the fit part), fitted with seed 0 and scored with full-ranking AUC and
NDCG@10 on the validation positives; the default (seed 0) is there for reference.
Protocol: ``compare.py``'s split (random 80/20 row split, seed 42; positives rating > 7 on
anime-tv and anime-5k, >= 4 on MovieLens-100k, skipped with a note when ``../shared/data``
is absent), then ``tripletrec.validation_split(train, 0.2, random_state=0)``.

Run alone: ``python benchmarks/studies/hybrid_rule.py
[--datasets anime-tv,movielens-100k,anime-5k]``.
Writes ``results/hybrid_rule.md`` and ``results/hybrid_rule.json``.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "2")

import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import tripletrec as tr  # noqa: E402
from tripletrec.models.ease_l2 import (  # noqa: E402
    L2_GRID,
    L2_SEARCH_ITEMS,
    L2_SEARCH_USERS,
    chosen_l2,
)
from tripletrec.models.hybrid import EASE_MIN_ITEM_POSITIVES  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _study import run_validation_study  # noqa: E402

METRICS = ("auc", "ndcg@10")
FLOORS = (None, 0.0, 1.0)
EPOCHS = (7, 10)
#: The l2 search fits the EASE that HybridRecommender does: its users weighted.
EXPONENT = tr.HybridRecommender().user_weight_exponent


def study(dataset: str, fit_part: tr.Interactions, validation: tr.Interactions) -> list[dict]:
    """Rows of two kinds: ``"search"`` (the l2 search per catalogue) and ``"model"``."""
    rows = []
    seen = fit_part.to_csr()
    searches: list[tuple[int | None, int | None]] = [(None, None)]
    if seen.shape[1] > L2_SEARCH_ITEMS:
        searches.append((L2_SEARCH_ITEMS, None))
    if seen.shape[0] > L2_SEARCH_USERS:
        searches.append((searches[-1][0], L2_SEARCH_USERS))
    for max_items, max_users in searches:
        start = time.perf_counter()
        l2, scores = chosen_l2(
            seen,
            0,
            max_items=max_items,
            user_weight_exponent=EXPONENT,
            max_users=max_users,
            min_item_positives=EASE_MIN_ITEM_POSITIVES,
        )
        seconds = time.perf_counter() - start
        items = seen.shape[1] if max_items is None else max_items
        users = "all" if max_users is None else f"{max_users:,}"
        rows.append({"kind": "search", "dataset": dataset, "items": items, "users": users,
                     "l2": l2, "inner_ndcg@10": scores, "seconds": seconds})  # fmt: skip
        print(f"  l2 search on {items:,} items, {users} users: {l2:g} in {seconds:.1f} s",
              flush=True)  # fmt: skip

    def measure(name: str, settings: dict, make: type, **params) -> None:
        start = time.perf_counter()
        model = make(random_state=0, **params).fit(fit_part)
        seconds = time.perf_counter() - start
        scores = tr.evaluate(model, fit_part, validation, METRICS)
        rows.append(
            {"kind": "model", "dataset": dataset, "model": name, "seconds": seconds}
            | settings
            | {metric: scores[metric] for metric in METRICS}
        )
        print(f"  {name:<18} {settings} AUC {scores['auc']:.4f} "
              f"NDCG@10 {scores['ndcg@10']:.4f} fit {seconds:.1f} s", flush=True)  # fmt: skip

    tr.TripletRecommender(epochs=1, random_state=0).fit(fit_part)  # warm-up, not timed
    measure("default", {}, tr.TripletRecommender)
    for epochs in EPOCHS:
        for floor in FLOORS:
            settings = {"floor": floor, "epochs": epochs}
            measure("HybridRecommender", settings, tr.HybridRecommender,
                    item_item_floor=floor, factor={"epochs": epochs})  # fmt: skip
    return rows


def markdown(rows: list[dict], environment: dict) -> str:
    lines = [
        "# HybridRecommender's rule on validation splits",
        "",
        f"`{environment['command'].strip()}` — {environment['date']}, "
        f"{environment['machine']}; seed 0; wall time {environment['wall_seconds']:.0f} s.",
        "",
        "Validation positives: 20 % of each data set's *training* positives (the test rows "
        "of compare.py are never read).",
        "",
        "## The l2 search",
        "",
        f"Inner NDCG@10 per `l2` of {', '.join(f'{v:g}' for v in L2_GRID)} (EASE on 80 % of "
        "the fit part, judged on the other 20 %).",
        "",
        "| data | searched items | judged users | inner NDCG@10 per l2 | chosen l2 | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for row in (r for r in rows if r["kind"] == "search"):
        scores = ", ".join(f"{score:.4f}" for score in row["inner_ndcg@10"])
        lines.append(f"| {row['dataset']} | {row['items']:,} | {row.get('users', 'all')} | "
                     f"{scores} | {row['l2']:g} | {row['seconds']:.2f} |")  # fmt: skip
    lines += [
        "",
        "## Floor and factor epochs",
        "",
        "| data | model | floor | factor epochs | AUC | NDCG@10 | fit s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in (r for r in rows if r["kind"] == "model"):
        floor = (
            "-" if "floor" not in row else ("none" if row["floor"] is None else f"{row['floor']:g}")
        )
        epochs = row.get("epochs", 10)
        lines.append(
            f"| {row['dataset']} | {row['model']} | {floor} | {epochs} | {row['auc']:.4f} | "
            f"{row['ndcg@10']:.4f} | {row['seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    run_validation_study(__file__, __doc__.splitlines()[0], study, markdown, argv)


if __name__ == "__main__":
    main()
