"""Would the default gain from an item-item term? The default, EASE, and their per-user
blend, on validation splits of the training positives only (never test).

Protocol: the split of ``compare.py`` (random 80/20 row split, seed 42; positives rating
> 7 on anime-tv and anime-5k, >= 4 on MovieLens-100k, skipped with a note when
``../shared/data`` is absent), then ``tripletrec.validation_split(train, 0.2,
random_state=0)`` carves the validation positives out of the *training* positives. Every
model is fitted on the rest and scored with full-ranking AUC and NDCG@10 on the validation
positives.

The blend (``_blend.py``) scores ``(1 - w) z(default) + w max(z(EASE), 0)``, where ``z``
standardises each user's scores over the catalogue (mean 0, std 1) and 0 is
``HybridRecommender``'s floor (``hybrid_rule.py`` chose it). EASE's ``l2`` runs over
``compare.py``'s grid and ``w`` over :data:`WEIGHTS`; EASE alone and every blend are scored
on the same validation positives, so both sides are selected on the same split. The rows
"HybridRecommender, w W" are ``tripletrec.HybridRecommender(weight=W)``, which follows a
rule a default can: EASE's ``l2`` chosen by NDCG@10 on an inner split of the fit part (EASE
fits alone), the weight fixed; nothing of theirs is selected on the validation positives
(their factor model is the hybrid's own: the default with the same seed, 7 epochs, and the
users' histories as features, so they differ from the grid row of their ``l2``, whose
factor model is the default).
LightFM WARP and implicit ALS
appear at ``compare.py``'s most frequent choices for reference when installed.

Run: ``python benchmarks/studies/hybrid_validation.py
[--datasets anime-tv,movielens-100k,anime-5k]``.
Writes ``results/hybrid_validation.md`` and ``results/hybrid_validation.json``.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "2")

import inspect  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import tripletrec as tr  # noqa: E402
from tripletrec.models.base import RecommenderBase  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _blend import EASE_L2_GRID, Blend  # noqa: E402
from _peers import fit_implicit, fit_lightfm  # noqa: E402
from _study import run_validation_study, validation_row  # noqa: E402

METRICS = ("auc", "ndcg@10")
WEIGHTS = (0.1, 0.2, 0.3, 0.5)
#: The floor of EASE's standardised scores in the blend: HybridRecommender's default.
FLOOR = inspect.signature(tr.HybridRecommender).parameters["item_item_floor"].default
#: Peer settings for reference (compare.py's usual choices on these data sets).
PEERS = {
    "LightFM WARP": (fit_lightfm, "warp", {"learning_rate": 0.02, "epochs": 40}),
    "implicit ALS": (
        fit_implicit, "als", {"alpha": 10.0, "regularization": 100.0, "iterations": 15}
    ),
}  # fmt: skip


def study(dataset: str, fit_part: tr.Interactions, validation: tr.Interactions) -> list[dict]:
    """One row per model: the default, each peer, EASE per ``l2``, the blend per (l2, w)."""
    rows = []

    def row(model_name: str, settings: str, model: RecommenderBase, seconds: float) -> None:
        labels = {"dataset": dataset, "model": model_name, "settings": settings}
        rows.append(validation_row(model, fit_part, validation, METRICS, **labels,
                                   seconds=seconds))  # fmt: skip

    for name, (factory, loss, settings) in PEERS.items():
        try:
            fit = factory(loss)
        except ImportError:
            continue
        model = fit(fit_part, settings, 0)
        row(name, "", model, model.fit_seconds_)
    start = time.perf_counter()
    default = tr.TripletRecommender(random_state=0).fit(fit_part)
    row("default", "", default, time.perf_counter() - start)
    eases = {}
    for l2 in EASE_L2_GRID:
        start = time.perf_counter()
        eases[l2] = tr.EASERecommender(l2=l2).fit(fit_part)
        row("EASE", f"l2 {l2:g}", eases[l2], time.perf_counter() - start)
        for weight in WEIGHTS:
            blend = Blend.of(default, eases[l2], weight, fit_part, floor=FLOOR)
            row("blend", f"l2 {l2:g}, w {weight}", blend, 0.0)
    # The rule of tripletrec.HybridRecommender: EASE's l2 from an inner split of the fit
    # part (EASE fits only, never the validation positives), the weight fixed.
    for weight in WEIGHTS:
        start = time.perf_counter()
        hybrid = tr.HybridRecommender(weight=weight, random_state=0).fit(fit_part)
        row(f"HybridRecommender, w {weight}", f"l2 {hybrid.l2_:g}", hybrid,
            time.perf_counter() - start)  # fmt: skip
    return rows


def best(rows: list[dict], model: str, metric: str) -> dict:
    return max((r for r in rows if r["model"] == model), key=lambda r: r[metric])


def markdown(rows: list[dict], environment: dict) -> str:
    lines = [
        "# The default, EASE and their blend on validation splits",
        "",
        f"`{environment['command'].strip()}` — {environment['date']}, "
        f"{environment['machine']}; wall time {environment['wall_seconds']:.0f} s.",
        "",
        "Validation positives: 20 % of each data set's *training* positives (the test rows "
        "of compare.py are never read). "
        f"Blend = (1 - w) z(default) + w max(z(EASE), {FLOOR:g}), z per user. "
        "EASE and the blend are each shown at their best setting for the metric, selected "
        "on this same split.",
        "",
        "| data | model | best for AUC: settings, AUC, NDCG@10 | best for NDCG@10: settings, "
        "AUC, NDCG@10 |",
        "|---|---|---|---|",
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        subset = [r for r in rows if r["dataset"] == dataset]
        for model in dict.fromkeys(r["model"] for r in subset):
            cells = []
            for metric in METRICS:
                chosen = best(subset, model, metric)
                cells.append(
                    f"{chosen['settings'] or '-'}: {chosen['auc']:.4f}, {chosen['ndcg@10']:.4f}"
                )
            lines.append(f"| {dataset} | {model} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    run_validation_study(__file__, __doc__.splitlines()[0], study, markdown, argv)


if __name__ == "__main__":
    main()
