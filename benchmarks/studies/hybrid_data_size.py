"""Does the best EASE weight of HybridRecommender move with the amount of training data?
The factor model, EASE and their blend fitted on growing shares of a validation split's fit
part, all scored on the same validation positives (never test).

Protocol: ``compare.py``'s split (random 80/20 row split, seed 42; positives rating > 7 on
anime-tv and anime-5k, >= 4 on MovieLens-100k, skipped with a note when ``../shared/data``
is absent), then ``tripletrec.validation_split(train, 0.2, random_state=0)``. For each share
in :data:`SHARES`, a random subset of the fit part's positives (seed 7) trains the
hybrid's factor model (``TripletRecommender`` with ``HybridRecommender``'s
``FACTOR_DEFAULTS`` and the subset's histories as user features, seed 0) and EASE
(its users weighted as the hybrid's, ``l2`` = :data:`L2` times the share, since the
penalty is in units of co-occurrence counts); the blend is
``tripletrec.models.hybrid.blend`` with the hybrid's floor at each weight of
:data:`WEIGHTS`. Rankings exclude the subset's positives; full-ranking AUC and NDCG@10 on
the validation positives. A test split trains on 1.25 times the fit part (share 1.25).

Run alone: ``python benchmarks/studies/hybrid_data_size.py
[--datasets anime-tv,movielens-100k,anime-5k]``.
Writes ``results/hybrid_data_size.md`` and ``results/hybrid_data_size.json``.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "2")

import inspect  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

import tripletrec as tr  # noqa: E402
from tripletrec.data.features import matrix_history_features  # noqa: E402
from tripletrec.models.hybrid_factor import FACTOR_DEFAULTS  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _blend import Blend  # noqa: E402
from _study import run_validation_study  # noqa: E402

METRICS = ("auc", "ndcg@10")
SHARES = (0.5, 0.75, 1.0)
WEIGHTS = (0.3, 0.5, 0.7)
#: EASE's l2 on the whole fit part: the value HybridRecommender's search chooses there
#: (``results/hybrid_rule.md``).
L2 = {"anime-tv": 130.0, "movielens-100k": 440.0, "anime-5k": 130.0}
FLOOR = inspect.signature(tr.HybridRecommender).parameters["item_item_floor"].default
#: EASE's users weighted as HybridRecommender's EASE weighs them.
EXPONENT = inspect.signature(tr.HybridRecommender).parameters["user_weight_exponent"].default


def subset(positives: sp.csr_matrix, share: float, seed: int = 7) -> sp.csr_matrix:
    """A random ``share`` of ``positives`` (all of them at 1), same shape."""
    if share >= 1.0:
        return positives
    coo = positives.tocoo()
    keep = np.random.default_rng(seed).random(coo.nnz) < share
    return sp.csr_matrix(
        (coo.data[keep], (coo.row[keep], coo.col[keep])), shape=positives.shape, dtype=np.float32
    )


def study(dataset: str, fit_part: tr.Interactions, validation: tr.Interactions) -> list[dict]:
    rows = []
    held_out = validation.to_csr()
    for share in SHARES:
        part = subset(fit_part.to_csr(), share)
        histories = matrix_history_features(part, range(part.shape[0]))
        factor = tr.TripletRecommender(**FACTOR_DEFAULTS, random_state=0)
        factor.fit(part, user_features=histories)
        ease = tr.EASERecommender(l2=L2[dataset] * share, user_weight_exponent=EXPONENT)
        ease.fit(part)
        models = {"factor model": factor, "EASE": ease}
        models |= {f"blend, w {w}": Blend.of(factor, ease, w, part, FLOOR) for w in WEIGHTS}
        for name, model in models.items():
            scores = tr.evaluate(model, part, held_out, METRICS)
            rows.append({"dataset": dataset, "share": share, "positives": part.nnz,
                         "model": name} | {m: scores[m] for m in METRICS})  # fmt: skip
            print(f"  {share:<5} {name:<12} AUC {scores['auc']:.4f} "
                  f"NDCG@10 {scores['ndcg@10']:.4f}", flush=True)  # fmt: skip
    return rows


def markdown(rows: list[dict], environment: dict) -> str:
    names = list(dict.fromkeys(row["model"] for row in rows))
    lines = [
        "# HybridRecommender's parts against the amount of training data, on validation splits",
        "",
        f"`{environment['command'].strip()}` — {environment['date']}, "
        f"{environment['machine']}; seed 0; wall time {environment['wall_seconds']:.0f} s.",
        "",
        "Validation positives: 20 % of each data set's *training* positives (the test rows "
        "of compare.py are never read); each share of the rest trains the models. Cells: "
        "AUC / NDCG@10, the best blend's NDCG@10 in bold.",
        "",
        "| data | share | positives | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    keys = dict.fromkeys((row["dataset"], row["share"]) for row in rows)
    for dataset, share in keys:
        cells = {r["model"]: r for r in rows if r["dataset"] == dataset and r["share"] == share}
        best = max(
            (r for n, r in cells.items() if n.startswith("blend")), key=lambda r: r["ndcg@10"]
        )
        shown = []
        for name in names:
            ndcg = f"{cells[name]['ndcg@10']:.4f}"
            shown.append(
                f"{cells[name]['auc']:.4f} / " + (f"**{ndcg}**" if cells[name] is best else ndcg)
            )
        first = next(iter(cells.values()))
        lines.append(
            f"| {dataset} | {share:g} | {first['positives']:,} | " + " | ".join(shown) + " |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    run_validation_study(__file__, __doc__.splitlines()[0], study, markdown, argv)


if __name__ == "__main__":
    main()
