"""GraphFilterRecommender (GF-CF, Shen et al. CIKM 2021) on validation splits only (never
test): its SVD solver chosen, and its rank against EASE and RP3beta where EASE fits.

Protocol. Small sets: the validation parts of ``perf/compare.py``'s split
(``_study.validation_parts``: 20 % of each data set's *training* positives held out, seed
0); AUC and NDCG@10 and fit seconds of ``GraphFilterRecommender`` (each solver),
``EASERecommender()`` and ``RP3BetaRecommender()`` (all deterministic: one run each).
Gowalla (LightGCN's split, ``../shared/data/gowalla``): fit on ``train.txt``, score
``valid.txt`` with LightGCN's Recall@20 / NDCG@20 (``test.txt`` is never read); each
setting in a process of its own, so that its peak RSS is its own; the seconds to score
every validation user (``tr.evaluate``: scores, seen-item mask and top 20 by blocks of
2,048 users) are reported beside the fit's.

Run: ``python benchmarks/studies/graph_filter.py [--datasets ...] [--gowalla PATH]``
(``--gowalla none`` skips it). Writes ``results/graph_filter.md`` and ``.json``.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "2")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import tripletrec as tr  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _protocol import SHARED_DATA  # noqa: E402
from _results import RESULTS, run_environment, write_results  # noqa: E402
from _study import DATASETS, validation_parts, validation_row  # noqa: E402

METRICS = ("auc", "ndcg@10")
GOWALLA_METRICS = ("recall@20", "ndcg@20")
#: The models of the small sets, by label.
SMALL = {
    "GF arpack (default)": lambda: tr.GraphFilterRecommender(solver="arpack"),
    "GF randomized": lambda: tr.GraphFilterRecommender(solver="randomized"),
    "EASERecommender()": lambda: tr.EASERecommender(),
    "RP3BetaRecommender()": lambda: tr.RP3BetaRecommender(),
}
#: The Gowalla settings of GraphFilterRecommender, by label.
GOWALLA = {
    "GF arpack (default: exact top 256)": {"solver": "arpack"},
    "GF randomized": {"solver": "randomized"},
    "GF linear filter only": {"low_pass_weight": 0.0},
}


def small_rows(dataset: str, fit_part: tr.Interactions, validation: tr.Interactions) -> list[dict]:
    rows = []
    for label, build in SMALL.items():
        start = time.perf_counter()
        model = build().fit(fit_part)
        rows.append(validation_row(model, fit_part, validation, METRICS, dataset=dataset,
                                   model=label, seconds=time.perf_counter() - start))  # fmt: skip
    return rows


def gowalla_worker(folder: str, setting: dict) -> dict:
    """Fit on train, score valid, in this process (its peak RSS is this fit's)."""
    from tripletrec._system import peak_rss_bytes
    from tripletrec.data.datasets.gowalla import load_gowalla

    split = load_gowalla(folder)
    start = time.perf_counter()
    model = tr.GraphFilterRecommender(**setting).fit(split.train)
    fit_seconds = time.perf_counter() - start
    fit_rss = peak_rss_bytes() / 2**30
    start = time.perf_counter()
    scores = tr.evaluate(model, split.train, split.valid, list(GOWALLA_METRICS))
    return {
        **{name: scores[name] for name in GOWALLA_METRICS},
        "n_users": scores["n_users"],
        "fit_seconds": fit_seconds,
        "fit_peak_rss_gib": fit_rss,
        "evaluate_seconds": time.perf_counter() - start,
        "peak_rss_gib": peak_rss_bytes() / 2**30,
        "n_components": model.n_components_,
        "normalized_nnz": int(model.normalized_.nnz),
    }


def gowalla_rows(folder: str) -> list[dict]:
    rows = []
    for label, setting in GOWALLA.items():
        argv = [sys.executable, __file__, "--worker", json.dumps(setting), "--gowalla", folder]
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            result = {"crashed": (done.stderr.strip().splitlines() or [""])[-1]}
        else:
            result = json.loads(done.stdout.strip().splitlines()[-1])
        row = {"dataset": "gowalla", "model": label, "setting": setting, **result}
        print(f"  gowalla {label}: {result}", flush=True)
        rows.append(row)
    return rows


def markdown(rows: list[dict], environment: dict) -> str:
    lines = [
        "# GraphFilterRecommender (GF-CF) on validation splits",
        "",
        f"`{environment['command'].strip()}` — {environment['date']}, "
        f"{environment['machine']}; deterministic models, one run each; wall time "
        f"{environment['wall_seconds']:.0f} s.",
        "",
        "Small sets: 20 % of each data set's *training* positives held out (seed 0); the "
        "test rows of compare.py are never read. GF: `GraphFilterRecommender()` defaults "
        "(k = 256 clamped to min(users, items) - 1, low-pass weight 0.3) with each solver.",
        "",
        "| data set | model | AUC | NDCG@10 | fit s |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        if row["dataset"] != "gowalla":
            lines.append(f"| {row['dataset']} | {row['model']} | {row['auc']:.4f} | "
                         f"{row['ndcg@10']:.4f} | {row['seconds']:.2f} |")  # fmt: skip
    gowalla = [row for row in rows if row["dataset"] == "gowalla"]
    if gowalla:
        lines += [
            "",
            "Gowalla (LightGCN's split): fit on train.txt, scored on valid.txt (LightGCN's "
            "Recall@20 / NDCG@20; test.txt never read); one process per row. Evaluate s: "
            "scoring, masking and ranking every validation user.",
            "",
            "| model | Recall@20 | NDCG@20 | fit s | peak RSS after fit GiB | "
            "evaluate s | peak RSS GiB |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in gowalla:
            if "crashed" in row:
                lines.append(f"| {row['model']} | crashed: {row['crashed']} | | | | | |")
                continue
            lines.append(
                f"| {row['model']} | {row['recall@20']:.4f} | {row['ndcg@20']:.4f} | "
                f"{row['fit_seconds']:.1f} | {row['fit_peak_rss_gib']:.2f} | "
                f"{row['evaluate_seconds']:.1f} | {row['peak_rss_gib']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=DATASETS)
    parser.add_argument("--gowalla", default=str(SHARED_DATA / "gowalla"))
    parser.add_argument("--out", default=str(RESULTS / Path(__file__).stem))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(gowalla_worker(args.gowalla, json.loads(args.worker))))
        return
    started = time.perf_counter()
    rows: list[dict] = []
    if args.datasets:
        for name, fit_part, validation in validation_parts(args.datasets):
            rows += small_rows(name, fit_part, validation)
    if args.gowalla.lower() != "none":
        if (Path(args.gowalla) / "train.txt").is_file():
            rows += gowalla_rows(args.gowalla)
        else:
            print(f"{args.gowalla} has no train.txt: skipping gowalla", file=sys.stderr)
    given = argv if argv is not None else sys.argv[1:]
    write_results(Path(args.out), rows, run_environment(__file__, given, 1, started), markdown)


if __name__ == "__main__":
    main()
