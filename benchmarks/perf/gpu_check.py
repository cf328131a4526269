"""The default on a GPU against the CPU: fit time and quality on anime-5k and on a synthetic
1,000,000-user set, in one run on one machine.

Protocol:

* **anime-5k** (bundled): ``compare.py``'s split (random 80/20 row split, seed 42,
  positives rating > 7). ``TripletRecommender(device=D, random_state=S)`` at its defaults,
  on the CPU with seeds 0 and 1 (their difference is the noise a device change is judged
  against) and on ``--device`` with seed 0; full-ranking AUC and NDCG@10 on the test
  positives.
* **synthetic** (:func:`tripletrec.data.synthetic.generate_synthetic`, seed 0;
  ``--users`` users, ``--items`` items, ``--per-user`` positives per user on average),
  split at random 80/20 (seed 42). The default is fitted on ``--device`` for its full 10
  epochs and on the CPU for ``--cpu-epochs`` epochs (a full CPU fit at this size takes
  longer than a device session allows); speed is compared per epoch (the mean of the
  epochs' ``history_`` seconds). Both are scored on the test positives of the same
  ``--eval-users`` random users (seed 0); the CPU model has fewer epochs, so only the
  device's metrics are a quality figure there.

Fit seconds are wall time of ``fit``; the CPU uses torch's default thread count on the
machine, recorded with the results. Without a GPU, ``--device cpu --quick`` runs the same
code on small sizes (a smoke run: write it elsewhere with ``--out``; its figures mean
nothing).

Run on the GPU machine: ``python benchmarks/perf/gpu_check.py``; writes ``results/gpu_check.md``
and ``results/gpu_check.json``. Every fit is preceded by a warm-up fit on its device, so
that no timed fit pays for CUDA's start.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

import tripletrec as tr
from tripletrec.data.synthetic import generate_synthetic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _protocol import load
from _results import RESULTS, run_environment, write_results

METRICS = ("auc", "ndcg@10")


def fit_and_score(
    train: tr.Interactions, test: tr.Interactions, device: str, seed: int, **params
) -> dict:
    """Fit the default on ``device``; its fit seconds, seconds per epoch and test metrics."""
    model = tr.TripletRecommender(device=device, random_state=seed, **params)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    model.fit(train)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    scores = tr.evaluate(model, train, test, METRICS)
    per_epoch = float(np.mean([epoch["seconds"] for epoch in model.history_]))
    return {"device": device, "seed": seed, "epochs": len(model.history_),
            "fit_seconds": seconds, "seconds_per_epoch": per_epoch,
            "n_users_evaluated": scores["n_users"]} | {m: scores[m] for m in METRICS}  # fmt: skip


def warm_up(device: str) -> None:
    """One small fit on ``device``, so that no timed fit pays for the first kernels, the
    thread pools or CUDA's start."""
    frame = generate_synthetic(500, 100, 5_000, random_state=0)
    tr.TripletRecommender(device=device, epochs=1).fit(tr.Interactions.from_dataframe(frame))


def anime_5k(device: str) -> list[dict]:
    train, test = load("anime-5k")  # compare.py's split and positives
    runs = [("reference", "cpu", 0), ("reference", "cpu", 1), ("checked", device, 0)]
    return [
        {"data": "anime-5k", "role": role} | fit_and_score(train, test, where, seed)
        for role, where, seed in runs
    ]


def synthetic(args: argparse.Namespace) -> list[dict]:
    frame = generate_synthetic(args.users, args.items, args.users * args.per_user, random_state=0)
    data = tr.Interactions.from_dataframe(frame)
    train, test = tr.random_split(data, test_size=0.2, random_state=42)
    rng = np.random.default_rng(0)
    users = rng.choice(data.n_users, size=min(args.eval_users, data.n_users), replace=False)
    test = test.subset(np.isin(test.users, users))
    name = f"synthetic ({args.users:,} users, {args.items:,} items)"
    print(f"{name}: {len(train):,} train / {len(test):,} evaluated test positives", flush=True)
    return [
        {"data": name, "role": "checked"} | fit_and_score(train, test, args.device, 0),
        {"data": name, "role": "reference"}
        | fit_and_score(train, test, "cpu", 0, epochs=args.cpu_epochs),
    ]


def markdown(rows: list[dict], environment: dict) -> str:
    lines = [
        "# The default on a GPU against the CPU",
        "",
        f"`{environment['command'].strip()}` — {environment['date']}, "
        f"{environment['machine']}, {environment['device']}; torch "
        f"{environment['versions']['torch']}, {environment['cpu_threads']} CPU threads; wall "
        f"time {environment['wall_seconds']:.0f} s.",
        "",
        "| data | device | seed | epochs | fit s | s / epoch | AUC | NDCG@10 | users evaluated |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['data']} | {row['device']} | {row['seed']} | {row['epochs']} | "
            f"{row['fit_seconds']:.2f} | {row['seconds_per_epoch']:.3f} | {row['auc']:.4f} | "
            f"{row['ndcg@10']:.4f} | {row['n_users_evaluated']:,} |"
        )
    lines += ["", *speed_lines(rows)]
    return "\n".join(lines) + "\n"


def speed_lines(rows: list[dict]) -> list[str]:
    """Per data set: the checked device's seconds per epoch as a multiple of the CPU's (seed
    0), and on anime-5k its metric differences against the CPU's seed-to-seed ones."""
    lines = []
    for data in dict.fromkeys(row["data"] for row in rows):
        subset = [row for row in rows if row["data"] == data]
        cpu = next(row for row in subset if row["role"] == "reference" and row["seed"] == 0)
        device = next(row for row in subset if row["role"] == "checked")
        lines.append(
            f"- {data}: {device['device']} s / epoch = "
            f"{device['seconds_per_epoch'] / cpu['seconds_per_epoch']:.3g}x the CPU's."
        )
        other_seed = [row for row in subset if row["role"] == "reference" and row["seed"] == 1]
        if other_seed:
            for metric in METRICS:
                lines.append(
                    f"  {metric}: device - CPU {device[metric] - cpu[metric]:+.4f}; CPU seed 1 - "
                    f"seed 0 {other_seed[0][metric] - cpu[metric]:+.4f}."
                )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--per-user", type=int, default=20)
    parser.add_argument("--cpu-epochs", type=int, default=1)
    parser.add_argument("--eval-users", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--skip-anime", action="store_true", help="the synthetic set alone")
    parser.add_argument("--out", default=str(RESULTS / "gpu_check"))
    args = parser.parse_args(argv)
    if args.quick:
        args.users, args.items, args.eval_users = 2_000, 500, 500
    started = time.perf_counter()
    for device in dict.fromkeys(("cpu", args.device)):
        warm_up(device)
    rows = [] if args.skip_anime else anime_5k(args.device)
    rows += synthetic(args)
    given = argv if argv is not None else sys.argv[1:]
    environment = run_environment(__file__, given, 1, started)
    environment |= {
        "cpu_threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "no GPU",
    }
    write_results(Path(args.out), rows, environment, markdown)


if __name__ == "__main__":
    main()
