"""HTTP load test of ``tripletrec serve`` with wrk, on 127.0.0.1 only.

Trains (or loads) an anime-tv model, starts the service as a subprocess, checks that its
answers are the model's, and drives ``GET /recommend?user=ID&k=10`` with wrk for a fixed
duration at 16 and 64 concurrent connections, with 1 and 2 workers (5% of requests are for
unknown users: the popularity fallback). Reports requests/s, p50 / p90 / p99 latency and
errors, fails on any non-2xx answer or socket error, and writes
``benchmarks/results/load_test.{md,json}``.

``--baseline REV`` also serves the source tree of git revision REV (``git archive``, into
a temporary directory, nothing in the repository changes) and measures it in the same run,
level by level alternating with this tree, so both see the same machine.

``--quick`` is a correctness run of a few seconds (a one-epoch model, 1 s per level): it
checks the answers and that no request fails, and writes its results only where ``--out``
says (nothing under benchmarks/results/). Its timings mean nothing.

Usage::

    python benchmarks/perf/load_test.py [--model-dir DIR] [--duration 10] [--workers 1 2]
    python benchmarks/perf/load_test.py --baseline HEAD~1      # before and after, one run
    python benchmarks/perf/load_test.py --quick

Needs ``wrk`` (Debian: ``apt-get install -y wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _results import RESULTS, ROOT, script_path, write_report
from _server import HOST, Server, free_port

THIS_TREE = "this tree"

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


def _model_dir(given: str | None, workdir: Path, quick: bool) -> Path:
    if given:
        return Path(given)
    import tripletrec as tr

    data = tr.load_dataset("anime-tv")
    train, _ = tr.random_split(data, 0.2, 42)
    params = {"epochs": 1} if quick else {}
    model = tr.TripletRecommender(random_state=0, **params).fit(train.positives(7))
    return model.save(workdir / "anime-tv")


def _baseline_tree(revision: str, workdir: Path) -> dict[str, str]:
    """``src/`` of ``revision`` unpacked under ``workdir``; the environment that runs it."""
    archive = workdir / "baseline.tar"
    subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(archive), revision, "src"],
        check=True,
    )
    target = workdir / "baseline"
    with tarfile.open(archive) as tar:
        # The "data" filter (no links out, no odd modes) where this Python has it.
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(target, **safe)
    env = {"PYTHONPATH": str(target / "src")}
    where = subprocess.run(
        [sys.executable, "-c", "import tripletrec; print(tripletrec.__file__)"],
        capture_output=True, text=True, check=True, env={**os.environ, **env},
    ).stdout.strip()  # fmt: skip
    if not where.startswith(str(target)):
        raise SystemExit(f"the baseline tree is not the one imported ({where})")
    return env


def check_answers(port: int, model_dir: Path, n_users: int = 20) -> None:
    """The served top-10 of some users (and an unknown one) are the model's."""
    import numpy as np

    import tripletrec as tr

    model = tr.load_model(model_dir)
    users = model.user_map_.ids[:: max(1, model.n_users_ // n_users)][:n_users].tolist()
    expected, expected_scores = model.recommend(users, k=10)
    for user, items, scores in zip(users, expected.tolist(), expected_scores):
        with urllib.request.urlopen(f"http://{HOST}:{port}/recommend?user={user}&k=10") as r:
            rows = json.loads(r.read())["items"]
        got = [row["item_id"] for row in rows]
        # Equal items; or, where float rounding swapped two near-equal scores, equal scores.
        close = np.allclose([row["score"] for row in rows], scores, rtol=1e-5, atol=1e-6)
        if got != items and not close:
            raise SystemExit(f"user {user}: served {got}, the model recommends {items}")
    with urllib.request.urlopen(f"http://{HOST}:{port}/recommend?user=900000001&k=10") as r:
        if json.loads(r.read())["fallback"] != "popularity":
            raise SystemExit("an unknown user did not get the popularity fallback")


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
    return {
        "connections": connections,
        "duration_s": raw["duration_us"] / 1e6,
        "requests": raw["requests"],
        "requests_per_s": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1e3,
        "p90_ms": raw["p90_us"] / 1e3,
        "p99_ms": raw["p99_us"] / 1e3,
        "max_ms": raw["max_us"] / 1e3,
        "non_2xx": raw["status"],
        "socket_errors": raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
    }


def serve_and_load(
    model_dir: Path, workers: int, levels: list[int], duration: int, script: Path, *,
    code: str, env: dict[str, str] | None, workdir: Path,
) -> list[dict]:  # fmt: skip
    # A tree before this one may not bind port 0 with several workers: give it a port.
    port = 0 if env is None else free_port()
    log = workdir / f"server-{code.replace(' ', '-')}-{workers}.log"
    with Server(model_dir, workers, port=port, env=env, log=log) as server:
        check_answers(server.port, model_dir)
        # Warm-up: first requests pay for lazy imports and allocator growth.
        run_level(server.port, script, 4, 1 if duration <= 2 else 2)
        rows = [run_level(server.port, script, c, duration) for c in levels]
        memory = server.memory()  # after the load: every worker warm
        check_answers(server.port, model_dir)  # still right after the load
    extra = {
        "workers": workers,
        "code": code,
        "server_pss_bytes": memory["pss_bytes"],
        "server_rss_bytes": memory["rss_bytes"],
        "server_processes": memory["processes"],
    }
    return [row | extra for row in rows]


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:,.0f}"


def markdown(report: dict) -> str:
    before, after = report["load_average_before"], report["load_average_after"]
    lines = [
        f"# Load test: `tripletrec serve` on {report['dataset']}",
        "",
        f"`{report['endpoint']}`, {report['duration_s_per_level']} s per level with "
        f"{report['tool']}, {report['machine']}. Generated by `{script_path(__file__)}"
        f"{' ' + report['arguments'] if report['arguments'] else ''}`. Load average "
        f"(1/5/15 min) before: {'/'.join(f'{x:.1f}' for x in before)}, after: "
        f"{'/'.join(f'{x:.1f}' for x in after)} (the benchmark's own server and wrk included).",
        "",
        "Server memory: the PSS (each shared page divided among the processes mapping it) "
        "summed over the command and its workers, read after the load.",
        "",
        "| code | workers | connections | requests/s | p50 ms | p90 ms | p99 ms | max ms "
        "| requests | non-2xx | socket errors | server PSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['code']} | {r['workers']} | {r['connections']} | {r['requests_per_s']:,.0f} | "
            f"{r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.1f} | "
            f"{r['requests']:,} | {r['non_2xx']} | {r['socket_errors']} | "
            f"{_mib(r.get('server_pss_bytes'))} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", help="a saved model (default: train anime-tv)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per level (10)")
    parser.add_argument("--connections", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--baseline", metavar="REV", help="also measure git revision REV")
    parser.add_argument(
        "--quick", action="store_true", help="a correctness run of seconds; timings mean nothing"
    )
    parser.add_argument("--out", help="results directory (default benchmarks/results)")
    parser.add_argument("--name", default="load_test", help="results file name (load_test)")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    duration = 1 if args.quick else args.duration
    load_before = list(os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model_dir = _model_dir(args.model_dir, workdir, args.quick)
        manifest = json.loads((model_dir / "model.json").read_text())
        indexed = (model_dir / "ann-index" / "index.json").is_file()
        users = ",".join(str(u) for u in manifest["user_ids"])
        script = workdir / "recommend.lua"
        script.write_text(LUA % {"users": users, "seed": 1})
        trees = [(THIS_TREE, None)]
        if args.baseline:
            trees.insert(0, (args.baseline, _baseline_tree(args.baseline, workdir)))
        rows = []
        for workers in args.workers:
            for code, env in trees:
                rows += serve_and_load(
                    model_dir, workers, args.connections, duration, script,
                    code=code, env=env, workdir=workdir,
                )  # fmt: skip
    failed = [r for r in rows if r["non_2xx"] or r["socket_errors"]]
    report = {
        "endpoint": "GET /recommend?user=ID&k=10 (5% unknown users: popularity fallback)",
        "dataset": f"{manifest['estimator']} ({manifest['n_users']:,} users x "
        f"{manifest['n_items']:,} items{', indexed' if indexed else ''})",
        "tool": subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0],
        "machine": f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}; wrk (1 thread) on the same CPUs",
        "arguments": " ".join(argv if argv is not None else sys.argv[1:]),
        "quick": args.quick,
        "duration_s_per_level": duration,
        "load_average_before": load_before,
        "load_average_after": list(os.getloadavg()),
        "results": rows,
        "zero_errors": not failed,
    }
    if args.out or not args.quick:
        text = markdown(report)
        write_report((Path(args.out) if args.out else RESULTS) / args.name, report, text)
        print(text, end="")
    else:
        print(json.dumps(rows, indent=1))
    print("zero errors" if not failed else f"FAILED: {len(failed)} levels with errors")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
