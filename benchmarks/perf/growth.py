"""How training cost grows with data: one epoch on synthetic data of growing size.

For each size, synthetic implicit feedback (``tripletrec.data.synthetic``: power-law popularity
and activity, latent topics; 20 items per user on average, 50,000 items, and the
MovieLens-1M shape 6,040 x 3,706 x 1,000,209) is written to Parquet once, then a fresh
process reads it (``Interactions.from_parquet``, record batches) and trains one epoch of
the bilinear model configured for large catalogues: dot product + item bias, BPR loss, one
uniform negative per positive, 64 factors, batch 16,384, sparse embedding gradients with
row-wise lazy Adam (``tripletrec.training.distributed``). The default preset's full softmax scores
every item for every triplet (batch x 50,000 scores per step) and is not meant for such
catalogues.

Reported per size: seconds for the epoch (training loop only), triplets per second,
seconds to read the Parquet file, and the process's peak resident memory (``getrusage``),
which is per size because each size runs in its own process.

On one size (``--compare-size``) the same epoch is also trained with dense gradients
(autograd + Adam over whole tables, and the fused closed-form step of
``TripletRecommender.fit``), and with 2 processes under ``torchrun`` (gloo, one thread
each), dense and sparse.

Run: ``python benchmarks/perf/growth.py [--sizes 1M,4M,16M,ml-1m] [--compare-size 4M]``;
writes ``results/growth.md`` and ``.json``. Measure on a quiet machine: the point is the
growth, and a busy neighbour on 2 cores doubles any figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import tripletrec as tr
from tripletrec._files import write_json_atomic
from tripletrec._system import peak_rss_bytes
from tripletrec.data.synthetic import write_synthetic_parquet
from tripletrec.models.triplet.distributed import fit_data_parallel
from tripletrec.training.distributed import TORCHRUN_VARIABLES, init_distributed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _results import RESULTS, command, write_report

ITEMS = 50_000
ITEMS_PER_USER = 20
#: The MovieLens-1M shape: users, items, ratings.
ML_1M = (6_040, 3_706, 1_000_209)
#: The large-catalogue configuration timed at every size.
MODEL = dict(
    model="bilinear", similarity="dot", item_bias=True, n_factors=64, loss="bpr",
    negatives="uniform", n_negatives=1, batch_size=16_384, learning_rate=0.01, l2=0.0,
    epochs=1, random_state=0, init_scale=0.05, max_norm=None, lr_schedule="constant",
)  # fmt: skip
TRAINERS = {
    "sparse": "sparse gradients (autograd + row-wise lazy Adam)",
    "dense": "dense gradients (autograd + Adam over whole tables)",
    "fused": "dense, fused closed-form step (TripletRecommender.fit)",
}


def parse_size(text: str) -> tuple[str, int, int, int]:
    """``"4M"`` -> ("4M", users, items, interactions); ``"ml-1m"`` -> the MovieLens shape."""
    label = text.strip()
    if label.lower() in ("ml-1m", "ml1m", "movielens-1m"):
        return "ml-1m", *ML_1M
    scale = {"k": 1_000, "m": 1_000_000}.get(label[-1].lower(), 1)
    number = label[:-1] if scale > 1 else label
    try:
        n = int(float(number) * scale)
    except ValueError:
        raise SystemExit(f"growth.py: bad size {text!r}; use e.g. 1M, 250k, 16M or ml-1m") from None
    return label, max(1, n // ITEMS_PER_USER), ITEMS, n


def data_file(folder: Path, size: tuple[str, int, int, int], seed: int) -> Path:
    """The synthetic Parquet file of ``size``, generated on first use."""
    _, users, items, n = size
    path = folder / f"synth-{users}x{items}x{n}-seed{seed}.parquet"
    if not path.exists():
        start = time.perf_counter()
        write_synthetic_parquet(path, users, items, n, random_state=seed)
        print(f"  generated {path.name} in {time.perf_counter() - start:.1f} s", flush=True)
    return path


# ---------------------------------------------------------------------- one measurement
def worker(job: dict) -> None:
    """Read, train one epoch, report (runs in its own process; under torchrun per rank)."""
    torch.set_num_threads(job["threads"])
    context = init_distributed()
    start = time.perf_counter()
    data = tr.Interactions.from_parquet(job["path"])
    load_seconds = time.perf_counter() - start
    load_rss = peak_rss_bytes()
    model = tr.TripletRecommender(**MODEL, n_threads=job["threads"])
    if job["trainer"] == "fused":
        model.fit(data)
    else:
        fit_data_parallel(model, data, sparse_gradients=job["trainer"] == "sparse", context=context)
    record = {
        "epoch_seconds": model.history_[0]["seconds"],
        "fit_seconds": model.fit_seconds_,
        "load_seconds": load_seconds,
        "loss": model.history_[0]["loss"],
        "peak_rss_bytes": peak_rss_bytes(),
        "rss_after_load_bytes": load_rss,
    }
    if context.distributed:
        records = [None] * context.world_size
        torch.distributed.all_gather_object(records, record)
        # The job is as slow as its slowest rank; memory is per machine, so it adds up.
        record = {
            **records[0],
            "epoch_seconds": max(r["epoch_seconds"] for r in records),
            "fit_seconds": max(r["fit_seconds"] for r in records),
            "peak_rss_bytes": max(r["peak_rss_bytes"] for r in records),
            "total_peak_rss_bytes": sum(r["peak_rss_bytes"] for r in records),
        }
    context.close()
    if context.is_main:
        record |= {"n_interactions": len(data), "n_users": data.n_users, "n_items": data.n_items}
        write_json_atomic(job["out"], record)


def measure(path: Path, trainer: str, processes: int, threads: int) -> dict:
    """One epoch in a fresh process (or ``processes`` under torchrun); its record."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "record.json"
        job = {"path": str(path), "trainer": trainer, "threads": threads, "out": str(out)}
        env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARIABLES}
        env["OMP_NUM_THREADS"] = str(threads)
        launcher = [sys.executable]
        if processes > 1:
            launcher += ["-m", "torch.distributed.run", "--standalone"]
            launcher += ["--nproc_per_node", str(processes)]
        command = [*launcher, str(Path(__file__).resolve()), "--worker", json.dumps(job)]
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"growth.py: measurement failed:\n{result.stderr[-3000:]}")
        record = json.loads(out.read_text())
    record |= {"trainer": trainer, "processes": processes, "threads": threads}
    record["triplets_per_second"] = record["n_interactions"] / record["epoch_seconds"]
    return record


