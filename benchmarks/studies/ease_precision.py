"""EASE's inverse in float32 against float64, on validation splits: the weights, the rankings
and the time (``EASERecommender`` factorises in float32).

Protocol: small sets as ``compare.py`` splits them, then ``validation_split(train, 0.2,
random_state=0)``. For each ``l2`` of :data:`L2_VALUES`, ``EASERecommender(l2,
user_weight_exponent=0.5)`` (the hybrid's weighting) is fitted on the fit part; the same
Gram matrix is then solved in float64 (``numpy.linalg.inv``) and its ``B`` put in the
model's place. Rows: the largest difference between the two ``B`` relative to the largest
entry, and full-ranking AUC and NDCG@10 on the validation positives with each. Inverse
seconds: scipy's Cholesky inverse (``?potrf`` + ``?potri``) of the data set's Gram matrix
in each precision, best of 3, 2 BLAS threads.

Run alone: ``python benchmarks/studies/ease_precision.py [--datasets ...]``. Writes
``results/ease_precision.md`` and ``.json``.
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
import scipy.linalg  # noqa: E402
import scipy.sparse as sp  # noqa: E402

import tripletrec as tr  # noqa: E402
from tripletrec.models import ease  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _results import RESULTS, run_environment, write_results  # noqa: E402
from _study import DATASETS, validation_parts  # noqa: E402

L2_VALUES = (38.0, 130.0, 440.0)
EXPONENT = 0.5
METRICS = ("auc", "ndcg@10")


def float64_weights(gram: np.ndarray, l2: float) -> np.ndarray:
    """``B`` from the Gram matrix, solved in float64."""
    work = gram.astype(np.float64)
    work[np.diag_indices(len(work))] += l2
    precision = np.linalg.inv(work)
    weights = -precision / np.diag(precision)[None, :]
    np.fill_diagonal(weights, 0.0)
    return weights


def inverse_seconds(gram: np.ndarray, dtype: type[np.floating]) -> float:
    """Best of 3 timings of scipy's Cholesky inverse of ``gram + 130 I`` in ``dtype``."""
    best = np.inf
    for _ in range(3):
        work = np.array(gram, dtype=dtype, order="F")
        work[np.diag_indices(len(work))] += 130.0
        potrf, potri = scipy.linalg.lapack.get_lapack_funcs(("potrf", "potri"), (work,))
        start = time.perf_counter()
        factor, _ = potrf(work, lower=False, clean=False, overwrite_a=True)
        potri(factor, lower=False, overwrite_c=True)
        best = min(best, time.perf_counter() - start)
    return best


def compare(name: str, fit_part: tr.Interactions, validation: tr.Interactions) -> list[dict]:
    rows = []
    for l2 in L2_VALUES:
        model = tr.EASERecommender(l2=l2, user_weight_exponent=EXPONENT).fit(fit_part)
        x = sp.csr_matrix(model.seen_[:, model.active_items_], dtype=np.float64)
        gram = ease._gram(ease.user_weighted(x, EXPONENT))
        single = tr.evaluate(model, fit_part, validation, METRICS)
        reference = float64_weights(gram, l2)
        difference = np.abs(reference - model.weights_).max() / np.abs(reference).max()
        model.weights_ = reference.astype(np.float32)
        double = tr.evaluate(model, fit_part, validation, METRICS)
        row = {
            "dataset": name, "active_items": len(model.active_items_), "l2": l2,
            "max_relative_difference": float(difference),
            **{f"{metric}_float32": single[metric] for metric in METRICS},
            **{f"{metric}_float64": double[metric] for metric in METRICS},
        }  # fmt: skip
        if l2 == L2_VALUES[0]:
            row["inverse_seconds_float32"] = inverse_seconds(gram, np.float32)
            row["inverse_seconds_float64"] = inverse_seconds(gram, np.float64)
        print(row, flush=True)
        rows.append(row)
    return rows


def markdown(rows: list[dict], environment: dict) -> str:
    lines = [
        "# EASE's inverse in float32 against float64",
        "",
        f"`{environment['command'].strip()}` — {environment['date']}, "
        f"{environment['machine']}; wall time {environment['wall_seconds']:.0f} s.",
        "",
        "Validation positives: 20 % of each data set's *training* positives (test never "
        "read). `EASERecommender(l2, user_weight_exponent=0.5)`; the float64 row solves "
        "the same Gram matrix with `numpy.linalg.inv`. Difference: largest |B32 - B64| "
        "over the largest |B64|.",
        "",
        "| data set | active items | l2 | difference | AUC float32 / float64 | "
        "NDCG@10 float32 / float64 | Cholesky inverse s, float32 / float64 |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        seconds = (
            f"{row['inverse_seconds_float32']:.3f} / {row['inverse_seconds_float64']:.3f}"
            if "inverse_seconds_float32" in row
            else ""
        )
        lines.append(
            f"| {row['dataset']} | {row['active_items']:,} | {row['l2']:g} | "
            f"{row['max_relative_difference']:.1e} | "
            f"{row['auc_float32']:.6f} / {row['auc_float64']:.6f} | "
            f"{row['ndcg@10_float32']:.6f} / {row['ndcg@10_float64']:.6f} | {seconds} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=DATASETS)
    parser.add_argument("--out", default=str(RESULTS / Path(__file__).stem))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows: list[dict] = []
    for name, fit_part, validation in validation_parts(args.datasets):
        rows += compare(name, fit_part, validation)
    given = argv if argv is not None else sys.argv[1:]
    write_results(Path(args.out), rows, run_environment(__file__, given, 1, started), markdown)


if __name__ == "__main__":
    main()
