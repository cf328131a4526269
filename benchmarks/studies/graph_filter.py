"""GraphFilterRecommender on validation splits only (never test): its defaults (the
filter's shape, degree exponent, rank and low-pass weight, the SVD solver) chosen, and
its rank against EASE and RP3beta where EASE fits.

Protocol. Small sets: the validation parts of ``perf/compare.py``'s split
(``_study.validation_parts``: 20 % of each data set's *training* positives held out, seed
0); AUC and NDCG@10 and fit seconds of ``GraphFilterRecommender`` (defaults, GF-CF's
settings), ``EASERecommender()`` and ``RP3BetaRecommender()`` (all deterministic: one
run each). Gowalla (LightGCN's split, ``../shared/data/gowalla``): fit on ``train.txt``,
score ``valid.txt`` with LightGCN's Recall@20 / NDCG@20 (``test.txt`` is never read);
each setting in a process of its own, so that its peak RSS is its own; the seconds to
score every validation user (``tr.evaluate``: scores, seen-item mask and top 20 by blocks
of 2,048 users) are reported beside the fit's. The grid moves one setting at a time away
from the defaults; one reference row applies ChebyCF's plateau by its degree-8 Chebyshev
polynomial (:class:`ChebyshevReference`: eight sparse products per score) instead of
the default's exact-on-top-k split, to show what that split gives up.

Run: ``python benchmarks/studies/graph_filter.py [--datasets ...] [--gowalla PATH]``
(``--gowalla none`` skips it). Writes ``results/graph_filter.md`` and ``.json``.
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

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import torch  # noqa: E402

import tripletrec as tr  # noqa: E402
from tripletrec.models.spectral import degree_powers, item_degrees, plateau  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _protocol import SHARED_DATA  # noqa: E402
from _results import RESULTS, run_environment, worker_result, write_results  # noqa: E402
from _study import DATASETS, validation_parts, validation_row  # noqa: E402

METRICS = ("auc", "ndcg@10")
GOWALLA_METRICS = ("recall@20", "ndcg@20")
#: The models of the small sets, by label.
#: GF-CF as published (Shen et al. CIKM 2021): linear filter, ideal term on the top 256.
GF_CF = {"n_components": 256, "low_pass_weight": 0.3, "degree_exponent": None, "flatness": 1.0}
SMALL = {
    "GraphFilterRecommender() (defaults: exponent auto)": lambda: tr.GraphFilterRecommender(),
    "GF, degree exponent 0.35 (Gowalla's)": lambda: tr.GraphFilterRecommender(degree_exponent=0.35),
    "GF-CF settings": lambda: tr.GraphFilterRecommender(**GF_CF),
    "EASERecommender()": lambda: tr.EASERecommender(),
    "RP3BetaRecommender()": lambda: tr.RP3BetaRecommender(),
}
#: The Gowalla settings of GraphFilterRecommender, by label: the defaults, then one
#: setting moved at a time (the degree exponent fixed at each value of the grid "auto"
#: chooses from).
GOWALLA = {
    "defaults (k 512, w 0.2, b auto, phi 1.5, ARPACK)": {},
    "GF-CF settings (k 256, w 0.3, GF-CF's normalisation, phi 1)": GF_CF,
    "ChebyCF's settings (b 0.4)": {"degree_exponent": 0.4},
    "ChebyCF's settings, degree-8 Chebyshev polynomial": {
        "degree_exponent": 0.4,
        "reference": "chebyshev",
    },
    "b 0.5": {"degree_exponent": 0.5},
    "b 0.35": {"degree_exponent": 0.35},
    "b 0.2": {"degree_exponent": 0.2},
    "b 0": {"degree_exponent": 0.0},
    "phi 1 (linear filter)": {"flatness": 1.0},
    "phi 1.75": {"flatness": 1.75},
    "w 0.3": {"low_pass_weight": 0.3},
    "k 256": {"n_components": 256},
    "randomized solver": {"solver": "randomized"},
}
#: Degree of ChebyCF's Chebyshev polynomial on Gowalla.
CHEBYSHEV_DEGREE = 8


def _torch_csr(matrix):
    """A scipy sparse matrix as a torch CSR tensor (float32): its products use both cores."""
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    return torch.sparse_csr_tensor(
        torch.from_numpy(matrix.indptr.astype(np.int64)),
        torch.from_numpy(matrix.indices.astype(np.int64)),
        torch.from_numpy(matrix.data), size=matrix.shape,
    )  # fmt: skip


class ChebyshevReference(tr.GraphFilterRecommender):
    """The same filter with ``h(P)`` applied as ChebyCF applies it: the Chebyshev
    polynomial of degree :data:`CHEBYSHEV_DEGREE` that interpolates the plateau at the
    Chebyshev nodes, in ``L = I - 2P`` (eigenvalues in [-1, 1]), plus the ideal term
    ``w V_k' V_k``; degree-normalised as the default. A study's reference, not a model."""

    def _scores(self, rows, item_idx):
        degree_order = CHEBYSHEV_DEGREE
        nodes = np.cos((np.arange(degree_order + 1) + 0.5) * np.pi / (degree_order + 1))
        values = plateau((1.0 - nodes) / 2.0, float(self.flatness))  # at lambda = (1 - x) / 2
        basis = np.polynomial.chebyshev.chebvander(nodes, degree_order)
        coefficients = 2.0 / (degree_order + 1) * basis.T @ values
        coefficients[0] /= 2.0
        degree = item_degrees(self.normalized_)
        into = degree_powers(degree, -float(self.degree_exponent)).astype(np.float32)
        out = degree_powers(degree, float(self.degree_exponent)).astype(np.float32)
        signal = sp.csr_matrix(rows, dtype=np.float32).multiply(into).toarray()
        cached = self.__dict__.get("_torch_graph")
        if cached is None or cached[0] is not self.normalized_:  # once per fitted graph
            graph = self.normalized_
            cached = (graph, _torch_csr(graph), _torch_csr(graph.T))
            self._torch_graph = cached
        _, normalized, transposed = cached

        def laplacian(block):  # block L = block - 2 (block Rn') Rn, rows as signals
            product = torch.sparse.mm(
                transposed, torch.sparse.mm(normalized, torch.from_numpy(block.T))
            )
            return block - 2.0 * product.numpy().T

        previous, current = signal, laplacian(signal)
        total = coefficients[0] * previous + coefficients[1] * current
        for coefficient in coefficients[2:]:
            previous, current = current, 2.0 * laplacian(current) - previous
            total += coefficient * current
        ideal = (signal @ self.components_.T) @ self.components_
        total = (total + float(self.low_pass_weight) * ideal) * out
        return (total if item_idx is None else total[:, item_idx]).astype(np.float32)


def _exponent(model) -> str:
    """The degree exponent a graph filter scored with ("GF-CF" for GF-CF's), or "-"."""
    if not isinstance(model, tr.GraphFilterRecommender):
        return "-"
    return "GF-CF" if model.degree_exponent_ is None else f"{model.degree_exponent_:g}"


def small_rows(dataset: str, fit_part: tr.Interactions, validation: tr.Interactions) -> list[dict]:
    rows = []
    for label, build in SMALL.items():
        start = time.perf_counter()
        model = build().fit(fit_part)
        seconds = time.perf_counter() - start
        rows.append(validation_row(model, fit_part, validation, METRICS, dataset=dataset,
                                   model=label, seconds=seconds,
                                   exponent=_exponent(model)))  # fmt: skip
    return rows


def gowalla_worker(folder: str, setting: dict) -> dict:
    """Fit on train, score valid, in this process (its peak RSS is this fit's)."""
    from tripletrec._system import peak_rss_bytes
    from tripletrec.data.datasets.gowalla import load_gowalla

    split = load_gowalla(folder)
    start = time.perf_counter()
    setting = dict(setting)
    build = ChebyshevReference if setting.pop("reference", None) else tr.GraphFilterRecommender
    model = build(**setting).fit(split.train)
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
        "exponent": _exponent(model),
        "normalized_nnz": int(model.normalized_.nnz),
    }


