"""Incremental training: ``fit_partial`` on new positives against a fit on all of them.

Protocol: anime-tv (bundled) with the reference notebook's split (random 80/20 of the rating
rows, seed 42; positives rate above 7). Per seed, the training positives are split at
random (seeded by the seed) into a first 80 % and the other 20 %, the "new day". Models,
each the default preset with ``random_state`` = the seed:

* **fit on all**: fitted on every training positive (``compact()``: it knows the users and
  items that have one, as the incremental models do);
* **fit on the first 80 %**: the starting point of the two below;
* **fit_partial (union)**: the 80 % model, then ``fit_partial(other 20 %)`` with its
  default epochs: new users and items added, training continued from the weights and
  Adam's state on the union of old and new positives (the library's choice);
* **fit_partial (new only)**: the same, trained on the other 20 % alone
  (``train_on="new"``, what LightFM's ``fit_partial`` does), to show why the union.

Reported, mean +- std over seeds: test AUC and NDCG@10 (``tripletrec.evaluate``: every
item ranked but the user's training positives, all of them), the gap to the fit on all,
and fit seconds (for ``fit_partial``, that call alone; 2 threads). The target: the union
``fit_partial`` within 0.005 AUC of the fit on all, in a fraction of its time.

Run: ``python benchmarks/perf/incremental.py [--seeds 3] [--out PATH]``; writes
``results/incremental.md`` and ``.json`` (``--out`` elsewhere, for a smoke run). Measure
on a quiet machine: the seconds are the point as much as the AUC.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "2")

import argparse  # noqa: E402
import copy  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import tripletrec as tr  # noqa: E402
from tripletrec.models.triplet.incremental import (  # noqa: E402
    PARTIAL_EPOCH_SHARE,
    fit_partial_triplet_model,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _protocol import THREADS  # noqa: E402
from _results import RESULTS, mean_std, run_environment, write_results  # noqa: E402

METRICS = ("auc", "ndcg@10")
NEW_SHARE = 0.2
TARGET_AUC_GAP = 0.005
MODELS = ("fit on all", "fit on the first 80 %", "fit_partial (union)", "fit_partial (new only)")


def split_positives(train: tr.Interactions, seed: int) -> tuple[tr.Interactions, tr.Interactions]:
    """The first ``1 - NEW_SHARE`` of the training positives (own id maps: only the users
    and items they have) and the rest, at random."""
    order = np.random.default_rng(seed).permutation(len(train))
    cut = round((1 - NEW_SHARE) * len(train))
    return train.subset(np.sort(order[:cut])).compact(), train.subset(np.sort(order[cut:]))


def timed(fit) -> tuple[tr.TripletRecommender, float]:
    start = time.perf_counter()
    model = fit()
    return model, time.perf_counter() - start


def run_seed(train: tr.Interactions, test: tr.Interactions, seed: int) -> dict[str, dict]:
    """Each model's metrics and seconds for one seed."""
    first, rest = split_positives(train, seed)

    def model() -> tr.TripletRecommender:
        return tr.TripletRecommender(random_state=seed, n_threads=THREADS)

    full, full_seconds = timed(lambda: model().fit(train.compact()))
    start, start_seconds = timed(lambda: model().fit(first))
    fitted = {"fit on all": (full, full_seconds), "fit on the first 80 %": (start, start_seconds)}
    for name, train_on in (("fit_partial (union)", "all"), ("fit_partial (new only)", "new")):
        base = copy.deepcopy(start)  # the 80 % model, optimiser state included
        fitted[name] = timed(lambda base=base, on=train_on: fit_partial_triplet_model(
            base, rest, train_on=on))  # fmt: skip
    results = {}
    for name, (fitted_model, seconds) in fitted.items():
        scores = tr.evaluate(fitted_model, train, test, list(METRICS))
        results[name] = {**{m: scores[m] for m in METRICS}, "fit_seconds": seconds,
                         "n_users": scores["n_users"]}  # fmt: skip
    return results


def summarise(per_seed: list[dict[str, dict]]) -> list[dict]:
    rows = []
    full_auc = np.array([run["fit on all"]["auc"] for run in per_seed])
    for name in MODELS:
        row: dict = {"model": name}
        for key in (*METRICS, "fit_seconds"):
            values = np.array([run[name][key] for run in per_seed])
            row[key], row[f"{key}_std"] = float(values.mean()), float(values.std())
        gaps = np.array([run[name]["auc"] for run in per_seed]) - full_auc
        row["auc_gap"], row["auc_gap_std"] = float(gaps.mean()), float(gaps.std())
        row["per_seed"] = [run[name] for run in per_seed]
        rows.append(row)
    return rows


def markdown(rows: list[dict], environment: dict) -> str:
    full = next(row for row in rows if row["model"] == "fit on all")
    union = next(row for row in rows if row["model"] == "fit_partial (union)")
    met = abs(union["auc_gap"]) <= TARGET_AUC_GAP and union["fit_seconds"] < full["fit_seconds"]
    lines = [
        "# Incremental training: fit_partial against a fit on all positives",
        "",
        f"`{environment['command']}` on {environment['date']}, {environment['machine']}, "
        f"{environment['n_seeds']} seed(s), {THREADS} threads; torch "
        f"{environment['versions']['torch']}. anime-tv, the notebook's split (seed 42); "
        f"the training positives split {1 - NEW_SHARE:.0%} / {NEW_SHARE:.0%} at random per "
        "seed. fit_partial's seconds are that call alone; its default epochs are "
        f"{PARTIAL_EPOCH_SHARE:.0%} of the model's.",
        "",
        "| model | test AUC | test NDCG@10 | AUC - fit on all | fit s | users ranked |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        gap = "" if row is full else mean_std(row, "auc_gap", 4)
        users = row["per_seed"][0]["n_users"]
        lines.append(
            f"| {row['model']} | {mean_std(row, 'auc', 4)} | {mean_std(row, 'ndcg@10', 4)} | "
            f"{gap} | {mean_std(row, 'fit_seconds', 2)} | {users:,} |"
        )
    share = union["fit_seconds"] / full["fit_seconds"]
    lines += [
        "",
        "Users ranked: the test users each model knows (the 80 % model lacks the users whose "
        "positives are all in the other 20 %; first seed).",
        "",
        f"Target (fit_partial on the union within {TARGET_AUC_GAP} AUC of the fit on all, in "
        f"a fraction of its time): {'met' if met else 'NOT met'}; it took {share:.0%} of the "
        "fit on all's time.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="model seeds (3)")
    parser.add_argument("--out", type=Path, default=RESULTS / "incremental",
                        help="results path without suffix (results/incremental)")  # fmt: skip
    args = parser.parse_args(argv)
    started = time.perf_counter()
    data = tr.load_dataset("anime-tv")
    train, test = tr.random_split(data, 0.2, 42)
    train, test = train.positives(7), test.positives(7)
    # Untimed: the process's first fit pays one-time costs (thread pools, allocations).
    tr.TripletRecommender(epochs=1, n_threads=THREADS).fit(train)
    per_seed = []
    for seed in range(args.seeds):
        per_seed.append(run_seed(train, test, seed))
        print(f"seed {seed}: " + ", ".join(f"{k} AUC {v['auc']:.4f} in {v['fit_seconds']:.2f} s"
                                           for k, v in per_seed[-1].items()))  # fmt: skip
    rows = summarise(per_seed)
    environment = run_environment(__file__, sys.argv[1:], args.seeds, started)
    write_results(args.out, rows, environment, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
