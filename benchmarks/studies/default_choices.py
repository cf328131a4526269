"""How the default's ranking-time bias scale and side-feature weight were chosen: on
validation splits of the training positives, never on test.

Protocol: the split of ``compare.py`` (random 80/20 row split, seed 42; positives rating
> 7 on anime-tv, >= 4 on MovieLens-100k, read from ``../shared/data/movielens-100k`` and
skipped with a note when absent), then ``tripletrec.validation_split(train, 0.2,
random_state=0)`` carves the validation positives out of the *training* positives. Every
model is fitted on the rest and scored with full-ranking AUC and NDCG@10 on the validation
positives; mean over model seeds.

* **Ranking bias scale, per loss**: each model is fitted once per seed and ranked with the
  item bias times each scale (``ranking_bias_scale`` only changes eval-mode scores, never
  training: ``tests/test_recommender.py``), for the default preset (full softmax) and for
  BPR, WARP and the sampled softmax against uniform / popularity negatives.
* **Side-feature weight**: the default preset with the dataset's built-in item features at
  several ``feature_weight`` values, against the same preset without features.

Run: ``python benchmarks/studies/default_choices.py [--seeds 3]
[--datasets anime-tv,movielens-100k]``.
Writes ``results/default_choices.md`` and ``results/default_choices.json``.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "2")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import tripletrec as tr  # noqa: E402
from tripletrec.data.datasets import DATASETS  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _protocol import THREADS, VALIDATION_FRACTION, load_with_features  # noqa: E402
from _results import RESULTS, run_environment, write_results  # noqa: E402

METRICS = ("auc", "ndcg@10")
SCALES = (0.5, 0.6, 0.75, 0.9, 1.0)
FEATURE_WEIGHTS = (1.0, 0.5, 0.25)
#: Models whose ranking bias scale is measured: the default preset, and the other losses
#: with an item bias and settings that train them well on both datasets.
LOSSES: dict[str, dict] = {
    "full softmax (default preset)": {},
    "BPR, uniform negatives": dict(
        loss="bpr", negatives="uniform", n_factors=64, epochs=20, batch_size=1024,
        learning_rate=0.01, l2=1e-5, max_norm=None, lr_schedule="constant",
    ),
    "WARP, uniform negatives": dict(
        loss="warp", negatives="uniform", n_negatives=10, n_factors=64, epochs=15,
        batch_size=1024, learning_rate=0.01, l2=1e-5, max_norm=None, lr_schedule="constant",
    ),
    "sampled softmax, popularity negatives": dict(
        loss="softmax", negatives="popularity", n_negatives=20, n_factors=64, epochs=10,
        batch_size=1024, learning_rate=0.01,
    ),
}  # fmt: skip


def load(name: str) -> tuple[tr.Interactions, tr.Interactions, tr.data.features.Features] | None:
    """Fit and validation positives of dataset ``name``, and its item features."""
    loaded = load_with_features(name)
    if loaded is None:
        return None
    data, _, items = loaded
    train, _ = tr.random_split(data, test_size=0.2, random_state=42)  # test: never read
    positives = DATASETS[name].positives(train)
    fit_part, validation = tr.validation_split(positives, VALIDATION_FRACTION, random_state=0)
    return fit_part, validation, items


def _scores(model, fit_part, validation) -> list[float]:
    scores = tr.evaluate(model, fit_part, validation, METRICS)
    return [scores[m] for m in METRICS]


def ranking_bias_scales(name, fit_part, validation, items, seeds) -> list[dict]:
    rows = []
    for label, settings in LOSSES.items():
        runs = []  # seeds x scales x metrics
        for seed in seeds:
            model = tr.TripletRecommender(**settings, random_state=seed).fit(fit_part)
            by_scale = []
            for scale in SCALES:
                model.module_.ranking_bias_scale = scale
                by_scale.append(_scores(model, fit_part, validation))
            runs.append(by_scale)
        mean = np.mean(runs, axis=0)
        for scale, (auc, ndcg) in zip(SCALES, mean):
            rows.append({"dataset": name, "study": "ranking bias scale", "model": label,
                         "setting": scale, "auc": auc, "ndcg@10": ndcg})  # fmt: skip
        print(f"  {name} {label}: " + ", ".join(f"{s}: {a:.4f}" for s, (a, _) in zip(SCALES, mean)))
    return rows


def feature_weights(name, fit_part, validation, items, seeds) -> list[dict]:
    rows = []
    variants = [("no features", None, None)] + [
        (f"item features, feature_weight {w:g}", items, w) for w in FEATURE_WEIGHTS
    ]
    for label, features, weight in variants:
        settings = {} if weight is None else {"feature_weight": weight}
        runs = [
            _scores(
                tr.TripletRecommender(**settings, random_state=seed).fit(
                    fit_part, item_features=features
                ),
                fit_part,
                validation,
            )
            for seed in seeds
        ]
        auc, ndcg = np.mean(runs, axis=0)
        rows.append({"dataset": name, "study": "feature weight", "model": label,
                     "setting": weight, "auc": auc, "ndcg@10": ndcg})  # fmt: skip
        print(f"  {name} {label}: AUC {auc:.4f} NDCG@10 {ndcg:.4f}")
    return rows


def markdown(rows: list[dict], environment: dict) -> str:
    lines = [
        "# How the default's ranking bias scale and feature weight were chosen",
        "",
        f"`{environment['command']}` — {environment['date']}, validation splits of the "
        f"training positives (never test), mean of {environment['n_seeds']} model seed(s), "
        f"{environment['machine']}, wall time {environment['wall_seconds']:.0f} s. "
        "Protocol: see the script's docstring.",
        "",
        "## Ranking bias scale (AUC / NDCG@10 when ranking with `scale * b_i`)",
        "",
        "| dataset | model | " + " | ".join(f"{s:g}" for s in SCALES) + " |",
        "|---|---|" + "---|" * len(SCALES),
    ]
    scale_rows = [r for r in rows if r["study"] == "ranking bias scale"]
    for dataset in dict.fromkeys(r["dataset"] for r in scale_rows):
        for model in dict.fromkeys(r["model"] for r in scale_rows if r["dataset"] == dataset):
            cells = [
                f"{r['auc']:.4f} / {r['ndcg@10']:.4f}"
                for r in scale_rows
                if r["dataset"] == dataset and r["model"] == model
            ]
            lines.append(f"| {dataset} | {model} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Side-feature weight (default preset, `ranking_bias_scale` auto)",
        "",
        "| dataset | model | AUC | NDCG@10 |",
        "|---|---|---|---|",
    ]
    for r in rows:
        if r["study"] == "feature weight":
            lines.append(f"| {r['dataset']} | {r['model']} | {r['auc']:.4f} | {r['ndcg@10']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datasets", default="anime-tv,movielens-100k")
    parser.add_argument("--out", default=str(RESULTS / "default_choices"))
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    seeds = list(range(args.seeds))
    start = time.perf_counter()
    rows: list[dict] = []
    for name in args.datasets.split(","):
        loaded = load(name)
        if loaded is None:
            continue
        rows += ranking_bias_scales(name, *loaded, seeds)
        rows += feature_weights(name, *loaded, seeds)
    environment = run_environment(__file__, argv or sys.argv[1:], len(seeds), start)
    write_results(Path(args.out), rows, environment, markdown)


if __name__ == "__main__":
    main()
