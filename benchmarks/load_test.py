"""HTTP load test of ``tripletrec serve`` with wrk, on 127.0.0.1 only.

Trains (or loads) an anime-tv model, starts the service as a subprocess, and drives
``GET /recommend?user=ID&k=10`` with wrk for a fixed duration at 16 and 64 concurrent
connections (5% of requests are for unknown users: the popularity fallback). Reports p50 /
p99 latency and requests/s, fails on any non-2xx answer or socket error, and writes
``benchmarks/results/load_test.{md,json}``.

Usage::

    python benchmarks/load_test.py [--model-dir DIR] [--duration 10] [--workers 1 2]

Needs ``wrk`` (Debian: ``apt-get install -y wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tripletrec.persistence import write_json_atomic

HOST = "127.0.0.1"  # never anything else: this tool only loads the local machine
RESULTS = Path(__file__).resolve().parent / "results"

LUA = r"""
local users = {%(users)s}
local i = 0
math.randomseed(%(seed)d)
request = function()
  i = i + 1
  local user
  if math.random() < 0.05 then
    user = 900000000 + (i %% 1000)
  else
    user = users[math.random(#users)]
  end
  return wrk.format("GET", "/recommend?user=" .. user .. "&k=10")
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT {\"requests\": %%d, \"duration_us\": %%d, \"p50_us\": %%d, \"p90_us\": %%d, " ..
    "\"p99_us\": %%d, \"max_us\": %%d, \"connect\": %%d, \"read\": %%d, \"write\": %%d, " ..
    "\"status\": %%d, \"timeout\": %%d}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _model_dir(given: str | None, workdir: Path) -> Path:
    if given:
        return Path(given)
    import tripletrec as tr

    data = tr.load_dataset("anime-tv")
    train, _ = tr.random_split(data, 0.2, 42)
    model = tr.TripletRecommender(random_state=0).fit(train.positives(7))
    return model.save(workdir / "anime-tv")


def _wait_healthy(port: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode()}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server did not become healthy")


def run_level(port: int, script: Path, connections: int, duration: int) -> dict:
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "2s",
        "--latency", "-s", str(script), f"http://{HOST}:{port}/",
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    match = re.search(r"^RESULT (\{.*\})$", out, re.M)
    if match is None:
        raise RuntimeError(f"no result from wrk:\n{out}")
    raw = json.loads(match.group(1))
    non_2xx = raw["status"]
    socket_errors = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
    return {
        "connections": connections,
        "duration_s": raw["duration_us"] / 1e6,
        "requests": raw["requests"],
        "requests_per_s": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1e3,
        "p90_ms": raw["p90_us"] / 1e3,
        "p99_ms": raw["p99_us"] / 1e3,
        "max_ms": raw["max_us"] / 1e3,
        "non_2xx": non_2xx,
        "socket_errors": socket_errors,
    }


def serve_and_load(model_dir: Path, workers: int, levels: list[int], duration: int, script: Path):
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tripletrec", "serve", str(model_dir), "--host", HOST,
         "--port", str(port), "--workers", str(workers)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _wait_healthy(port, process)
        # Warm-up: first requests pay for lazy imports and allocator growth.
        run_level(port, script, 4, 2)
        return [run_level(port, script, c, duration) | {"workers": workers} for c in levels]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", help="a saved model (default: train anime-tv)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per level (10)")
    parser.add_argument("--connections", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    load_before = list(os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model_dir = _model_dir(args.model_dir, workdir)
        manifest = json.loads((model_dir / "model.json").read_text())
        users = ",".join(str(u) for u in manifest["user_ids"])
        script = workdir / "recommend.lua"
        script.write_text(LUA % {"users": users, "seed": 1})
        rows = []
        for workers in args.workers:
            rows += serve_and_load(model_dir, workers, args.connections, args.duration, script)
    failed = [r for r in rows if r["non_2xx"] or r["socket_errors"]]
    report = {
        "endpoint": "GET /recommend?user=ID&k=10 (5% unknown users: popularity fallback)",
        "dataset": "anime-tv (4,610 users x 293 items)",
        "tool": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0],
        "machine": f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}; wrk (1 thread) on the same CPUs",
        "duration_s_per_level": args.duration,
        "load_average_before": load_before,
        "load_average_after": list(os.getloadavg()),
        "results": rows,
        "zero_errors": not failed,
    }
    RESULTS.mkdir(exist_ok=True)
    write_json_atomic(RESULTS / "load_test.json", report)
    lines = [
        "# Load test: `tripletrec serve` on anime-tv",
        "",
        f"`{report['endpoint']}`, {args.duration} s per level with {report['tool']}, "
        f"{report['machine']}. Generated by `benchmarks/load_test.py`. Load average "
        f"(1/5/15 min) before: {'/'.join(f'{x:.1f}' for x in load_before)}, after: "
        f"{'/'.join(f'{x:.1f}' for x in report['load_average_after'])} (the "
        "benchmark's own server and wrk included).",
        "",
        "| workers | connections | requests/s | p50 ms | p90 ms | p99 ms | max ms | requests "
        "| non-2xx | socket errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['workers']} | {r['connections']} | {r['requests_per_s']:,.0f} | "
            f"{r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.1f} | "
            f"{r['requests']:,} | {r['non_2xx']} | {r['socket_errors']} |"
        )
    (RESULTS / "load_test.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
