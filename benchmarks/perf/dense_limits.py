"""Where a dense item-item fit stops: EASE's peak memory against catalogue size, and the
catalogue size at which the LAPACK scipy links crashes (issue 23: EASE died by SIGSEGV on
Gowalla's 40,981 items).

Protocol. Peak memory: per size, a fresh process builds a synthetic users x items matrix
(3 users per item, 20 random positives per item plus one per item, seed 0), fits
``EASERecommender(l2=500)`` and reports its peak RSS (``ru_maxrss``) above the RSS before
the fit, per item pair, beside :func:`tripletrec.models.ease.ease_peak_bytes` (the bound
the refusal uses), and the fit's wall time (BLAS threads as the environment sets them).

LAPACK: per probe (precision, OpenBLAS kernels, items), a fresh process with
``OPENBLAS_NUM_THREADS`` and ``OPENBLAS_CORETYPE`` set factorises ``500 I + 0.01 * 11'``
(symmetric positive definite) with scipy's ``spotrf`` (single precision, as EASE does) or
``dpotrf`` (double); it either completes, dies by a signal, or is still running after
``--probe-seconds`` (20: the crash, when it comes, comes within a second, at the first
panel). Each probe holds ``itemsize * n**2`` bytes: 5.5 GB at 37,000 items in single
precision. The default probes straddle
:func:`tripletrec.models.dense_limits.lapack_max_items`'s law before its 3 % margin, for
both precisions on SkylakeX (AVX-512) and Haswell (AVX2) kernels: the law gives 26,294 and
36,941 items in single precision, 15,558 and 22,702 in double. Forcing a core type works
on a CPU that runs it (an AVX-512 machine runs both); elsewhere pass ``--probes``.

Run: ``python benchmarks/perf/dense_limits.py [--sizes 2000,4000,8000,10000,17600]
[--probes single:SkylakeX:26100,...] [--threads 2] [--out PATH]`` (about 4 minutes; run it
alone: the probes need ``itemsize * n**2`` bytes free). Writes ``results/dense_limits.md``
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
#: Precision names and the NumPy types a probe factorises in.
PRECISIONS = {"single": "float32", "double": "float64"}
#: Default probes, ``precision:OpenBLAS core type:items``: each law's value straddled.
PROBES = (
    "single:SkylakeX:26100,single:SkylakeX:26250,single:Haswell:36800,single:Haswell:37000,"
    "double:SkylakeX:15400,double:SkylakeX:15700,double:Haswell:22692,double:Haswell:22700"
)


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


def probe_row(probe: str, threads: int, seconds: float) -> dict:
    """Whether scipy's ?potrf survives ``probe`` (``precision:core type:items``) with
    ``threads`` OpenBLAS threads."""
    precision, coretype, items = probe.split(":")
    n = int(items)
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OPENBLAS_CORETYPE=coretype)
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
        "kernels": coretype,
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
        "| items | precision | OpenBLAS kernels | threads | scipy `?potrf` | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for row in (r for r in rows if r["kind"] == "lapack"):
        lines.append(
            f"| {row['items']:,} | {row['precision']} | {row['kernels']} | {row['threads']} "
            f"| {row['outcome']} "
            f"| {row['seconds']:.1f} |"
        )
    lines += ["", f"OpenBLAS: {environment.get('openblas', 'unknown')}; kernels forced by probe."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,4000,8000,10000,17600")
    parser.add_argument("--probes", default=PROBES)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--probe-seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "dense_limits")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    probes = [probe for probe in args.probes.split(",") if probe]
    rows = [peak_row(n) for n in sizes]
    rows += [probe_row(probe, args.threads, args.probe_seconds) for probe in probes]
    environment = run_environment(__file__, sys.argv[1:] if argv is None else argv, 1, start)
    environment["openblas"] = _openblas()
    write_results(args.out, rows, environment, markdown)


def _openblas() -> str:
    """scipy's OpenBLAS: its version and the kernels it picks here unforced."""
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
