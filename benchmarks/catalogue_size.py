"""Fit time of the default against catalogue size: where ``negatives="auto"`` leaves the
full softmax.

Protocol: synthetic implicit feedback (:func:`tripletrec.data.synthetic.generate_synthetic`,
seed 0) with 1,000 / 3,000 / 10,000 / 30,000 / 100,000 items and a fixed 10 positives per
item (so 10,000 to 1,000,000 positives, 20 per user on average): positives and items grow
together, as they do in real catalogues, and the full softmax's cost (positives x items x
factors per epoch) grows with the square of the catalogue. Per size, the default
``TripletRecommender`` (one seed, 2 threads) is fitted for ``--epochs`` (2) epochs;
reported: items, positives, users, positives x items against the budget
(``FULL_SOFTMAX_PAIR_BUDGET``), the negatives "auto" resolved to, and seconds per epoch
(the mean of the epochs' times in ``history_``).

Where "auto" left the full softmax, the full softmax's epoch is measured capped: one epoch
with ``negatives="all"`` on the whole catalogue but a random ``--cap`` (20,000) of the
positives, scaled up by positives / cap (an epoch's cost is linear in the positives at a
fixed catalogue), so the growth it avoids is visible without spending minutes on it.

Run: ``python benchmarks/catalogue_size.py [--epochs 2] [--cap 20000] [--out PATH]``
(a few minutes); writes ``results/catalogue_size.md`` and ``.json``. ``--quick``: small
sizes and a lowered budget so that both sides of it are crossed, for a smoke run (write it
elsewhere with ``--out``; its figures mean nothing). Measure on a quiet machine.
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
import scipy.sparse as sp  # noqa: E402

import tripletrec as tr  # noqa: E402
from tripletrec._files import write_text_atomic  # noqa: E402
from tripletrec.data.synthetic import generate_synthetic  # noqa: E402
from tripletrec.training import losses  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import run_environment, write_results  # noqa: E402

HERE = Path(__file__).resolve().parent
THREADS = 2
SEED = 0
SIZES = (1_000, 3_000, 10_000, 30_000, 100_000)
POSITIVES_PER_ITEM = 10
POSITIVES_PER_USER = 20
#: --quick: sizes, and a budget between them (smoke runs only).
QUICK_SIZES = (300, 1_000, 3_000)
QUICK_BUDGET = 3_000_000


def synthetic_matrix(n_items: int) -> sp.csr_matrix:
    """Users x items positives: ``POSITIVES_PER_ITEM`` per item on average."""
    n_positives = POSITIVES_PER_ITEM * n_items
    n_users = max(50, n_positives // POSITIVES_PER_USER)
    df = generate_synthetic(n_users, n_items, n_positives, random_state=SEED)
    ones = np.ones(len(df), dtype=np.float32)
    return sp.csr_matrix((ones, (df["user_id"], df["item_id"])), shape=(n_users, n_items))


def seconds_per_epoch(model: tr.TripletRecommender) -> float:
    return float(np.mean([record["seconds"] for record in model.history_]))


def capped_full_softmax(data: sp.csr_matrix, cap: int) -> tuple[float, int]:
    """Seconds of one full-softmax epoch over all of ``data``, measured on ``cap`` of its
    positives (at random) and scaled by positives / cap; and the positives measured."""
    coo = data.tocoo()
    keep = np.random.default_rng(SEED).permutation(coo.nnz)[: min(cap, coo.nnz)]
    part = sp.csr_matrix(
        (coo.data[keep], (coo.row[keep], coo.col[keep])), shape=data.shape, dtype=np.float32
    )
    model = tr.TripletRecommender(
        negatives="all", epochs=1, random_state=SEED, n_threads=THREADS
    ).fit(part)
    return seconds_per_epoch(model) * data.nnz / part.nnz, int(part.nnz)


def measure(n_items: int, epochs: int, cap: int) -> dict:
    data = synthetic_matrix(n_items)
    model = tr.TripletRecommender(epochs=epochs, random_state=SEED, n_threads=THREADS)
    model.fit(data)
    pairs = data.nnz * n_items
    row = {
        "n_items": n_items,
        "n_users": data.shape[0],
        "n_positives": int(data.nnz),
        "pairs": pairs,
        "budget": losses.FULL_SOFTMAX_PAIR_BUDGET,
        "negatives": model.negatives_,
        "loss_kind": model._loss().kind,
        "epochs": epochs,
        "seconds_per_epoch": seconds_per_epoch(model),
        "fit_seconds": model.fit_seconds_,
    }
    if model.negatives_ == "all":
        row |= {"full_softmax_seconds_per_epoch": row["seconds_per_epoch"], "full_how": "fit"}
    else:
        seconds, measured = capped_full_softmax(data, cap)
        row |= {
            "full_softmax_seconds_per_epoch": seconds,
            "full_how": f"1 epoch on {measured:,} positives, scaled",
        }
    print(
        f"{n_items:>7,} items {data.nnz:>9,} positives: {model.negatives_:<8} "
        f"{row['seconds_per_epoch']:8.2f} s/epoch; full softmax "
        f"{row['full_softmax_seconds_per_epoch']:8.2f} s/epoch ({row['full_how']})",
        flush=True,
    )
    return row


def write_markdown(path: Path, rows: list[dict], environment: dict) -> None:
    lines = [
        "# Fit time of the default against catalogue size",
        "",
        f"`{environment['command']}` on {environment['date']}, {environment['machine']}, "
        f"one seed, {THREADS} threads; torch {environment['versions']['torch']}. Synthetic "
        f"data (seed {SEED}), {POSITIVES_PER_ITEM} positives per item, "
        f"{POSITIVES_PER_USER} per user on average; the default `TripletRecommender()` "
        f'(`negatives="auto"`), epochs: {rows[0]["epochs"]}. Budget: positives x items <= '
        f"{rows[0]['budget']:.3g} keeps the full softmax.",
        "",
        "| items | positives | users | positives x items | auto -> | default s/epoch "
        "| full softmax s/epoch | full softmax measured as |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['n_items']:,} | {row['n_positives']:,} | {row['n_users']:,} | "
            f"{row['pairs']:.3g} | {row['negatives']} | {row['seconds_per_epoch']:.2f} | "
            f"{row['full_softmax_seconds_per_epoch']:.2f} | {row['full_how']} |"
        )
    lines += [
        "",
        "An epoch of the full softmax costs positives x items x factors; of the in-batch "
        "softmax, positives x batch size x factors, whatever the catalogue. Above the "
        "budget the full softmax's epoch is one epoch on a random subset of the positives "
        "over the whole catalogue, scaled by positives / subset (linear at a fixed "
        "catalogue). Quality is not measured here.",
        "",
    ]
    write_text_atomic(path, "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each default fit (2)")
    parser.add_argument(
        "--cap", type=int, default=20_000, help="positives of the capped full softmax (20000)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, lowered budget (smoke run only)"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "catalogue_size",
                        help="output path without suffix")  # fmt: skip
    args = parser.parse_args(argv)
    started = time.perf_counter()
    sizes = SIZES
    if args.quick:
        sizes, losses.FULL_SOFTMAX_PAIR_BUDGET = QUICK_SIZES, QUICK_BUDGET
    rows = [measure(n_items, args.epochs, args.cap) for n_items in sizes]
    environment = run_environment("catalogue_size.py", sys.argv[1:], 1, started)
    write_results(args.out, rows, environment, write_markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