def describe(record: dict) -> str:
    return (
        f"{record['epoch_seconds']:7.2f} s/epoch {record['triplets_per_second']:>11,.0f} "
        f"triplets/s, read {record['load_seconds']:5.2f} s, "
        f"peak RSS {record['peak_rss_bytes'] / 2**30:.2f} GiB"
    )


# ---------------------------------------------------------------------- report
#: Bytes per embedding row with sparse gradients: weights and Adam's two moments, float32.
TABLE_BYTES_PER_ROW = 3 * 4 * MODEL["n_factors"]


def per_row_costs(rows: list[dict]) -> dict:
    """Memory and time per interaction and per table row, from the two largest sizes.

    With users proportional to interactions, peak memory grows as ``a + b * interactions``;
    taking away the table rows added between the two sizes (:data:`TABLE_BYTES_PER_ROW`
    each) leaves what one interaction costs by itself.
    """
    sized = sorted((r for r in rows if r["label"] != "ml-1m"), key=lambda r: r["n_interactions"])
    if len(sized) < 2:
        return {}
    small, large = sized[-2], sized[-1]
    rows_added = large["n_interactions"] - small["n_interactions"]
    memory_added = large["peak_rss_bytes"] - small["peak_rss_bytes"]
    tables_added = TABLE_BYTES_PER_ROW * (
        large["n_users"] + large["n_items"] - small["n_users"] - small["n_items"]
    )
    return {
        "bytes_per_interaction": memory_added / rows_added,
        "bytes_per_interaction_without_tables": (memory_added - tables_added) / rows_added,
        "table_bytes_per_row": TABLE_BYTES_PER_ROW,
        "seconds_per_million_triplets": 1e6 * large["epoch_seconds"] / large["n_interactions"],
        "from_sizes": [small["label"], large["label"]],
    }


