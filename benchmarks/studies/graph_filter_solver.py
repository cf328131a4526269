"""The graph filter's SVD solvers on a large synthetic set's validation split: ranking,
fit time and memory (what ``GraphFilterRecommender(solver="auto")``'s positives budget,
``ARPACK_MAX_POSITIVES``, rests on).

Protocol: the synthetic rows of ``benchmarks/perf/scale_end_to_end.py`` (rows/20 users x
rows/100 items, seed 0; 5 M rows by default), the training command's split (random 80/20,
seed 42; its test part is never read), then ``validation_split(train, 0.2,
random_state=0)``. ``GraphFilterRecommender(n_components=512, solver=...)`` (the default's
vectors at 50,000 items, degree exponent chosen on its inner split) is fitted on the fit
part with ARPACK and with the randomized range finder, each in a process of its own so
that its peak RSS is its own, and scored with Recall@20 and NDCG@20 on a seeded sample of
the validation users (every item but the user's fit positives ranked).

Run alone: ``python benchmarks/studies/graph_filter_solver.py [--rows 5000000]
[--users 20000]``. Writes ``results/graph_filter_solver.md`` and ``.json``.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "2")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _results import RESULTS, run_environment, worker_result, write_results  # noqa: E402

SOLVERS = ("arpack", "randomized")
N_COMPONENTS = 512
METRICS = ("recall@20", "ndcg@20")


def worker(solver: str, rows: int, users: int) -> dict:
    """Fit and score one solver in this process."""
    import torch

    import tripletrec as tr
    from tripletrec._system import peak_rss_bytes
    from tripletrec.data.synthetic import generate_synthetic

    torch.set_num_threads(2)
    data = tr.Interactions.from_dataframe(
        generate_synthetic(rows // 20, rows // 100, rows, random_state=0)
    )
    train, _ = tr.random_split(data, test_size=0.2, random_state=42)  # test: never read
    fit_part, validation = tr.validation_split(train, 0.2, random_state=0)
    start = time.perf_counter()
    model = tr.GraphFilterRecommender(n_components=N_COMPONENTS, solver=solver).fit(fit_part)
    fit_seconds = time.perf_counter() - start
    scores = tr.evaluate(model, fit_part, validation, list(METRICS), max_users=users)
    return {
        "solver": solver, "rows": rows, "fit_positives": len(fit_part),
        "n_items": data.n_items, "degree_exponent": model.degree_exponent_,
        "fit_seconds": fit_seconds, "users_scored": scores["n_users"],
        **{metric: scores[metric] for metric in METRICS},
        "peak_rss_gib": peak_rss_bytes() / 2**30,
    }  # fmt: skip


def markdown(rows: list[dict], environment: dict) -> str:
    first = rows[0]
    lines = [
        "# The graph filter's SVD solvers on a large synthetic validation split",
        "",
        f"`{environment['command'].strip()}` — {environment['date']}, "
        f"{environment['machine']}; wall time {environment['wall_seconds']:.0f} s; one "
        "process per solver, run alone.",
        "",
        f"{first['rows']:,} synthetic rows ({first['n_items']:,} items); fitted on "
        f"{first['fit_positives']:,} positives (80 % of the training command's train "
        f"part), scored on {first['users_scored']:,} sampled validation users. "
        f"`GraphFilterRecommender(n_components={N_COMPONENTS}, solver=...)`.",
        "",
        "| solver | degree exponent | Recall@20 | NDCG@20 | fit s | peak RSS GiB |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['solver']} | {row['degree_exponent']:g} | {row['recall@20']:.4f} | "
            f"{row['ndcg@20']:.4f} | {row['fit_seconds']:.1f} | {row['peak_rss_gib']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--out", default=str(RESULTS / Path(__file__).stem))
    parser.add_argument("--worker", choices=SOLVERS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.rows, args.users)))
        return
    started = time.perf_counter()
    rows = []
    for solver in SOLVERS:
        command = [sys.executable, __file__, "--worker", solver, "--rows", str(args.rows),
                   "--users", str(args.users)]  # fmt: skip
        result = worker_result(command)
        if "crashed" in result:
            raise SystemExit(f"{solver}: {result['crashed']}")
        rows.append(result)
        print(rows[-1], flush=True)
    given = argv if argv is not None else sys.argv[1:]
    write_results(Path(args.out), rows, run_environment(__file__, given, 1, started), markdown)


if __name__ == "__main__":
    main()
