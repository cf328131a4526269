"""Retrieval at scale: exact chunked top-k vs the approximate index, and recommend --all.

1. A synthetic catalogue of 1,000,000 items x 64 dims: items are drawn around 2,000 random
   centres (embedding tables learned from interactions are clustered, not isotropic), and
   queries are perturbed items. Two spaces: cosine (unit vectors) and dot with varying norms
   plus a bias column (maximum inner product, through the MIPS transformation). For each:
   index build time, index size, peak memory, single-query latency (p50 / p99) and batch
   throughput, recall@10 against exact search.
2. ``recommend --all`` (``write_all_recommendations``) users/s on anime-tv and on 100,000
   synthetic users x 10,000 items.

Run: ``python benchmarks/perf/retrieval.py [--out PATH]``; writes
``benchmarks/results/retrieval.{md,json}``. About 3-4 minutes and under 3 GB on 2 CPUs.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

import tripletrec as tr
from tripletrec.data.interactions import IdMap
from tripletrec.models.scorers import COSINE, BilinearScorer
from tripletrec.serving.export import write_all_recommendations
from tripletrec.serving.retrieval import ANNIndex, IndexSettings, exact_top_k

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _results import RESULTS, script_path, write_report

N_ITEMS, DIM, N_QUERIES, K = 1_000_000, 64, 1000, 10


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def catalogue(space: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    centres = rng.standard_normal((2000, DIM)).astype(np.float32)
    items = centres[rng.integers(0, 2000, N_ITEMS)]
    items += 0.5 * rng.standard_normal((N_ITEMS, DIM), dtype=np.float32)
    queries = items[rng.integers(0, N_ITEMS, N_QUERIES)]
    queries = queries + 0.3 * rng.standard_normal((N_QUERIES, DIM), dtype=np.float32)
    if space == "cosine":
        items /= np.linalg.norm(items, axis=1, keepdims=True)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    else:
        items *= rng.uniform(0.1, 0.3, (N_ITEMS, 1)).astype(np.float32)
        bias = rng.normal(0, 0.5, (N_ITEMS, 1)).astype(np.float32)
        items = np.hstack([items, bias])
        queries = np.hstack([queries * 0.2, np.ones((N_QUERIES, 1), np.float32)])
    return np.ascontiguousarray(items), np.ascontiguousarray(queries.astype(np.float32))


def recall(approx: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(e)) / K for a, e in zip(approx, exact)]))


def bench_space(space: str) -> dict:
    rng = np.random.default_rng(0)
    items, queries = catalogue(space, rng)
    start = time.perf_counter()
    exact, _ = exact_top_k(queries, items, K)
    exact_seconds = time.perf_counter() - start
    start = time.perf_counter()
    index = ANNIndex.build(items, IndexSettings(random_state=0))
    build_seconds = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        import faiss

        faiss.write_index(index._index, f"{tmp}/i")
        index_mb = os.path.getsize(f"{tmp}/i") / 2**20
    rows = []
    for nprobe in sorted(
        {index.settings.nprobe // 2, index.settings.nprobe, index.settings.nprobe * 2}
    ):
        start = time.perf_counter()
        approx, _ = index.search(queries, K, nprobe=nprobe)
        batch_seconds = time.perf_counter() - start
        single = []
        for q in queries[:200]:  # one query at a time: a service's latency
            t = time.perf_counter()
            index.search(q[None, :], K, nprobe=nprobe)
            single.append(time.perf_counter() - t)
        rows.append({
            "nprobe": nprobe,
            "recall_at_10": recall(approx, exact),
            "batch_queries_per_s": N_QUERIES / batch_seconds,
            "single_p50_ms": float(np.percentile(single, 50) * 1e3),
            "single_p99_ms": float(np.percentile(single, 99) * 1e3),
        })  # fmt: skip
    # Exact single-query latency for comparison (chunked over the whole catalogue).
    single_exact = []
    for q in queries[:20]:
        t = time.perf_counter()
        exact_top_k(q[None, :], items, K)
        single_exact.append(time.perf_counter() - t)
    return {
        "space": space,
        "n_items": N_ITEMS,
        "dim": int(items.shape[1]),
        "n_lists": index.settings.n_lists,
        "train_size": index.settings.train_size,
        "build_seconds": build_seconds,
        "index_mb": index_mb,
        "items_mb": items.nbytes / 2**20,
        "exact_batch_queries_per_s": N_QUERIES / exact_seconds,
        "exact_single_p50_ms": float(np.median(single_exact) * 1e3),
        "peak_rss_mb": _peak_rss_mb(),
        "by_nprobe": rows,
    }


def synthetic_model(n_users: int, n_items: int, per_user: int = 20) -> tr.TripletRecommender:
    """A bilinear model with random weights: recommend --all speed does not need training."""
    rng = np.random.default_rng(0)
    model = tr.TripletRecommender(random_state=0, n_factors=64)
    model.user_map_ = IdMap(np.arange(n_users), "user")
    model.item_map_ = IdMap(np.arange(n_items), "item")
    model.item_metadata_ = None
    rows = np.repeat(np.arange(n_users), per_user)
    cols = rng.integers(0, n_items, n_users * per_user)
    seen = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), (n_users, n_items))
    seen.data[:] = 1.0
    model.seen_ = seen
    model.module_ = BilinearScorer(
        n_users, n_items, n_factors=64, similarity=COSINE, item_bias=False, init_scale=0.05,
        generator=torch.Generator().manual_seed(0),
    ).eval()  # fmt: skip
    return model


def bench_recommend_all() -> list[dict]:
    out = []
    data = tr.load_dataset("anime-tv").positives(7)
    anime = tr.TripletRecommender(random_state=0, epochs=2).fit(data)
    cases = [("anime-tv", anime), ("synthetic", synthetic_model(100_000, 10_000))]
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in cases:
            stats = write_all_recommendations(model, Path(tmp) / f"{name}.parquet", k=10,
                                              progress=False)  # fmt: skip
            out.append({
                "dataset": name,
                "n_users": model.n_users_,
                "n_items": model.n_items_,
                "seconds": stats["seconds"],
                "users_per_second": stats["users_per_second"],
                "file_mb": (Path(tmp) / f"{name}.parquet").stat().st_size / 2**20,
            })  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(RESULTS / "retrieval"), help="path without suffix")
    args = parser.parse_args(argv)
    load_before = list(os.getloadavg())
    spaces = [bench_space("cosine"), bench_space("dot+bias")]
    recommend_all = bench_recommend_all()
    report = {
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, Python "
        f"{platform.python_version()}, torch {torch.__version__}",
        "load_average_before": load_before,
        "load_average_after": list(os.getloadavg()),
        "ann": spaces,
        "recommend_all": recommend_all,
    }
    lines = [
        "# Retrieval at scale",
        "",
        f"{report['machine']}; load average before {'/'.join(f'{x:.1f}' for x in load_before)}"
        f", after {'/'.join(f'{x:.1f}' for x in report['load_average_after'])} (the "
        f"benchmark's own work included). Generated by `{script_path(__file__)}`.",
        "",
        f"## Approximate index (faiss IVF-Flat), {N_ITEMS:,} synthetic items x {DIM} dims",
        "",
        f"{N_QUERIES:,} queries; recall@10 against exact chunked search. Single-query latency "
        "over 200 queries, one at a time, candidates re-scored exactly.",
        "",
        "| space | lists | build s | index MB | peak RSS MB | nprobe | recall@10 "
        "| single p50 ms | single p99 ms | batch queries/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in spaces:
        for r in s["by_nprobe"]:
            lines.append(
                f"| {s['space']} | {s['n_lists']} | {s['build_seconds']:.1f} | "
                f"{s['index_mb']:.0f} | {s['peak_rss_mb']:.0f} | {r['nprobe']} | "
                f"{r['recall_at_10']:.3f} | {r['single_p50_ms']:.2f} | {r['single_p99_ms']:.2f} | "
                f"{r['batch_queries_per_s']:,.0f} |"
            )
    lines += ["", "Exact chunked search on the same catalogue, for comparison:", "",
              "| space | single query p50 ms | batch queries/s |", "|---|---:|---:|"]  # fmt: skip
    for s in spaces:
        lines.append(
            f"| {s['space']} | {s['exact_single_p50_ms']:.1f} | "
            f"{s['exact_batch_queries_per_s']:,.0f} |"
        )
    lines += ["", "## `tripletrec recommend --all --out recs.parquet -k 10`", "",
              "| data | users | items | seconds | users/s | Parquet MB |",
              "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in recommend_all:
        lines.append(
            f"| {r['dataset']} | {r['n_users']:,} | {r['n_items']:,} | {r['seconds']:.2f} | "
            f"{r['users_per_second']:,.0f} | {r['file_mb']:.1f} |"
        )
    write_report(Path(args.out), report, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
