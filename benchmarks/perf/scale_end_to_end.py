"""The default end to end at growing sizes: synthetic Parquet -> ``tripletrec train`` -> test.

    python benchmarks/perf/scale_end_to_end.py [--rows 1000000 5000000 20000000]
                                               [--timeout 3600] [--out PATH]

For each size, ``tripletrec datasets synth`` writes ``rows`` interactions of ``rows / 20``
users x ``rows / 100`` items (the shape of the 20-million-row target: 1,000,000 users x
200,000 items), then ``tripletrec train FILE --out DIR --quiet`` fits
``tripletrec.Recommender()`` with no model flag on the default split and evaluates its test
part. Each command runs in its own process; a size whose commands pass ``--timeout`` is
recorded as such and the larger ones are skipped. Recorded per size: seconds to generate,
to read and split (``prepare_seconds``), to fit each part (``fit`` of the saved
``model.json``) and to evaluate, and the peak RSS of each process; then the growth exponent
of each stage between consecutive sizes (the slope of log seconds against log rows). Run it
alone: the figures are wall time on this machine's cores.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
import itertools

from _results import RESULTS, run_environment, write_results

STAGES = ("generate", "prepare", "fit item_item", "fit factor", "fit", "evaluate")


def _run(command: list[str], timeout: float, log: Path) -> tuple[float, float, bool]:
    """Wall seconds, peak RSS (GiB) and whether ``command`` finished within ``timeout``
    (its stderr in ``log``); its own peak, from ``wait4``."""
    start = time.perf_counter()
    with open(log, "wb") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - start > timeout:
            process.kill()
            os.wait4(process.pid, 0)
            process.returncode = -9
            return time.perf_counter() - start, math.nan, False
        time.sleep(0.2)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{log.read_text()[-2000:]}")
    return seconds, usage.ru_maxrss / 2**20, True  # Linux: KiB


def _size(rows: int, work: Path, timeout: float) -> dict:
    users, items = rows // 20, rows // 100
    data, out = work / f"synth-{rows}.parquet", work / f"model-{rows}"
    cli = [sys.executable, "-m", "tripletrec"]
    synth = [*cli, "datasets", "synth", "--users", str(users), "--items", str(items)]
    command = [*synth, "--interactions", str(rows), "--out", str(data)]
    seconds, peak, done = _run(command, timeout, work / f"synth-{rows}.log")
    row = {"rows": rows, "users": users, "items": items, "generate_s": seconds,
           "generate_peak_gib": peak, "finished": done}  # fmt: skip
    if not done:
        return row
    metrics = "auc,recall@20,ndcg@20"
    train = [*cli, "train", str(data), "--out", str(out), "--quiet", "--metrics", metrics]
    seconds, peak, done = _run(train, timeout, work / f"train-{rows}.log")
    row |= {"train_s": seconds, "train_peak_gib": peak, "finished": done}
    if not done:
        return row
    metrics = json.loads((out / "metrics.json").read_text())
    parts = json.loads((out / "model.json").read_text())["fit"]["parts"]
    row |= {
        "prepare_s": metrics["prepare_seconds"],
        "fit_s": metrics["fit_seconds"],
        "fit item_item_s": parts["item_item"]["fit"]["fit_seconds"],
        "fit factor_s": parts["factor"]["fit"]["fit_seconds"],
        "evaluate_s": metrics["evaluate_seconds"],
        "item_item": parts["item_item"]["estimator"],
        "item_item_components": parts["item_item"]["fit"].get("n_components"),
        "item_item_degree_exponent": parts["item_item"]["fit"].get("degree_exponent"),
        "factor_negatives": parts["factor"]["fit"].get("negatives"),
        "factor_epochs": parts["factor"]["params"].get("epochs"),
        "factor_gradients": parts["factor"]["params"].get("gradients"),
        "n_users_evaluated": metrics["n_users_evaluated"],
        "n_test_users": metrics.get("n_test_users"),
        **{name: metrics[name] for name in ("auc", "recall@20", "ndcg@20")},
    }
    return row


def _exponents(rows: list[dict]) -> list[dict]:
    """Slope of log seconds against log rows, for each stage, between consecutive sizes."""
    out = []
    done = [r for r in rows if r.get("evaluate_s") is not None]
    for small, large in itertools.pairwise(done):
        ratio = math.log(large["rows"] / small["rows"])
        out.append({
            "from_rows": small["rows"], "to_rows": large["rows"],
            **{stage: math.log(large[f"{stage}_s"] / small[f"{stage}_s"]) / ratio
               for stage in STAGES},
        })  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000, 20_000_000])
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per command")
    parser.add_argument("--out", type=Path, default=RESULTS / "scale_end_to_end")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sorted(args.rows):
            print(f"{n:,} rows ...", flush=True)
            rows.append(_size(n, Path(tmp), args.timeout))
            if not rows[-1]["finished"]:
                break
    environment = run_environment(__file__, sys.argv[1:], 1, start)
    environment["exponents"] = _exponents(rows)
    write_results(args.out, rows, environment, _markdown)


def _markdown(rows: list[dict], env: dict) -> str:
    def s(row: dict, key: str) -> str:
        value = row.get(key)
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        return "-" if missing else f"{value:,.1f}"

    lines = [
        "# The default end to end at growing sizes",
        "",
        f"`{env['command']}` on {env['machine']}, {env['date']}; {env['wall_seconds']:.0f} s. "
        "Synthetic rows of rows/20 users x rows/100 items; `tripletrec train FILE` with no "
        "model flag (`tripletrec.Recommender()`), the default split, test evaluated (a "
        "seeded sample of the test users past 2e9 users x items: `--evaluation-users`); "
        "each command in its own process.",
        "",
        "| rows | users | items | generate s | read + split s | fit item-item s | fit factor s "
        "| factor epochs | fit s | evaluate s | users evaluated | train peak GiB | Recall@20 "
        "| NDCG@20 | finished |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        evaluated = "-"
        if r.get("n_users_evaluated") is not None:
            evaluated = f"{r['n_users_evaluated']:,}"
            if r.get("n_test_users") not in (None, r["n_users_evaluated"]):
                evaluated += f" of {r['n_test_users']:,}"
        lines.append(
            f"| {r['rows']:,} | {r['users']:,} | {r['items']:,} | {s(r, 'generate_s')} | "
            f"{s(r, 'prepare_s')} | {s(r, 'fit item_item_s')} | {s(r, 'fit factor_s')} | "
            f"{r.get('factor_epochs', '-')} | {s(r, 'fit_s')} | {s(r, 'evaluate_s')} | "
            f"{evaluated} | {s(r, 'train_peak_gib')} | "
            f"{r.get('recall@20', float('nan')):.4f} | {r.get('ndcg@20', float('nan')):.4f} | "
            f"{'yes' if r['finished'] else 'no (timeout)'} |"
        )
    if env["exponents"]:
        lines += ["", "Growth exponents (slope of log seconds against log rows):", "",
                  "| from | to | " + " | ".join(STAGES) + " |",
                  "|---|---|" + "---|" * len(STAGES)]  # fmt: skip
        for e in env["exponents"]:
            lines.append(
                f"| {e['from_rows']:,} | {e['to_rows']:,} | "
                + " | ".join(f"{e[stage]:.2f}" for stage in STAGES)
                + " |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
