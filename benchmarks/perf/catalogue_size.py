"""Fit time of the default against catalogue size: where ``batch_by="auto"`` groups the
full softmax's batches by user, and where ``negatives="auto"`` leaves it.

Protocol: synthetic implicit feedback (:func:`tripletrec.data.synthetic.generate_synthetic`,
seed 0) with 1,000 / 3,000 / 10,000 / 30,000 / 100,000 items and a fixed 10 positives per
item (so 10,000 to 1,000,000 positives, 20 per user on average): positives and items grow
together, as they do in real catalogues, and the full softmax's cost (positives x items x
factors per epoch with shuffled positives) grows with the square of the catalogue; with
per-user batches it is about users x items x factors. Per size, the default
``TripletRecommender`` (one seed, 2 threads) is fitted for ``--epochs`` (2) epochs;
reported: items, positives, users, positives x items and users x items against the
budgets (``PER_POSITIVE_PAIR_BUDGET``, ``FULL_SOFTMAX_PAIR_BUDGET``), what "auto"
resolved to, and seconds per epoch (the mean of the epochs' times in ``history_``).

Beside it, one epoch of the full softmax (``negatives="all"``) with each grouping. Where
that epoch would score more than ``FULL_SOFTMAX_PAIR_BUDGET`` pairs it is measured on
about ``--cap`` (20,000) positives and scaled (see :func:`full_softmax_epoch`), so the
growth that "auto" avoids is visible without spending minutes on it.

Run: ``python benchmarks/perf/catalogue_size.py [--epochs 2] [--cap 20000] [--out PATH]``
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
from tripletrec.data.synthetic import generate_synthetic  # noqa: E402
from tripletrec.training import losses  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _protocol import THREADS  # noqa: E402
from _results import RESULTS, run_environment, write_results  # noqa: E402

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


def full_softmax_epoch(data: sp.csr_matrix, batch_by: str, cap: int) -> tuple[float, str]:
    """Seconds of one full-softmax epoch over all of ``data`` with ``batch_by``, and how it
    was measured: a whole epoch while it scores at most the budget's pairs, else one epoch
    on about ``cap`` positives, scaled to the whole. Shuffled positives cost positives x
    items, so the subset is random positives, scaled by positives / subset; per-user
    batches cost users x items, so it is every positive of random users, scaled by
    users / subset users."""
    pairs = losses.full_softmax_pairs(batch_by, data.nnz, data.shape[0], data.shape[1])
    part, scale, how = data, 1.0, "1 epoch"
    if pairs > losses.FULL_SOFTMAX_PAIR_BUDGET:
        coo = data.tocoo()
        rng = np.random.default_rng(SEED)
        if batch_by == "positive":
            keep = rng.permutation(coo.nnz)[: min(cap, coo.nnz)]
            scale = coo.nnz / len(keep)
        else:
            n_users = max(1, round(data.shape[0] * cap / data.nnz))
            users = rng.permutation(data.shape[0])[:n_users]
            keep = np.flatnonzero(np.isin(coo.row, users))
            scale = data.shape[0] / max(len(np.unique(coo.row[keep])), 1)
        part = sp.csr_matrix(
            (coo.data[keep], (coo.row[keep], coo.col[keep])), shape=data.shape, dtype=np.float32
        )
        how = f"{part.nnz:,} positives, scaled"
    model = tr.TripletRecommender(
        negatives="all", batch_by=batch_by, epochs=1, random_state=SEED, n_threads=THREADS
    ).fit(part)
    return seconds_per_epoch(model) * scale, how


def measure(n_items: int, epochs: int, cap: int) -> dict:
    data = synthetic_matrix(n_items)
    model = tr.TripletRecommender(epochs=epochs, random_state=SEED, n_threads=THREADS)
    model.fit(data)
    row = {
        "n_items": n_items,
        "n_users": data.shape[0],
        "n_positives": int(data.nnz),
        "pairs": data.nnz * n_items,
        "user_pairs": data.shape[0] * n_items,
        "budget": losses.FULL_SOFTMAX_PAIR_BUDGET,
        "per_positive_budget": losses.PER_POSITIVE_PAIR_BUDGET,
        "negatives": model.negatives_,
        "batch_by": model.batch_by_,
        "loss_kind": model._loss().kind,
        "epochs": epochs,
        "seconds_per_epoch": seconds_per_epoch(model),
        "fit_seconds": model.fit_seconds_,
    }
    for batch_by in ("positive", "user"):
        seconds, how = full_softmax_epoch(data, batch_by, cap)
        row |= {f"full_{batch_by}_seconds_per_epoch": seconds, f"full_{batch_by}_how": how}
    print(
        f"{n_items:>7,} items {data.nnz:>9,} positives: {model.negatives_:<8} "
        f"{model.batch_by_:<8} {row['seconds_per_epoch']:8.2f} s/epoch; full softmax "
        f"{row['full_positive_seconds_per_epoch']:8.2f} ({row['full_positive_how']}) "
        f"per user {row['full_user_seconds_per_epoch']:8.2f} ({row['full_user_how']})",
        flush=True,
    )
    return row


def markdown(rows: list[dict], environment: dict) -> str:
    lines = [
        "# Fit time of the default against catalogue size",
        "",
        f"`{environment['command']}` on {environment['date']}, {environment['machine']}, "
        f"one seed, {THREADS} threads; torch {environment['versions']['torch']}. Synthetic "
        f"data (seed {SEED}), {POSITIVES_PER_ITEM} positives per item, "
        f"{POSITIVES_PER_USER} per user on average; the default `TripletRecommender()` "
        f'(`negatives="auto"`, `batch_by="auto"`), epochs: {rows[0]["epochs"]}. '
        f"The full softmax groups its batches by user above "
        f"{rows[0]['per_positive_budget']:.3g} positive x item pairs and stays while an "
        f"epoch scores at most {rows[0]['budget']:.3g} pairs (users x items when grouped).",
        "",
        "| items | positives | users | positives x items | users x items | auto -> "
        "| default s/epoch | full softmax, shuffled positives, s/epoch "
        "| full softmax, per-user batches, s/epoch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['n_items']:,} | {row['n_positives']:,} | {row['n_users']:,} | "
            f"{row['pairs']:.3g} | {row['user_pairs']:.3g} | "
            f"{row['negatives']}, {row['batch_by']} | {row['seconds_per_epoch']:.2f} | "
            f"{row['full_positive_seconds_per_epoch']:.2f} ({row['full_positive_how']}) | "
            f"{row['full_user_seconds_per_epoch']:.2f} ({row['full_user_how']}) |"
        )
    lines += [
        "",
        "An epoch of the full softmax costs positives x items x factors with shuffled "
        "positives, about users x items x factors with per-user batches; the in-batch "
        "softmax costs positives x batch size x factors, whatever the catalogue. Where an "
        "epoch would score more than the budget's pairs it is measured on a subset and "
        "scaled: random positives (scaled by positives / subset) for shuffled positives, "
        "every positive of random users (scaled by users / subset users) for per-user "
        "batches. Quality is not measured here (`user_batches.py` compares the two "
        "groupings on validation splits).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each default fit (2)")
    parser.add_argument(
        "--cap", type=int, default=20_000, help="positives of the capped full softmax (20000)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, lowered budget (smoke run only)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "catalogue_size",
                        help="output path without suffix")  # fmt: skip
    args = parser.parse_args(argv)
    started = time.perf_counter()
    sizes = SIZES
    if args.quick:
        sizes, losses.FULL_SOFTMAX_PAIR_BUDGET = QUICK_SIZES, QUICK_BUDGET
        losses.PER_POSITIVE_PAIR_BUDGET = QUICK_BUDGET // 10
    rows = [measure(n_items, args.epochs, args.cap) for n_items in sizes]
    environment = run_environment(__file__, sys.argv[1:], 1, started)
    write_results(args.out, rows, environment, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
