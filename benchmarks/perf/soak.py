"""Soak test of ``tripletrec serve``: minutes of mixed load with reloads, on 127.0.0.1 only.

Serves one of two models (anime-tv, two seeds, saved under one model root) with 2
workers and an admin token, and for ``--minutes`` (default 10) sends a fixed rate of mixed
requests over keep-alive connections:

- ``GET /recommend`` for known users (the answer is checked against both models' top-10),
  some with another ``k`` and exclusions;
- ``GET /similar`` for known items;
- ``POST /recommend`` for new users (a history of known items, now and then an unknown id,
  which must come back in ``unknown_items``);
- 5% bad requests, each with the answer it must get: unknown users (200, popularity
  fallback), unknown items (404), bad ``k`` and malformed JSON (422), a reload without the
  token (401);

and every ``--reload-every`` seconds (30) an authenticated ``POST /reload`` that swaps in
the other model. It records every request's status and latency, the RSS of the server's
processes (and the anonymous part of it, which a leak grows), and failures: a connection
error, a timeout, a wrong status or a wrong answer all count. It writes ``soak.md`` and
``soak.json`` (default under benchmarks/results/) and exits 1 unless there was no 5xx, no
failed request, every reload succeeded, no traceback in the server's log, and the RSS grew
by at most ``--max-rss-ratio``.

The load is bounded: at most ``rate x duration`` requests (plus one per connection), and
it stops at the deadline by itself.

Usage::

    python benchmarks/perf/soak.py                         # 10 minutes
    python benchmarks/perf/soak.py --minutes 0.5 --out /tmp/soak-smoke
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import secrets
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _results import RESULTS, command, write_report
from _server import Connection, HttpError, Server

UNKNOWN_USER, UNKNOWN_ITEM = 900_000_001, 900_000_002
MIB = 1 << 20


# ---------------------------------------------------------------------- the models
def train_models(root: Path, epochs: int) -> list[Path]:
    """Two anime-tv models (seeds 0 and 1) under ``root``."""
    import tripletrec as tr

    data = tr.load_dataset("anime-tv")
    train, _ = tr.random_split(data, 0.2, 42)
    positives = train.positives(7)
    return [
        tr.TripletRecommender(epochs=epochs, random_state=seed).fit(positives).save(root / name)
        for seed, name in ((0, "model-a"), (1, "model-b"))
    ]


class Expected:
    """What the service must answer, from the same loading code as the service."""

    def __init__(self, model_dirs: list[Path]) -> None:
        from tripletrec.serving.loaded import LoadedModel

        loaded = [LoadedModel.load(path) for path in model_dirs]
        first = loaded[0]
        self.users = first.model.user_map_.ids.tolist()
        self.items = first.item_ids
        none = np.empty(0, np.int64)
        # Per model, per user: the top-10 item ids and their scores.
        self.top = [
            [lm.recommend_user(u, 10, none) for u in range(len(self.users))] for lm in loaded
        ]

    def top10_ok(self, user_idx: int, rows: list[dict]) -> bool:
        got = [row["item_id"] for row in rows]
        for top in self.top:
            want = top[user_idx]
            if got == [row["item_id"] for row in want]:
                return True
            # Float rounding may swap two near-equal scores between processes.
            if len(rows) == len(want) and np.allclose(
                [r["score"] for r in rows], [r["score"] for r in want], rtol=1e-5, atol=1e-6
            ):
                return True
        return False


# ---------------------------------------------------------------------- the requests
def make_request(rng: random.Random, expected: Expected) -> dict:
    """One request of the mix: method, path, body, the status it must get, a checker."""
    users, items = expected.users, expected.items
    draw = rng.random()
    if draw < 0.05:
        return bad_request(rng, items)
    if draw < 0.55:
        u = rng.randrange(len(users))

        def check(body: dict) -> bool:
            return body["fallback"] is None and expected.top10_ok(u, body["items"])

        return {
            "kind": "recommend",
            "method": "GET",
            "status": 200,
            "check": check,
            "path": f"/recommend?user={users[u]}&k=10",
        }
    if draw < 0.65:
        k, excluded = rng.randint(1, 50), rng.sample(items, 2)

        def check(body: dict) -> bool:
            got = [row["item_id"] for row in body["items"]]
            return 0 < len(got) <= k and not set(got) & set(excluded)

        path = f"/recommend?user={rng.choice(users)}&k={k}&exclude={excluded[0]},{excluded[1]}"
        return {
            "kind": "recommend-exclude",
            "method": "GET",
            "status": 200,
            "check": check,
            "path": path,
        }
    if draw < 0.80:
        item = rng.choice(items)

        def check(body: dict) -> bool:
            return len(body["items"]) == 10 and item not in {r["item_id"] for r in body["items"]}

        return {
            "kind": "similar",
            "method": "GET",
            "status": 200,
            "check": check,
            "path": f"/similar?item={item}&k=10",
        }
    history = rng.sample(items, rng.randint(5, 20))
    unknown = [UNKNOWN_ITEM] if rng.random() < 0.2 else []

    def check(body: dict) -> bool:
        got = {row["item_id"] for row in body["items"]}
        return len(got) == 10 and not got & set(history) and body["unknown_items"] == unknown

    body = json.dumps({"history": history + unknown, "k": 10}).encode()
    return {
        "kind": "new-user",
        "method": "POST",
        "path": "/recommend",
        "body": body,
        "status": 200,
        "check": check,
    }


def bad_request(rng: random.Random, items: list) -> dict:
    item = rng.choice(items)
    cases = [
        ("GET", f"/recommend?user={UNKNOWN_USER}&k=5", None, 200),  # popularity fallback
        ("GET", f"/similar?item={UNKNOWN_ITEM}", None, 404),
        ("GET", f"/recommend?user={item}&k=0", None, 422),
        ("GET", f"/recommend?user={item}&k=abc", None, 422),
        ("GET", f"/similar?item={item}&k=5000", None, 422),
        ("POST", "/recommend", b'{"history": [1, 2', 422),  # malformed JSON
        ("POST", "/recommend", json.dumps({"history": [UNKNOWN_ITEM]}).encode(), 422),
        ("POST", "/reload", None, 401),  # no token
    ]
    method, path, body, status = rng.choice(cases)

    def check(answer: dict) -> bool:
        if status == 200:
            return answer.get("fallback") == "popularity" and len(answer["items"]) == 5
        return bool(answer.get("detail"))

    return {
        "kind": "bad",
        "method": method,
        "path": path,
        "body": body,
        "status": status,
        "check": check,
    }


# ---------------------------------------------------------------------- the load
class Soak:
    def __init__(self, server: Server, expected: Expected, args: argparse.Namespace) -> None:
        self.server, self.expected, self.args = server, expected, args
        self.duration = args.minutes * 60.0
        self.records: list[tuple[float, float, str, int, bool]] = []  # t, ms, kind, status, ok
        self.failures: list[dict] = []
        self.reloads: list[dict] = []
        self.rss: list[tuple[float, int, dict]] = []
        self.anonymous: list[tuple[float, int]] = []
        self.budget = math.ceil(args.rate * self.duration) + args.connections

    async def run(self) -> None:
        self.start = time.monotonic()
        self.sample_rss()
        tasks = [asyncio.create_task(self.client(i)) for i in range(self.args.connections)]
        tasks += [asyncio.create_task(self.reloader()), asyncio.create_task(self.rss_sampler())]
        await asyncio.gather(*tasks)
        self.sample_rss()

    def now(self) -> float:
        return time.monotonic() - self.start

    async def client(self, index: int) -> None:
        rng = random.Random(self.args.seed * 1000 + index)
        connection = Connection(self.server.port, timeout=10.0)
        interval = self.args.connections / self.args.rate
        due = rng.random() * interval  # spread the connections over the first interval
        while self.budget > 0:
            if due > self.now():
                await asyncio.sleep(due - self.now())
            if self.now() >= self.duration:
                break
            self.budget -= 1
            await self.one(connection, make_request(rng, self.expected))
            due = max(due + interval, self.now() - interval)  # no burst to catch up
        await connection.close()

    async def one(self, connection, request: dict) -> None:
        t = self.now()
        begun = time.perf_counter()
        status, ok, why = 0, False, ""
        try:
            status, payload = await connection.request(
                request["method"], request["path"], request.get("body")
            )
            if status != request["status"]:
                why = f"status {status}, expected {request['status']}: {payload[:200]!r}"
            elif not request["check"](json.loads(payload)):
                why = f"wrong answer: {payload[:300]!r}"
            else:
                ok = True
        except HttpError as exc:
            why = f"no answer: {exc}"
        except (ValueError, KeyError, TypeError) as exc:
            why = f"unreadable answer: {type(exc).__name__}: {exc}"
        self.records.append((t, (time.perf_counter() - begun) * 1e3, request["kind"], status, ok))
        if not ok and len(self.failures) < 50:
            self.failures.append(
                {"t_s": round(t, 3), "kind": request["kind"], "path": request["path"], "why": why}
            )

    async def reloader(self) -> None:
        targets = [str(path.resolve()) for path in self.args.model_dirs]
        every, n = self.args.reload_every, 0
        headers = {"authorization": f"Bearer {self.args.token}"}
        while True:
            due = every / 2 + n * every  # the first after half an interval: short runs get one
            if due >= self.duration:
                return
            await asyncio.sleep(max(0.0, due - self.now()))
            n += 1
            target = targets[n % len(targets)]  # the server starts on targets[0]: swap
            connection = Connection(self.server.port, timeout=120.0)
            t, begun = self.now(), time.perf_counter()
            entry = {"t_s": round(t, 3), "path": target}
            try:
                status, payload = await connection.request(
                    "POST", "/reload", json.dumps({"path": target}).encode(), headers
                )
                answer = json.loads(payload)
                entry |= {
                    "status": status,
                    "ok": status == 200 and answer.get("model_dir") == target,
                }
            except (HttpError, ValueError) as exc:
                entry |= {"status": 0, "ok": False, "error": str(exc)}
            entry["seconds"] = round(time.perf_counter() - begun, 3)
            self.reloads.append(entry)
            await connection.close()

    async def rss_sampler(self) -> None:
        while self.now() < self.duration:
            await asyncio.sleep(min(5.0, max(0.0, self.duration - self.now())))
            self.sample_rss()

    def sample_rss(self) -> None:
        per_process = self.server.rss_bytes()
        self.rss.append((self.now(), sum(per_process.values()), per_process))
        self.anonymous.append((self.now(), sum(self.server.anonymous_bytes().values())))


# ---------------------------------------------------------------------- the report
def summarise(soak: Soak, args: argparse.Namespace, server_log: str) -> dict:
    times = np.array([r[0] for r in soak.records])
    latency = np.array([r[1] for r in soak.records])
    status = np.array([r[3] for r in soak.records])
    ok = np.array([r[4] for r in soak.records], dtype=bool)
    minutes = []
    for m in range(math.ceil(soak.duration / 60)):
        inside = (times >= 60 * m) & (times < 60 * (m + 1))
        rss_now = [total for t, total, _ in soak.rss if t <= 60 * (m + 1)]
        lat = latency[inside]
        minutes.append(
            {
                "minute": m + 1,
                "requests": int(inside.sum()),
                "failed": int((~ok & inside).sum()),
                "status_5xx": int(((status >= 500) & inside).sum()),
                "p50_ms": float(np.percentile(lat, 50)) if lat.size else None,
                "p99_ms": float(np.percentile(lat, 99)) if lat.size else None,
                "max_ms": float(lat.max()) if lat.size else None,
                "rss_mib": rss_now[-1] / MIB if rss_now else None,
            }
        )
    kind = np.array([r[2] for r in soak.records])
    by_kind = {
        name: {
            "requests": int((kind == name).sum()),
            "failed": int((~ok & (kind == name)).sum()),
            "p50_ms": _percentile(latency[kind == name], 50),
            "p99_ms": _percentile(latency[kind == name], 99),
        }
        for name in sorted(set(kind.tolist()))
    }
    rss_start, rss_end = soak.rss[0][1], soak.rss[-1][1]
    # After the first minute (or tenth of the run): first requests allocate for good
    # (thread pool, fold-in buffers), so growth from here on tells a leak from warm-up.
    warm_at, rss_warm = next(
        (t, total) for t, total, _ in soak.rss if t >= min(60.0, soak.duration / 10)
    )
    during_reload = [(r["t_s"], r["t_s"] + r["seconds"]) for r in soak.reloads if "seconds" in r]
    in_reload = np.zeros(len(times), dtype=bool)
    for a, b in during_reload:
        in_reload |= (times >= a) & (times <= b)
    totals = {
        "requests": len(soak.records),
        "failed": int((~ok).sum()),
        "status_5xx": int((status >= 500).sum()),
        "no_answer": int((status == 0).sum()),
        "requests_during_reloads": int(in_reload.sum()),
        "failed_during_reloads": int((~ok & in_reload).sum()),
        "p50_ms": _percentile(latency, 50),
        "p99_ms": _percentile(latency, 99),
        "p99_ms_during_reloads": _percentile(latency[in_reload], 99),
        "p99_ms_outside_reloads": _percentile(latency[~in_reload], 99),
        "reloads": len(soak.reloads),
        "reloads_ok": sum(r["ok"] for r in soak.reloads),
        "server_tracebacks": server_log.count("Traceback"),
    }
    rss = {
        "start_mib": rss_start / MIB,
        "end_mib": rss_end / MIB,
        "max_mib": max(total for _, total, _ in soak.rss) / MIB,
        "ratio_end_to_start": rss_end / rss_start if rss_start else None,
        "warm_at_s": round(warm_at, 1),
        "warm_mib": rss_warm / MIB,
        "ratio_end_to_warm": rss_end / rss_warm if rss_warm else None,
        "samples_mib": [[round(t, 1), round(total / MIB, 1)] for t, total, _ in soak.rss],
        "processes_start": {str(k): v / MIB for k, v in soak.rss[0][2].items()},
        "processes_end": {str(k): v / MIB for k, v in soak.rss[-1][2].items()},
        # Anonymous memory (heap, not the mapped model files, whose pages join the RSS as
        # requests first touch them): the part of RSS a leak grows.
        "anonymous_start_mib": soak.anonymous[0][1] / MIB,
        "anonymous_end_mib": soak.anonymous[-1][1] / MIB,
        "anonymous_max_mib": max(total for _, total in soak.anonymous) / MIB,
        "anonymous_samples_mib": [[round(t, 1), round(n / MIB, 1)] for t, n in soak.anonymous],
    }
    checks = {
        "zero_5xx": totals["status_5xx"] == 0,
        "no_failed_request": totals["failed"] == 0,
        "every_reload_ok": totals["reloads_ok"] == totals["reloads"],
        "no_server_traceback": totals["server_tracebacks"] == 0,
        "rss_growth_bounded": rss["ratio_end_to_start"] is not None
        and rss["ratio_end_to_start"] <= args.max_rss_ratio,
    }
    return {
        "command": command(__file__, args.argv),
        "machine": f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}; the load generator on the same CPUs",
        "settings": {
            "minutes": args.minutes,
            "rate_per_s": args.rate,
            "connections": args.connections,
            "workers": args.workers,
            "reload_every_s": args.reload_every,
            "reloading": "swapping the two models"
            if len(args.model_dirs) > 1
            else f"reloading `{args.model_dirs[0]}` onto itself",
            "max_rss_ratio": args.max_rss_ratio,
            "seed": args.seed,
        },
        "totals": totals,
        "by_kind": by_kind,
        "per_minute": minutes,
        "rss": rss,
        "reloads": soak.reloads,
        "failures": soak.failures,
        "checks": checks,
        "passed": all(checks.values()),
    }


def _percentile(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if values.size else None


def markdown(report: dict) -> str:
    s, t, rss = report["settings"], report["totals"], report["rss"]

    def ms(value: float | None) -> str:
        return "" if value is None else f"{value:.2f}"

    lines = [
        "# Soak test: `tripletrec serve` under mixed load with reloads",
        "",
        f"Generated by `{report['command'].strip()}` on {report['machine']}: "
        f"{s['minutes']:g} min at {s['rate_per_s']:g} requests/s offered over "
        f"{s['connections']} keep-alive connections, {s['workers']} workers, an authenticated "
        f"`POST /reload` {s.get('reloading', 'swapping the two models')} every "
        f"{s['reload_every_s']:g} s. Mix: 50% "
        "`GET /recommend` (answers checked against the served models), 10% with `k` and "
        "`exclude`, "
        "15% `GET /similar`, 20% new-user `POST /recommend`, 5% bad requests (each must get "
        "its own answer: 200 fallback, 401, 404 or 422).",
        "",
        f"**{'PASSED' if report['passed'] else 'FAILED'}**: "
        + ", ".join(
            f"{name.replace('_', ' ')}: {'yes' if ok else 'NO'}"
            for name, ok in report["checks"].items()
        ),
        "",
        f"- requests: {t['requests']:,}, failed: {t['failed']}, 5xx: {t['status_5xx']}, "
        f"without an answer: {t['no_answer']}; p50 {ms(t['p50_ms'])} ms, p99 {ms(t['p99_ms'])} ms",
        f"- reloads: {t['reloads_ok']} of {t['reloads']} succeeded; "
        f"{t['requests_during_reloads']:,} requests were in flight during one, "
        f"{t['failed_during_reloads']} of them failed; p99 {ms(t['p99_ms_during_reloads'])} ms "
        f"during reloads, {ms(t['p99_ms_outside_reloads'])} ms outside them",
        f"- RSS of the server processes: {rss['start_mib']:.1f} MiB at the start, "
        f"{rss['end_mib']:.1f} MiB at the end (ratio {rss['ratio_end_to_start']:.3f}; "
        f"max {rss['max_mib']:.1f} MiB; bound {s['max_rss_ratio']:g}); after "
        f"{rss['warm_at_s']:g} s {rss['warm_mib']:.1f} MiB, to the end ratio "
        f"{rss['ratio_end_to_warm']:.3f}",
        f"- of which anonymous memory (heap; not the mapped model files): "
        f"{rss['anonymous_start_mib']:.1f} MiB at the start, {rss['anonymous_end_mib']:.1f} "
        f"MiB at the end (max {rss['anonymous_max_mib']:.1f} MiB)",
        f"- tracebacks in the server log: {t['server_tracebacks']}",
        "",
        "| minute | requests | failed | 5xx | p50 ms | p99 ms | max ms | RSS MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in report["per_minute"]:
        rss_text = "" if m["rss_mib"] is None else f"{m['rss_mib']:.1f}"
        lines.append(
            f"| {m['minute']} | {m['requests']:,} | {m['failed']} | {m['status_5xx']} | "
            f"{ms(m['p50_ms'])} | {ms(m['p99_ms'])} | {ms(m['max_ms'])} | {rss_text} |"
        )
    lines += [
        "",
        "| request kind | requests | failed | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, v in report["by_kind"].items():
        lines.append(
            f"| {name} | {v['requests']:,} | {v['failed']} | {ms(v['p50_ms'])} "
            f"| {ms(v['p99_ms'])} |"
        )
    if report["failures"]:
        lines += ["", "First failures:", ""]
        for f in report["failures"][:10]:
            lines.append(f"- {f['t_s']} s {f['kind']} `{f['path']}`: {f['why']}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="load duration (10)")
    parser.add_argument("--rate", type=float, default=400.0, help="requests/s offered (400)")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections")
    parser.add_argument("--workers", type=int, default=2, help="server workers (2)")
    parser.add_argument("--reload-every", type=float, default=30.0, help="seconds (30)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the two models (5)")
    parser.add_argument("--max-rss-ratio", type=float, default=1.5, help="end/start RSS bound")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="results directory (default benchmarks/results)")
    parser.add_argument(
        "--model-dir", type=Path, help="serve this saved model and reload it (default: train two)"
    )
    parser.add_argument("--name", default="soak", help="results file name (soak)")
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    if args.minutes <= 0 or args.rate <= 0 or args.connections < 1 or args.reload_every <= 0:
        parser.error("--minutes, --rate, --connections and --reload-every must be positive")
    out = Path(args.out) if args.out else RESULTS
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.model_dir is None:
            root = work / "models"
            print(f"training two models ({args.epochs} epochs each) ...", flush=True)
            args.model_dirs = train_models(root, args.epochs)
        else:  # one model, reloaded onto itself
            root, args.model_dirs = args.model_dir.resolve().parent, [args.model_dir]
        expected = Expected(args.model_dirs)
        args.token = secrets.token_urlsafe(32)
        token_file = work / "token"
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(args.token + "\n")
        log = work / "server.log"
        serve_args = ["--token-file", str(token_file), "--model-root", str(root)]
        with Server(args.model_dirs[0], args.workers, args=serve_args, log=log) as server:
            print(f"serving on {server.base}; {args.minutes:g} min of load ...", flush=True)
            soak = Soak(server, expected, args)
            asyncio.run(soak.run())
        report = summarise(soak, args, log.read_text(errors="replace"))
    text = markdown(report)
    write_report(out / args.name, report, text)
    print(text)
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