def gowalla_rows(folder: str) -> list[dict]:
    rows = []
    for label, setting in GOWALLA.items():
        argv = [sys.executable, __file__, "--worker", json.dumps(setting), "--gowalla", folder]
        result = worker_result(argv)
        row = {"dataset": "gowalla", "model": label, "setting": setting, **result}
        print(f"  gowalla {label}: {result}", flush=True)
        rows.append(row)
    return rows


def markdown(rows: list[dict], environment: dict) -> str:
    lines = [
        "# GraphFilterRecommender on validation splits",
        "",
        f"`{environment['command'].strip()}` — {environment['date']}, "
        f"{environment['machine']}; deterministic models, one run each; wall time "
        f"{environment['wall_seconds']:.0f} s.",
        "",
        "Small sets: 20 % of each data set's *training* positives held out (seed 0); the "
        "test rows of compare.py are never read. `GraphFilterRecommender()`: its defaults "
        "(k = 512 clamped to min(users, items) - 1); GF-CF settings: k 256, low-pass "
        "weight 0.3, GF-CF's normalisation, linear filter. `auto` shows the exponent it chose.",
        "",
        "| data set | model | degree exponent | AUC | NDCG@10 | fit s |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["dataset"] != "gowalla":
            lines.append(f"| {row['dataset']} | {row['model']} | {row['exponent']} | "
                         f"{row['auc']:.4f} | "
                         f"{row['ndcg@10']:.4f} | {row['seconds']:.2f} |")  # fmt: skip
    gowalla = [row for row in rows if row["dataset"] == "gowalla"]
    if gowalla:
        lines += [
            "",
            "Gowalla (LightGCN's split): fit on train.txt, scored on valid.txt (LightGCN's "
            "Recall@20 / NDCG@20; test.txt never read); one process per row. Evaluate s: "
            "scoring, masking and ranking every validation user.",
            "",
            "| model | degree exponent | Recall@20 | NDCG@20 | fit s | peak RSS after fit GiB | "
            "evaluate s | peak RSS GiB |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in gowalla:
            if "crashed" in row:
                lines.append(f"| {row['model']} | | crashed: {row['crashed']} | | | | | |")
                continue
            lines.append(
                f"| {row['model']} | {row['exponent']} | {row['recall@20']:.4f} | "
                f"{row['ndcg@20']:.4f} | "
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
