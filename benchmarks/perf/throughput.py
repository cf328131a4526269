"""Training throughput (triplets per second) against batch size, for each model.

Trains on the anime-tv training positives (91,591 per epoch) with batch sizes from 64 to
16,384 and reports triplets per second over the timed epochs (the first epoch is a warm-up
and not counted). The bilinear model with one negative uses the fused step; the same model
forced through autograd is measured in the same run for the ratio.

Run: ``python benchmarks/perf/throughput.py [--epochs 3]``; writes ``results/throughput.md`` and
``.json``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

import tripletrec as tr
from tripletrec.models.scorers import BilinearScorer, TripletNet
from tripletrec.training.loop import TrainingSchedule, autograd_step, train_triplets
from tripletrec.training.losses import get_loss
from tripletrec.training.sampling import make_sampler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _results import RESULTS, command, write_report

BATCH_SIZES = (64, 256, 1024, 4096, 16384)
#: Settings held fixed whatever the constructor's defaults: the table's model sizes.
PINNED = dict(n_factors=64, init_scale=0.05, max_norm=None, lr_schedule="constant")
MODELS = {
    "bilinear (fused step)": dict(
        model="bilinear", similarity="cosine", item_bias=False, loss="margin", negatives="uniform"
    ),
    "bilinear (autograd)": dict(
        model="bilinear", loss="margin", negatives="uniform", _autograd=True
    ),
    "bilinear softmax over all items (fused)": dict(
        model="bilinear", similarity="dot", loss="softmax", negatives="all"
    ),
    "deep (autograd)": dict(model="deep", loss="margin", negatives="uniform"),
}


def measure(train: tr.Interactions, options: dict, batch_size: int, epochs: int) -> float:
    """Triplets per second of ``epochs`` timed epochs, after one warm-up epoch."""
    options = dict(options)
    if options.pop("_autograd", False):
        history = autograd_bilinear_history(train, batch_size, epochs + 1)
    else:
        model = tr.TripletRecommender(
            **{**PINNED, **options}, batch_size=batch_size, epochs=epochs + 1,
            learning_rate=1e-3, random_state=0,
        )  # fmt: skip
        history = model.fit(train).history_
    timed = sum(record["seconds"] for record in history[1:])
    return epochs * len(train) / timed


def autograd_bilinear_history(train: tr.Interactions, batch_size: int, epochs: int) -> list[dict]:
    """The bilinear cosine model trained through autograd instead of the fused step."""
    seen = train.to_csr()
    users, items = seen.nonzero()
    scorer = BilinearScorer(train.n_users, train.n_items, 64, "cosine")
    schedule = TrainingSchedule(epochs, batch_size, 1e-3)
    step = autograd_step(TripletNet(scorer), get_loss("margin", 1.0), schedule)
    sampler = make_sampler("uniform", seen)
    return train_triplets(step, users, items, sampler, schedule, np.random.default_rng(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per point")
    parser.add_argument("--out", default=str(RESULTS / "throughput"))
    args = parser.parse_args()

    data = tr.load_dataset("anime-tv")
    train, _ = tr.random_split(data, 0.2, 42)
    train = train.positives(7)
    rows = []
    for name, options in MODELS.items():
        for batch_size in BATCH_SIZES:
            rate = measure(train, options, batch_size, args.epochs)
            rows.append({"model": name, "batch_size": batch_size, "triplets_per_second": rate})
            print(f"{name:<42} batch {batch_size:>6}: {rate:>12,.0f} triplets/s", flush=True)

    environment = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "timed_epochs": args.epochs,
        "triplets_per_epoch": len(train),
    }
    header = "| model | " + " | ".join(f"batch {b:,}" for b in BATCH_SIZES) + " |"
    lines = [
        "# Training throughput (triplets / second), anime-tv",
        "",
        f"`{command(__file__)}` — torch {environment['torch']}, "
        f"{environment['threads']} CPU threads, {environment['date']}; "
        f"{len(train):,} triplets per epoch, mean over {args.epochs} epochs after a warm-up.",
        "",
        header,
        "|---|" + "---|" * len(BATCH_SIZES),
    ]
    for name in MODELS:
        rates = [r["triplets_per_second"] for r in rows if r["model"] == name]
        lines.append(f"| {name} | " + " | ".join(f"{rate:,.0f}" for rate in rates) + " |")
    payload = {"environment": environment, "rows": rows}
    write_report(Path(args.out), payload, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
