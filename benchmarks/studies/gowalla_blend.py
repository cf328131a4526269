"""The default's blend weight on Gowalla's validation split (never test).

Beside EASE (catalogues up to 10,000 items) the weight 0.3 was chosen on anime-tv,
MovieLens-100k and anime-5k (``hybrid_weight.py``); above, the default blends the graph
filter instead, and Gowalla is the validation set of that size. Protocol: LightGCN's split
(``../shared/data/gowalla``), ``tripletrec.Recommender(random_state=0)`` fitted once on
``train.txt`` and scored on ``valid.txt`` (LightGCN's Recall@20 / NDCG@20) at each weight
of :data:`WEIGHTS`: the weight enters only the blend of the two parts' scores, so
``set_params(weight=w)`` on the fitted model scores exactly what ``Recommender(weight=w)``
would. Weight 1 ranks as the graph filter alone.

Run: ``python benchmarks/studies/gowalla_blend.py [--gowalla PATH]``. Writes
``results/gowalla_blend.md`` and ``.json``.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "2")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import tripletrec as tr  # noqa: E402
from tripletrec.data.datasets.gowalla import load_gowalla  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _protocol import SHARED_DATA  # noqa: E402
from _results import RESULTS, run_environment, write_results  # noqa: E402

METRICS = ("recall@20", "ndcg@20")
WEIGHTS = (0.2, 0.3, 0.5, 0.7, 1.0)


def markdown(rows: list[dict], environment: dict) -> str:
    fit = rows[0]
    lines = [
        "# The default's blend weight on Gowalla's validation split",
        "",
        f"`{environment['command'].strip()}` — {environment['date']}, "
        f"{environment['machine']}; one fit on train.txt (item-item part: {fit['item_item']} "
        f"with k = {fit['n_components']}), scored on valid.txt at each weight; test.txt never "
        "read. A study of scores: its seconds are not reported.",
        "",
        "| weight (item-item share) | Recall@20 | NDCG@20 |",
        "|---|---|---|",
    ]
    for row in rows:
        default = " (default)" if row["weight"] == tr.Recommender().weight else ""
        lines.append(
            f"| {row['weight']}{default} | {row['recall@20']:.4f} | {row['ndcg@20']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gowalla", default=str(SHARED_DATA / "gowalla"))
    parser.add_argument("--out", default=str(RESULTS / Path(__file__).stem))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    split = load_gowalla(args.gowalla)
    model = tr.Recommender(random_state=0).fit(split.train)
    fitted = {
        "item_item": model.item_item_kind_,
        "n_components": getattr(model.item_item_, "n_components_", None),
    }
    rows = []
    for weight in WEIGHTS:
        model.set_params(weight=weight)
        scores = tr.evaluate(model, split.train, split.valid, list(METRICS))
        rows.append({**fitted, "weight": weight, **{name: scores[name] for name in METRICS}})
        print(f"  weight {weight}: {rows[-1]}", flush=True)
    given = argv if argv is not None else sys.argv[1:]
    write_results(Path(args.out), rows, run_environment(__file__, given, 1, started), markdown)


if __name__ == "__main__":
    main()