def report(out: Path, environment: dict, growth: list[dict], compare: list[dict]) -> None:
    """``out``.json and ``out``.md: the sizes' records, the comparison's and their costs."""
    costs = per_row_costs(growth)
    lines = [
        "# Growth: one training epoch against data size",
        "",
        f"`{environment['command']}` — torch {environment['torch']}, {environment['cpus']} "
        f"CPUs, Python {environment['python']}, {environment['date']}.",
        "",
        "Bilinear dot + item bias, BPR, one uniform negative, 64 factors, batch 16,384, "
        "sparse gradients (row-wise lazy Adam); synthetic data "
        f"(`tripletrec.data.synthetic`, {ITEMS_PER_USER} items per user on average, "
        f"{ITEMS:,} items; `ml-1m` is the MovieLens-1M shape). "
        f"One process, {environment['threads']} thread(s); each size in a fresh process.",
        "",
        "| size | users | items | interactions | s / epoch | triplets / s | read s | "
        "peak RSS GiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in growth:
        lines.append(
            f"| {r['label']} | {r['n_users']:,} | {r['n_items']:,} | {r['n_interactions']:,} | "
            f"{r['epoch_seconds']:.2f} | {r['triplets_per_second']:,.0f} | "
            f"{r['load_seconds']:.2f} | {r['peak_rss_bytes'] / 2**30:.2f} |"
        )
    if costs:
        lines += [
            "",
            f"Per interaction, between {costs['from_sizes'][0]} and {costs['from_sizes'][1]}: "
            f"{costs['bytes_per_interaction']:,.0f} bytes of peak memory with its share of the "
            f"user table, {costs['bytes_per_interaction_without_tables']:,.0f} bytes without "
            f"it (a table row costs {costs['table_bytes_per_row']} bytes: weights and two "
            f"Adam moments); {costs['seconds_per_million_triplets']:.2f} s per million "
            f"triplets at {costs['from_sizes'][1]}.",
        ]
    if compare:
        first = compare[0]
        lines += [
            "",
            f"## Dense against sparse gradients, 1 against 2 processes ({first['label']}: "
            f"{first['n_users']:,} users x {first['n_items']:,} items, "
            f"{first['n_interactions']:,} triplets)",
            "",
            "| trainer | processes x threads | s / epoch | triplets / s | "
            "peak RSS GiB (per process) |",
            "|---|---|---:|---:|---:|",
        ]
        for r in compare:
            lines.append(
                f"| {TRAINERS[r['trainer']]} | {r['processes']} x {r['threads']} | "
                f"{r['epoch_seconds']:.2f} | {r['triplets_per_second']:,.0f} | "
                f"{r['peak_rss_bytes'] / 2**30:.2f} |"
            )
    payload = {"environment": environment, "model": MODEL, "growth": growth, "compare": compare,
               "per_row": costs}  # fmt: skip
    write_report(out, payload, "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1M,4M,16M,ml-1m", help="interactions per run")
    parser.add_argument(
        "--compare-size", default="4M", help="size of the dense/sparse, 1/2-process runs "
        "('none' to skip)",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=2, help="threads of one process (2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (0)")
    parser.add_argument(
        "--data-dir",
        default=str(Path(tempfile.gettempdir()) / "tripletrec-growth"),
        help="where the synthetic Parquet files are kept between runs",
    )
    parser.add_argument("--out", default=str(RESULTS / "growth"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return

    folder = Path(args.data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    growth = []
    for text in args.sizes.split(","):
        size = parse_size(text)
        record = {"label": size[0]} | measure(data_file(folder, size, args.seed), "sparse", 1,
                                              args.threads)  # fmt: skip
        growth.append(record)
        print(f"{size[0]:>6} {record['n_interactions']:>12,}: {describe(record)}", flush=True)

    compare = []
    if args.compare_size.lower() != "none":
        size = parse_size(args.compare_size)
        path = data_file(folder, size, args.seed)
        runs = [
            ("sparse", 1, args.threads), ("sparse", 1, 1), ("sparse", 2, 1),
            ("dense", 1, args.threads), ("dense", 1, 1), ("dense", 2, 1),
            ("fused", 1, args.threads),
        ]  # fmt: skip
        for trainer, processes, threads in dict.fromkeys(runs):  # once each, in order
            record = {"label": size[0]} | measure(path, trainer, processes, threads)
            compare.append(record)
            print(f"{trainer:>7} {processes} x {threads}: {describe(record)}", flush=True)

    environment = {
        "command": command(__file__, sys.argv[1:]),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "threads": args.threads,
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.machine(),
    }
    report(Path(args.out), environment, growth, compare)


if __name__ == "__main__":
    main()
