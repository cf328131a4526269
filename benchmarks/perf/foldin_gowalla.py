"""New users on a large catalogue: the default's fold-in on Gowalla, by Adam (what it
uses there) and by Newton's method (the exact optimum of the same objective).

Protocol: ``tripletrec.Recommender(random_state=0)`` fitted on LightGCN's ``train.txt``
(``../shared/data/gowalla``); 960 users with a validation item drawn at random (seed 1)
are folded in as new users from their training items, and their blended scores rank the
catalogue less those items: Recall@20 and NDCG@20 on ``valid.txt`` (``test.txt`` is never
read), beside the same users scored as trained users. Adam folds in batches of 240
histories; Newton's method (``foldin_softmax.NEWTON_BUDGET`` lifted) batches of 16. Latency: the
median over 20 of those users of one ``recommend_from_history`` call with their first 20
items, each way, in the same process. Run alone.

Run: ``python benchmarks/perf/foldin_gowalla.py [--gowalla ../shared/data/gowalla]``.
Writes ``results/foldin_gowalla.md`` and ``.json``.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "2")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import torch  # noqa: E402

import tripletrec as tr  # noqa: E402
from tripletrec.data.datasets.gowalla import load_gowalla  # noqa: E402
from tripletrec.evaluation.metrics import ranking_metrics  # noqa: E402
from tripletrec.models import foldin_softmax  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _protocol import SHARED_DATA, THREADS  # noqa: E402
from _results import RESULTS, run_environment, write_results  # noqa: E402

N_USERS = 960
METRICS = ("recall@20", "ndcg@20")


def _metrics(scores: np.ndarray, relevant: sp.csr_matrix, seen: sp.csr_matrix) -> dict:
    found = ranking_metrics(scores, relevant, seen, metrics=list(METRICS))
    return {metric: float(np.nanmean(found[metric])) for metric in METRICS}


def _history_scores(model: tr.Recommender, users: np.ndarray, batch: int) -> np.ndarray:
    """Blended scores of ``users`` folded in from their training items, ``batch`` at once."""
    seen = model.seen_
    out = []
    for start in range(0, len(users), batch):
        chosen = users[start : start + batch]
        rows = np.repeat(np.arange(len(chosen)), np.diff(seen.indptr)[chosen])
        items = np.concatenate([seen[user].indices for user in chosen])
        out.append(model._score_histories(rows, items, len(chosen), 0))
    return np.vstack(out)


def _latency_ms(model: tr.Recommender, users: np.ndarray) -> float:
    histories = [model._raw_items(model.seen_[user].indices[None, :20])[0] for user in users]
    model.recommend_from_history([histories[0]], k=10)
    seconds = []
    for history in histories:
        start = time.perf_counter()
        model.recommend_from_history([history], k=10)
        seconds.append(time.perf_counter() - start)
    return 1000 * float(np.median(seconds))


def _with_newton(run: Callable[[], object]) -> object:
    budget, foldin_softmax.NEWTON_BUDGET = foldin_softmax.NEWTON_BUDGET, 1 << 62
    try:
        return run()
    finally:
        foldin_softmax.NEWTON_BUDGET = budget


def markdown(rows: list[dict], environment: dict) -> str:
    lines = [
        "# New users on Gowalla: the default's fold-in by Adam and by Newton's method",
        "",
        f"`{environment['command'].strip()}` — {environment['date']}, "
        f"{environment['machine']}; wall time {environment['wall_seconds']:.0f} s.",
        "",
        f"`Recommender(random_state=0)` fitted on train.txt; {N_USERS} users with a "
        "validation item folded in from their training items and scored on valid.txt "
        "(test.txt never read). Latency: median of one `recommend_from_history` call, "
        "20 users, 20 items each.",
        "",
        "| user vectors | Recall@20 | NDCG@20 | seconds for the users | latency ms |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        latency = "" if row.get("latency_ms") is None else f"{row['latency_ms']:.1f}"
        seconds = "" if row.get("seconds") is None else f"{row['seconds']:.1f}"
        lines.append(
            f"| {row['name']} | {row['recall@20']:.4f} | {row['ndcg@20']:.4f} | {seconds} "
            f"| {latency} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gowalla", default=str(SHARED_DATA / "gowalla"))
    parser.add_argument("--out", default=str(RESULTS / Path(__file__).stem))
    args = parser.parse_args(argv)
    if not (Path(args.gowalla) / "train.txt").is_file():
        raise SystemExit(f"{args.gowalla} has no train.txt")
    torch.set_num_threads(THREADS)
    started = time.perf_counter()
    split = load_gowalla(args.gowalla)
    model = tr.Recommender(random_state=0).fit(split.train)
    valid = split.valid
    users_idx = model.user_map_.to_index(valid.users)
    items_idx = model.item_map_.to_index(valid.items)
    relevant = sp.csr_matrix(
        (np.ones(len(users_idx), np.float32), (users_idx, items_idx)), shape=model.seen_.shape
    )
    candidates = np.flatnonzero(np.diff(relevant.indptr) > 0)
    users = np.random.default_rng(1).choice(candidates, N_USERS, replace=False)
    seen = model.seen_[users]
    rows = [{"name": "trained users (reference)",
             **_metrics(model.score_indices(users), relevant[users], seen)}]  # fmt: skip
    for name, batch, run in (
        ("new users, Adam (the default here)", 240, lambda f: f()),
        ("new users, Newton's method (exact optimum)", 16, _with_newton),
    ):
        start = time.perf_counter()
        scores = run(lambda batch=batch: _history_scores(model, users, batch))
        seconds = time.perf_counter() - start
        latency = run(lambda: _latency_ms(model, users[:20]))
        rows.append({"name": name, **_metrics(scores, relevant[users], seen),
                     "seconds": seconds, "latency_ms": latency})  # fmt: skip
        print(rows[-1], flush=True)
    given = argv if argv is not None else sys.argv[1:]
    write_results(Path(args.out), rows, run_environment(__file__, given, 1, started), markdown)


if __name__ == "__main__":
    main()
