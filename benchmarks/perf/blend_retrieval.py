"""Approximate retrieval for the default blend on Gowalla: recall against exact, latency.

    python benchmarks/perf/blend_retrieval.py [--data ../shared/data/gowalla] [--model DIR]
                                              [--users 2000] [--out PATH]

``tripletrec.Recommender()`` (fitted on train + valid with its defaults and saved to
``--model``, or loaded from there when it exists) is indexed as ``tripletrec index`` does
(:mod:`tripletrec.serving.blend_retrieval`). For ``--users`` known users drawn at random
(seed 0): recall@20 of the index's top 20 against the exact top 20 (training items left
out, as served), and the latency of one user's query both ways: exact
(``model.recommend``, every item scored) and through the index, at several candidate
budgets; and the time to compute every known user's best 100 items, as ``tripletrec
index`` does. Run it alone: latencies are wall time on this machine's cores.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _protocol import SHARED_DATA
from _results import RESULTS, run_environment, write_results

K = 20
#: Candidate budgets measured (candidates per source, times k); the middle is the default.
CANDIDATE_FACTORS = (2, 4, 8)
#: Users whose exact single-user latency is timed (every item scored: slow).
EXACT_TIMED = 200


def _model(data_dir: Path, model_dir: Path):
    import tripletrec as tr
    from tripletrec.data.datasets.gowalla import load_gowalla

    if (model_dir / "model.json").exists():
        return tr.load_model(model_dir), None
    start = time.perf_counter()
    model = tr.Recommender(random_state=0).fit(load_gowalla(data_dir).train_valid)
    fit_seconds = time.perf_counter() - start
    model.save(model_dir)
    return model, fit_seconds


def _exact_top(model, users: np.ndarray) -> np.ndarray:
    from tripletrec.evaluation.topk import top_k_masked

    out = []
    for first in range(0, len(users), 256):
        block = users[first : first + 256]
        scores = model.score_indices(block)
        rows, cols = model.seen_[block].nonzero()
        scores[rows, cols] = -np.inf
        out.append(top_k_masked(scores, K)[0])
    return np.vstack(out)


def _latencies(call, users: np.ndarray) -> np.ndarray:
    out = np.empty(len(users))
    for position, user in enumerate(users.tolist()):
        start = time.perf_counter()
        call(user)
        out[position] = time.perf_counter() - start
    return out * 1000.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "gowalla")
    parser.add_argument("--model", type=Path, default=Path("runs/gowalla-recommender"))
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=RESULTS / "blend_retrieval")
    args = parser.parse_args(argv)
    from tripletrec.serving.answers import compute_answers
    from tripletrec.serving.blend_retrieval import BlendRetriever
    from tripletrec.serving.retrieval import IndexSettings

    start = time.perf_counter()
    model, fit_seconds = _model(args.data, args.model)
    began = time.perf_counter()
    retriever = BlendRetriever.build(model, IndexSettings(random_state=0))
    build_seconds = time.perf_counter() - began
    began = time.perf_counter()
    answers = compute_answers(model, retriever)  # what `tripletrec index` adds
    answers_seconds = time.perf_counter() - began
    rng = np.random.default_rng(0)
    users = np.sort(rng.choice(model.n_users_, min(args.users, model.n_users_), replace=False))
    exact = _exact_top(model, users)
    raw_ids = model.user_map_.ids
    exact_ms = _latencies(lambda u: model.recommend([raw_ids[u]], k=K), users[:EXACT_TIMED])
    rows = [{
        "method": "exact (model.recommend)", "candidate_factor": None, "recall@20": 1.0,
        "p50_ms": float(np.median(exact_ms)), "p99_ms": float(np.percentile(exact_ms, 99)),
        "users_timed": len(exact_ms),
    }]  # fmt: skip
    seen = model.seen_
    for factor in CANDIDATE_FACTORS:
        found = np.vstack([
            retriever.search(np.array([u]), K, exclude=seen[[u]], candidate_factor=factor)[0]
            for u in users.tolist()
        ])  # fmt: skip
        recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(found.tolist(), exact.tolist())])
        index_ms = _latencies(
            lambda u, f=factor: retriever.search(
                np.array([u]), K, exclude=seen[[u]], candidate_factor=f
            ),
            users,
        )
        rows.append({
            "method": "index (tripletrec index)", "candidate_factor": factor,
            "recall@20": float(recall), "p50_ms": float(np.median(index_ms)),
            "p99_ms": float(np.percentile(index_ms, 99)), "users_timed": len(index_ms),
        })  # fmt: skip
    environment = run_environment(__file__, sys.argv[1:], 1, start)
    environment.update(
        n_users=int(model.n_users_), n_items=int(model.n_items_), users=len(users),
        fit_seconds=fit_seconds, index_build_seconds=build_seconds,
        answers_seconds=answers_seconds, answers_exact=answers[2],
        index_lists=retriever.index.settings.n_lists, nprobe=retriever.index.settings.nprobe,
        peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    )  # fmt: skip
    write_results(args.out, rows, environment, _markdown)


def _markdown(rows: list[dict], env: dict) -> str:
    lines = [
        "# Approximate retrieval for the default blend (Gowalla)",
        "",
        f"`{env['command']}` on {env['machine']}, {env['date']}; {env['wall_seconds']:.0f} s.",
        "",
        f"`tripletrec.Recommender()` fitted on Gowalla train + valid ({env['n_users']:,} users, "
        f"{env['n_items']:,} items), indexed in {env['index_build_seconds']:.1f} s "
        f"({env['index_lists']} lists, nprobe {env['nprobe']}); every known user's best "
        f"100 items computed in {env['answers_seconds']:.1f} s "
        f"({'exactly' if env['answers_exact'] else 'through the index'}: what "
        f"`tripletrec index` adds, and what `GET /recommend` serves); {env['users']:,} known users "
        "drawn at random (seed 0), one query at a time, training items left out. Recall@20: "
        "share of the exact top 20 the index returns. Peak RSS of the whole run "
        f"{env['peak_rss_gib']:.2f} GiB.",
        "",
        "| method | candidates per source | recall@20 | p50 ms | p99 ms | users timed |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        factor = "-" if row["candidate_factor"] is None else f"{row['candidate_factor']} k"
        lines.append(
            f"| {row['method']} | {factor} | {row['recall@20']:.4f} | {row['p50_ms']:.2f} | "
            f"{row['p99_ms']:.2f} | {row['users_timed']:,} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
