"""Where a dense item-item fit stops: EASE's peak memory against catalogue size, and the
catalogue size at which the LAPACK scipy links crashes (issue 23: EASE died by SIGSEGV on
Gowalla's 40,981 items).

Protocol. Peak memory: per size, a fresh process builds a synthetic users x items matrix
(3 users per item, 20 random positives per item plus one per item, seed 0), fits
``EASERecommender(l2=500)`` and reports its peak RSS (``ru_maxrss``) above the RSS before
the fit, per item pair, beside :func:`tripletrec.models.ease.ease_peak_bytes` (the bound
the refusal uses), and the fit's wall time (BLAS threads as the environment sets them).

LAPACK: per size, a fresh process with ``OPENBLAS_NUM_THREADS`` set factorises
``500 I + 0.01 * 11'`` (symmetric positive definite) with scipy's ``spotrf``
(``--precision single``, as EASE does) or ``dpotrf`` (``double``); it either completes,
dies by a signal, or is still running after ``--probe-seconds`` (20: the crash, when it
comes, comes within a second, at the first panel). Each probe holds ``itemsize * n**2``
bytes: 2.8 GB at 26,250 items in single precision. The default probes straddle
:func:`tripletrec.models.dense_limits.lapack_max_items`'s law on this machine's kernels
before its 3 % margin (26,294 items in single precision on AVX-512 kernels; 36,941 on
AVX2 ones).

Run: ``python benchmarks/perf/dense_limits.py [--sizes 2000,4000,8000,10000,17600]
[--lapack-sizes 26100,26250] [--precision single] [--threads 2] [--out PATH]`` (about
2 minutes plus 20 s per surviving probe; run it alone: the probes need
``itemsize * n**2`` bytes free). Writes ``results/dense_limits.md`` and ``.json``.
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
import json, resource, sys, time
import numpy as np, scipy.sparse as sp
from tripletrec import EASERecommender
from tripletrec.models.ease import ease_peak_bytes
n = int(sys.argv[1]); users = 3 * n; rng = np.random.default_rng(0)
rows = np.concatenate([rng.integers(0, users, 20 * n), rng.integers(0, users, n)])
cols = np.concatenate([rng.integers(0, n, 20 * n), np.arange(n)])
x = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(users, n))
x.data[:] = 1.0
before = int(open("/proc/self/statm").read().split()[1]) * 4096
start = time.perf_counter()
EASERecommender(l2=500.0, max_memory_bytes=1 << 50).fit(x)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
bound = ease_peak_bytes(n, x.nnz, users)
print(json.dumps({"added": peak - before, "bound": bound, "seconds": seconds}))
"""
#: Child process: scipy's ?potrf on an n x n SPD matrix, as EASE calls it.
POTRF_CHILD = """
import sys
import numpy as np, scipy.linalg
n, dtype = int(sys.argv[1]), np.dtype(sys.argv[2])
g = np.full((n, n), 0.01, dtype); g[np.diag_indices(n)] += 500.0
(potrf,) = scipy.linalg.lapack.get_lapack_funcs(("potrf",), (g,))
print("start", flush=True)
_, info = potrf(g.T, lower=False, clean=False, overwrite_a=True)
print("done", info, flush=True)
"""
#: ``--precision`` names and the NumPy types the probe factorises in.
PRECISIONS = {"single": "float32", "double": "float64"}


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
        "fit_seconds": got["seconds"],
    }


def probe_row(n: int, threads: int, seconds: float, precision: str) -> dict:
    """Whether scipy's ?potrf survives ``n`` items in ``precision`` with ``threads``
    OpenBLAS threads."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads))
    child = subprocess.Popen(
        [sys.executable, "-c", POTRF_CHILD, str(n), PRECISIONS[precision]],
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
        "precision": precision,
        "outcome": outcome,
        "seconds": time.perf_counter() - start,
    }


def markdown(rows: list[dict], environment: dict) -> str:
    lines = [
        "# Dense item-item limits",
        "",
        f"`{environment['command']}` on {environment['machine']}, {environment['date']}.",
        "",
        "| items | EASE peak above baseline | bytes per item pair | refusal's bound | fit s |",
        "|---|---|---|---|---|",
    ]
    for row in (r for r in rows if r["kind"] == "peak"):
        lines.append(
            f"| {row['items']:,} | {row['added_mib']:.0f} MiB | {row['bytes_per_pair']:.2f} "
            f"| {row['bound_mib']:.0f} MiB | {row['fit_seconds']:.1f} |"
        )
    lines += [
        "",
        "| items | precision | OpenBLAS threads | scipy `?potrf` | seconds |",
        "|---|---|---|---|---|",
    ]
    for row in (r for r in rows if r["kind"] == "lapack"):
        lines.append(
            f"| {row['items']:,} | {row['precision']} | {row['threads']} | {row['outcome']} "
            f"| {row['seconds']:.1f} |"
        )
    lines += ["", f"OpenBLAS kernels: {environment.get('openblas_kernels', 'unknown')}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,4000,8000,10000,17600")
    parser.add_argument("--lapack-sizes", default="26100,26250")
    parser.add_argument("--precision", choices=tuple(PRECISIONS), default="single")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--probe-seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "dense_limits")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    probes = [int(s) for s in args.lapack_sizes.split(",") if s]
    rows = [peak_row(n) for n in sizes]
    rows += [probe_row(n, args.threads, args.probe_seconds, args.precision) for n in probes]
    environment = run_environment(__file__, sys.argv[1:] if argv is None else argv, 1, start)
    environment["openblas_kernels"] = _openblas_kernels()
    write_results(args.out, rows, environment, markdown)


def _openblas_kernels() -> str:
    """The kernels scipy's OpenBLAS picked on this machine (what the LAPACK law reads)."""
    import scipy.linalg  # noqa: F401  (loads scipy's OpenBLAS)
    from threadpoolctl import threadpool_info

    found = [
        f"{info.get('architecture')} ({info.get('version')})"
        for info in threadpool_info()
        if "scipy.libs" in str(info.get("filepath", "")) and info.get("internal_api") == "openblas"
    ]
    return ", ".join(found) or "unknown"


if __name__ == "__main__":
    main()
