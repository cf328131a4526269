"""Where a dense item-item fit stops: EASE's peak memory against catalogue size, and the
catalogue size at which the LAPACK scipy links crashes (issue 23: EASE died by SIGSEGV on
Gowalla's 40,981 items).

Protocol. Peak memory: per size, a fresh process builds a synthetic users x items matrix
(3 users per item, 20 random positives per item plus one per item, seed 0), fits
``EASERecommender(l2=500)`` and reports its peak RSS (``ru_maxrss``) above the RSS before
the fit, per item pair, beside :func:`tripletrec.models.ease.ease_peak_bytes` (the bound
the refusal uses). LAPACK: per size, a fresh process with ``OPENBLAS_NUM_THREADS`` set
factorises ``500 I + 0.01 * 11'`` (symmetric positive definite) with scipy's ``dpotrf``,
as EASE does; it either completes, dies by a signal, or is still running after
``--probe-seconds`` (20: the crash, when it comes, comes within a second, at the first
panel). Each probe holds ``8 * n**2`` bytes: 4.1 GB at 22,700 items.

Run: ``python benchmarks/perf/dense_limits.py [--sizes 2000,4000,8000] [--lapack-sizes
22692,22700] [--threads 2] [--out PATH]`` (about 2 minutes plus 20 s per surviving probe;
run it alone: the probes need ``8 n**2`` bytes free). Writes ``results/dense_limits.md``
and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _results import RESULTS, run_environment, write_results

#: Child process: peak RSS of one EASE fit (JSON on stdout).
PEAK_CHILD = """
import json, resource, sys
import numpy as np, scipy.sparse as sp
from tripletrec import EASERecommender
from tripletrec.models.ease import ease_peak_bytes
n = int(sys.argv[1]); users = 3 * n; rng = np.random.default_rng(0)
rows = np.concatenate([rng.integers(0, users, 20 * n), rng.integers(0, users, n)])
cols = np.concatenate([rng.integers(0, n, 20 * n), np.arange(n)])
x = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(users, n))
x.data[:] = 1.0
before = int(open("/proc/self/statm").read().split()[1]) * 4096
EASERecommender(l2=500.0, max_memory_bytes=1 << 50).fit(x)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"added": peak - before, "bound": ease_peak_bytes(n, x.nnz, users)}))
"""
#: Child process: scipy's dpotrf on an n x n SPD matrix, as EASE calls it.
POTRF_CHILD = """
import sys
import numpy as np, scipy.linalg
n = int(sys.argv[1])
g = np.full((n, n), 0.01); g[np.diag_indices(n)] += 500.0
print("start", flush=True)
_, info = scipy.linalg.lapack.dpotrf(g.T, lower=False, clean=False, overwrite_a=True)
print("done", info, flush=True)
"""


def peak_row(n: int) -> dict:
    """EASE's measured peak above the baseline at ``n`` items, and the refusal's bound."""
    out = subprocess.run(
        [sys.executable, "-c", PEAK_CHILD, str(n)], capture_output=True, text=True, check=True
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        "kind": "peak",
        "items": n,
        "added_mib": got["added"] / 2**20,
        "bytes_per_pair": got["added"] / n**2,
        "bound_mib": got["bound"] / 2**20,
    }


def probe_row(n: int, threads: int, seconds: float) -> dict:
    """Whether scipy's dpotrf survives ``n`` items with ``threads`` OpenBLAS threads."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads))
    child = subprocess.Popen(
        [sys.executable, "-c", POTRF_CHILD, str(n)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    child.stdout.readline()  # "start": the matrix is built, dpotrf begins
    start = time.perf_counter()
    try:
        code = child.wait(seconds)
        outcome = "completed" if code == 0 else f"killed by signal {-code}" if code < 0 else code
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        outcome = f"running after {seconds:.0f} s"
    return {
        "kind": "lapack",
        "items": n,
        "threads": threads,
        "outcome": outcome,
        "seconds": time.perf_counter() - start,
    }


def markdown(rows: list[dict], environment: dict) -> str:
    lines = [
        "# Dense item-item limits",
        "",
        f"`{environment['command']}` on {environment['machine']}, {environment['date']}.",
        "",
        "| items | EASE peak above baseline | bytes per item pair | refusal's bound |",
        "|---|---|---|---|",
    ]
    for row in (r for r in rows if r["kind"] == "peak"):
        lines.append(
            f"| {row['items']:,} | {row['added_mib']:.0f} MiB | {row['bytes_per_pair']:.2f} "
            f"| {row['bound_mib']:.0f} MiB |"
        )
    lines += ["", "| items | OpenBLAS threads | scipy `dpotrf` | seconds |", "|---|---|---|---|"]
    for row in (r for r in rows if r["kind"] == "lapack"):
        lines.append(
            f"| {row['items']:,} | {row['threads']} | {row['outcome']} | {row['seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,4000,8000")
    parser.add_argument("--lapack-sizes", default="22692,22700")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--probe-seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "dense_limits")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    probes = [int(s) for s in args.lapack_sizes.split(",") if s]
    rows = [peak_row(n) for n in sizes]
    rows += [probe_row(n, args.threads, args.probe_seconds) for n in probes]
    environment = run_environment(__file__, sys.argv[1:] if argv is None else argv, 1, start)
    write_results(args.out, rows, environment, markdown)


if __name__ == "__main__":
    main()
