"""Time of every ranking metric for every user, on anime-tv and a MovieLens-1M-sized problem.

Two cases: the real anime-tv evaluation (3,839 users with a test positive x 293 items, the
scores of a fitted default model) and a random 6,000 x 3,700 problem (MovieLens-1M size;
normal scores, 20 relevant and 100 excluded items per user). Each time is the best of 5
runs of
``tripletrec.evaluation.metrics.ranking_metrics`` computing AUC, P@10, R@10, NDCG@10, MAP@10,
MRR and HR@10 together, plus ``auc_per_user`` alone.

Run: ``python benchmarks/perf/metrics_speed.py [--out PATH]``; writes ``results/metrics_speed.md``
and ``.json``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

import tripletrec as tr
from tripletrec.evaluation.metrics import auc_per_user, ranking_metrics
from tripletrec.evaluation.protocols import interactions_matrix

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _results import RESULTS, command, write_report

METRICS = ("auc", "precision@10", "recall@10", "ndcg@10", "map@10", "mrr", "hit_rate@10")


def best_of(function, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def anime_case() -> tuple[np.ndarray, sp.csr_matrix, sp.csr_matrix]:
    data = tr.load_dataset("anime-tv")
    train, test = tr.random_split(data, 0.2, 42)
    train, test = train.positives(7), test.positives(7)
    model = tr.TripletRecommender(random_state=0).fit(train)
    relevant = interactions_matrix(model, test)
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    return model.score_indices(users), relevant[users], interactions_matrix(model, train)[users]


def random_case(n_users: int = 6000, n_items: int = 3700) -> tuple:
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((n_users, n_items)).astype(np.float32)
    picks = np.argsort(rng.random((n_users, n_items)), axis=1)[:, :120]  # distinct per user

    def matrix(columns: np.ndarray) -> sp.csr_matrix:
        r = np.repeat(np.arange(n_users), columns.shape[1])
        return sp.csr_matrix((np.ones(r.size), (r, columns.ravel())), shape=(n_users, n_items))

    return scores, matrix(picks[:, :20]), matrix(picks[:, 20:])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(RESULTS / "metrics_speed"), help="path without suffix")
    args = parser.parse_args(argv)
    rows = []
    for name, (scores, relevant, exclude) in (
        ("anime-tv (3,839 x 293)", anime_case()),
        ("random (6,000 x 3,700)", random_case()),
    ):
        every = best_of(
            lambda s=scores, r=relevant, e=exclude: ranking_metrics(s, r, e, metrics=METRICS)
        )
        auc = best_of(lambda s=scores, r=relevant, e=exclude: auc_per_user(s, r, e))
        rows.append({"case": name, "all_metrics_seconds": every, "auc_seconds": auc})
        print(f"{name}: all metrics {every:.3f} s, AUC alone {auc:.3f} s", flush=True)

    environment = {"python": platform.python_version(), "date": time.strftime("%Y-%m-%d")}
    lines = [
        "# Ranking metrics: time for every user",
        "",
        f"`{command(__file__)}` — best of 5, {environment['date']}, 2 cores. "
        f"All metrics = {', '.join(METRICS)} in one `ranking_metrics` call.",
        "",
        "| case | all metrics s | AUC alone s |",
        "|---|---|---|",
        *(
            f"| {r['case']} | {r['all_metrics_seconds']:.3f} | {r['auc_seconds']:.3f} |"
            for r in rows
        ),
    ]
    payload = {"environment": environment, "rows": rows}
    write_report(Path(args.out), payload, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
