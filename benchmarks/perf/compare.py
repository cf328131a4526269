"""Compare tripletrec's models and baselines with LightFM and implicit, on one protocol.

Protocol (the reference notebook's, as in ``/work/shared/reference-results.md``): random
80/20 split of the rating rows with seed 42 (``tripletrec.random_split`` = scikit-learn's
``train_test_split``); positives rating > 7 on anime-tv and anime-5k (both bundled; anime-5k
is every rating of the sample, all anime types: the large-catalogue case) and rating >= 4 on
MovieLens-100k (read from ``../shared/data/movielens-100k``, never copied into the
repository; skipped with a note when absent); per user with a test positive, rank every
item except the user's train positives; AUC, P@10, R@10, NDCG@10 and MAP@10 from
``tripletrec.evaluate`` for every model, peers included (their factors are wrapped in a
``RecommenderBase``); mean +- std over model seeds; fit seconds = the fit call alone, with
2 threads everywhere (BLAS, torch, LightFM, implicit).

Tuning: tripletrec's presets are used as they are (read from ``tripletrec.PRESETS`` at run
time; the ``notebook-*`` presets are left to ``reproduce_notebook.py`` and ``cold-start``,
which equals ``default`` without side features, to ``cold_start.py``, unless named with
``--presets``). Peers (and item-kNN) get a small grid, chosen by validation AUC on a
validation split carved from the *training positives only*
(``tripletrec.validation_split``, 20 %, seed 0): the test rows are never looked at before
the final fits. LightFM and implicit, whose grids have a cost axis (epochs, iterations),
get their fastest setting whose validation AUC is within :data:`WITHIN` of their best: a
slow peer setting would flatter tripletrec's fit-time ratios. The chosen settings are then
refitted on the whole training part. ``tripletrec.Recommender()``, the product's default,
is always a row. EASE
(``l2`` on a log grid from 1 to 5,000) and RP3beta (``alpha`` 0.5 to 1.5, ``beta`` 0 to 1)
are tuned on the same split twice, once for AUC and once for NDCG@10 (one grid of fits,
two rows, the chosen settings in the row's name).

Peers come from the optional extra: ``pip install .[bench]``. LightFM 1.17 is source-only
and its ``setup.py`` breaks under PEP 517 builds with current pip; what works::

    .venv/bin/python -m pip install pip==23.2.1 wheel
    .venv/bin/pip install --no-use-pep517 lightfm==1.17     # needs gcc (and setuptools)

When LightFM (or implicit) cannot be imported, the script says so and goes on without it.

Run: ``python benchmarks/perf/compare.py [--quick] [--seeds 3]
[--datasets anime-tv,movielens-100k,anime-5k] [--presets bilinear,deep]``. Writes
``results/compare.md``, ``results/compare.json`` and ``results/compare.png`` (``--quick``
writes to the temporary folder instead).
"""

from __future__ import annotations

import os

# Two threads everywhere, set before NumPy / torch / the peers start their pools.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "2")

import argparse  # noqa: E402
import datetime  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from itertools import product  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import tripletrec as tr  # noqa: E402
from tripletrec.models.base import RecommenderBase  # noqa: E402
from tripletrec.plots import plot_tradeoff  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _blend import EASE_L2_GRID  # noqa: E402
from _peers import fit_implicit, fit_lightfm  # noqa: E402
from _protocol import THREADS, VALIDATION_FRACTION, test_parts  # noqa: E402
from _results import RESULTS, command, mean_std, package_versions, write_results  # noqa: E402

METRICS = ("auc", "precision@10", "recall@10", "ndcg@10", "map@10")
SHORT = {"auc": "AUC", "precision@10": "P@10", "recall@10": "R@10", "ndcg@10": "NDCG@10"}
SHORT["map@10"] = "MAP@10"
#: Presets that differ from another only with side features (cold_start.py).
SIDE_FEATURE_PRESETS = ("cold-start",)
#: The row of ``tripletrec.Recommender()``, the product's default.
RECOMMENDER_NAME = "tripletrec Recommender()"
#: A peer's setting is chosen if its validation score is within this much of its best.
WITHIN = 0.002
#: Data sets on which only the default preset runs: the other presets are not candidates
#: for the large-catalogue target and would double the run.
LARGE_CATALOGUES = ("anime-5k",)
#: Independent measurements (reference-results.md): (AUC, NDCG@10, fit s or None).
REFERENCE = {
    ("anime-tv", "LightFM WARP"): (0.852, 0.302, 0.35),
    ("anime-tv", "implicit ALS"): (0.835, 0.303, 0.05),
    ("anime-tv", "popularity"): (0.720, 0.172, None),
    ("movielens-100k", "LightFM WARP"): (0.935, 0.272, None),
    ("movielens-100k", "implicit ALS"): (0.929, 0.298, None),
    ("movielens-100k", "popularity"): (0.877, 0.159, None),
    ("anime-tv", "EASE (for NDCG@10)"): (0.848, 0.374, None),
    ("anime-tv", "EASE (for AUC)"): (0.857, 0.348, 0.03),
    ("anime-tv", "RP3beta (for AUC)"): (0.857, 0.341, 0.02),
    ("movielens-100k", "EASE (for NDCG@10)"): (0.925, 0.3115, 0.6),
    ("movielens-100k", "EASE (for AUC)"): (0.930, 0.299, 0.7),
    ("movielens-100k", "RP3beta (for AUC)"): (0.935, 0.268, 0.09),
    ("movielens-100k", "RP3beta (for NDCG@10)"): (0.925, 0.285, 0.04),
}


# ---------------------------------------------------------------------------- models
@dataclass
class Candidate:
    """One model to benchmark: how to fit it with given settings, and the grid to tune."""

    name: str
    family: str  # "tripletrec", "baseline", "item-item" or the peer library
    fit: Callable[[tr.Interactions, dict, int], RecommenderBase]
    grid: list[dict] = field(default_factory=lambda: [{}])
    #: The validation metric the grid point is chosen on.
    select: str = "auc"
    #: Candidates with the same key share one set of validation fits (same fit and grid).
    tuning_key: str | None = None
    #: Whether the row's name shows the chosen settings ("EASE (for AUC, l2 1500)").
    label_settings: bool = False
    #: A peer with a cost axis (epochs, iterations): its chosen setting is the fastest
    #: whose validation score is within this much of its best, not the best itself (a
    #: slow peer setting would flatter tripletrec's fit-time ratios). None: the best.
    within: float | None = None

    def label(self, settings: dict) -> str:
        if not self.label_settings or not settings:
            return self.name
        return f"{self.name[:-1]}, {_settings(settings)})"


def _fit_tripletrec(preset: str) -> Callable[[tr.Interactions, dict, int], RecommenderBase]:
    def fit(train: tr.Interactions, settings: dict, seed: int) -> RecommenderBase:
        model = tr.TripletRecommender.from_preset(preset, random_state=seed, **settings)
        start = time.perf_counter()
        model.fit(train)
        model.fit_seconds_ = time.perf_counter() - start
        return model

    return fit


def _fit_recommender(train: tr.Interactions, settings: dict, seed: int) -> RecommenderBase:
    """``tripletrec.Recommender`` at its defaults, timed whole: its factor model's fit, the
    inner split that picks its item-item part's settings, and that part's fit."""
    model = _fit_baseline(tr.Recommender)(train, settings, seed)
    print(f"    {RECOMMENDER_NAME}: {model.item_item_kind_}, l2 {model.l2_}", flush=True)
    return model


def _fit_baseline(cls: type) -> Callable[[tr.Interactions, dict, int], RecommenderBase]:
    def fit(train: tr.Interactions, settings: dict, seed: int) -> RecommenderBase:
        params = dict(settings)
        if "random_state" in cls._param_names():
            params["random_state"] = seed
        model = cls(**params)
        start = time.perf_counter()
        model.fit(train)
        model.fit_seconds_ = time.perf_counter() - start
        return model

    return fit


def _grid(**axes: list) -> list[dict]:
    return [dict(zip(axes, values)) for values in product(*axes.values())]


def candidates(quick: bool, presets: list[str]) -> list[Candidate]:
    """Every model to benchmark, skipping peers that cannot be imported (with a note)."""
    out = [Candidate(RECOMMENDER_NAME, "tripletrec", _fit_recommender)]
    out += [
        Candidate(f"tripletrec {name}", "tripletrec", _fit_tripletrec(name)) for name in presets
    ]
    out += [
        Candidate("random", "baseline", _fit_baseline(tr.RandomRecommender)),
        Candidate("popularity", "baseline", _fit_baseline(tr.PopularityRecommender)),
        Candidate(
            "item-kNN",
            "baseline",
            _fit_baseline(tr.ItemKNNRecommender),
            _grid(k_neighbours=[50, 200], shrinkage=[0.0])
            if quick
            else _grid(k_neighbours=[20, 50, 100, 200, 0], shrinkage=[0.0, 10.0]),
        ),
    ]
    ease_grid = _grid(l2=[100.0, 1000.0] if quick else EASE_L2_GRID)
    rp3beta_grid = (
        _grid(alpha=[1.0], beta=[0.0, 0.5])
        if quick
        else _grid(alpha=[0.5, 0.75, 1.0, 1.25, 1.5], beta=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    )
    for metric in ("ndcg@10", "auc"):
        out += [
            Candidate(
                f"{label} (for {SHORT[metric]})",
                "item-item",
                _fit_baseline(cls),
                grid,
                select=metric,
                tuning_key=label,
                label_settings=True,
            )
            for label, cls, grid in (
                ("EASE", tr.EASERecommender, ease_grid),
                ("RP3beta", tr.RP3BetaRecommender, rp3beta_grid),
            )
        ]
    try:
        fit_lightfm("warp")
    except ImportError as exc:
        print(
            f"LightFM is not available ({exc}); going on without it. To install: "
            "pip install pip==23.2.1 wheel && pip install --no-use-pep517 lightfm==1.17",
            file=sys.stderr,
        )
    else:
        lightfm_grid = (
            _grid(learning_rate=[0.05], epochs=[5, 10])
            if quick
            else _grid(learning_rate=[0.02, 0.05, 0.1], epochs=[5, 10, 20, 40])
        )
        out += [
            Candidate("LightFM WARP", "lightfm", fit_lightfm("warp"), lightfm_grid, within=WITHIN),
            Candidate("LightFM BPR", "lightfm", fit_lightfm("bpr"), lightfm_grid, within=WITHIN),
        ]
    try:
        fit_implicit("als")
    except ImportError as exc:
        print(f"implicit is not available ({exc}); going on without it", file=sys.stderr)
    else:
        als_grid = (
            _grid(alpha=[10.0], regularization=[10.0, 100.0], iterations=[15])
            if quick
            else _grid(
                alpha=[1.0, 10.0, 40.0], regularization=[1.0, 10.0, 100.0], iterations=[5, 15, 50]
            )
        )
        bpr_grid = (
            _grid(learning_rate=[0.01], iterations=[100])
            if quick
            else _grid(learning_rate=[0.005, 0.01, 0.05], iterations=[50, 100, 200])
        )
        out += [
            Candidate("implicit ALS", "implicit", fit_implicit("als"), als_grid, within=WITHIN),
            Candidate("implicit BPR", "implicit", fit_implicit("bpr"), bpr_grid, within=WITHIN),
        ]
    return out


# ---------------------------------------------------------------------------- protocol
def tune(
    candidate: Candidate, train: tr.Interactions, cache: dict | None = None
) -> tuple[dict, list[dict]]:
    """The grid point with the best validation ``candidate.select`` (AUC or NDCG@10), on a
    split of the training positives, or with ``candidate.within`` the fastest validation
    fit within that much of the best. ``cache`` (one per dataset) keeps the trials of each
    ``tuning_key``, so candidates that differ only in the metric fit the grid once."""
    if len(candidate.grid) == 1:
        return candidate.grid[0], []
    key = candidate.tuning_key
    trials = None if cache is None or key is None else cache.get(key)
    if trials is None:
        fit_part, validation = tr.validation_split(train, VALIDATION_FRACTION, random_state=0)
        trials = []
        for settings in candidate.grid:
            model = candidate.fit(fit_part, settings, 0)
            scores = tr.evaluate(model, fit_part, validation, ("auc", "ndcg@10"))
            trials.append({
                "settings": settings, "val_auc": scores["auc"], "val_ndcg@10": scores["ndcg@10"],
                "val_fit_seconds": model.fit_seconds_,
            })  # fmt: skip
        if cache is not None and key is not None:
            cache[key] = trials
    score = f"val_{candidate.select}"
    # max keeps the first of equal values: the earlier grid point wins a tie.
    best = max(trials, key=lambda trial: trial[score])
    if candidate.within is not None:
        good = [trial for trial in trials if trial[score] >= best[score] - candidate.within]
        best = min(good, key=lambda trial: trial["val_fit_seconds"])
    return best["settings"], trials


def summarise(runs: list[dict]) -> dict:
    out: dict[str, Any] = {}
    for key in (*METRICS, "fit_seconds"):
        values = np.array([run[key] for run in runs])
        out[key] = float(values.mean())
        out[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, tiny grids (smoke test)")
    parser.add_argument("--seeds", type=int, help="model seeds (default 3, 1 with --quick)")
    parser.add_argument("--datasets", default="anime-tv,movielens-100k,anime-5k")
    parser.add_argument(
        "--presets",
        help="tripletrec presets (default: every preset but notebook-* and cold-start)",
    )
    parser.add_argument("--out", help="output stem (default results/compare[-quick])")
    args = parser.parse_args(argv)
    n_seeds = args.seeds or (1 if args.quick else 3)
    presets = (
        args.presets.split(",")
        if args.presets
        else [
            name
            for name in tr.PRESETS
            if not name.startswith("notebook-") and name not in SIDE_FEATURE_PRESETS
        ]
    )
    unknown = [name for name in presets if name not in tr.PRESETS]
    if unknown:
        raise SystemExit(f"unknown preset(s) {unknown}; choose from {list(tr.PRESETS)}")
    if args.out:
        out = Path(args.out)
    elif args.quick:
        # A smoke test must not overwrite the published results.
        out = Path(tempfile.gettempdir()) / "tripletrec-compare-quick"
    else:
        out = RESULTS / "compare"
    torch.set_num_threads(THREADS)
    started = time.perf_counter()

    rows: list[dict] = []
    warmed: set[str] = set()
    with threadpool_limits(limits=THREADS), warnings.catch_warnings():
        # implicit warns when its input is not CSR of float32, and about BLAS threads.
        warnings.simplefilter("ignore", category=RuntimeWarning)
        models = candidates(args.quick, presets)
        other_presets = {f"tripletrec {name}" for name in presets if name != "default"}
        for dataset, train, test in test_parts(args.datasets):
            tuning_cache: dict[str, list[dict]] = {}
            for candidate in models:
                if dataset in LARGE_CATALOGUES and candidate.name in other_presets:
                    continue
                settings, trials = tune(candidate, train, tuning_cache)
                if not trials and candidate.name not in warmed:
                    # Untimed warm-up (allocators, thread pools, lazy imports), as tuning
                    # is for the tuned models, so first-call costs do not count as fitting.
                    # Once per process: later data sets find everything started.
                    candidate.fit(train, settings, 0)
                    warmed.add(candidate.name)
                runs = []
                for seed in range(n_seeds):
                    model = candidate.fit(train, settings, seed)
                    scores = tr.evaluate(model, train, test, METRICS)
                    runs.append(
                        {"seed": seed, "fit_seconds": model.fit_seconds_}
                        | {m: scores[m] for m in METRICS}
                    )
                row = {
                    "dataset": dataset,
                    "model": candidate.label(settings),
                    "candidate": candidate.name,
                    "family": candidate.family,
                    "settings": settings,
                    "selected_on": f"validation {candidate.select}" if trials else None,
                    **summarise(runs),
                    "n_users_evaluated": scores["n_users"],
                    "runs": runs,
                    "tuning": trials,
                }
                rows.append(row)
                print(
                    f"  {row['model']:<24} AUC {row['auc']:.4f} NDCG@10 {row['ndcg@10']:.4f} "
                    f"fit {row['fit_seconds']:.2f} s  {settings or ''}",
                    flush=True,
                )

    environment = {
        "command": command(__file__, argv if argv is not None else sys.argv[1:]),
        "date": datetime.date.today().isoformat(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": THREADS,
        "seeds": n_seeds,
        "versions": package_versions(),
        "presets": {name: tr.PRESETS[name] for name in presets},
        "validation_fraction": VALIDATION_FRACTION,
        "wall_seconds": time.perf_counter() - started,
    }
    write_results(out, rows, environment, markdown)
    if plot_tradeoff(rows, out.with_suffix(".png")) is None:
        print("matplotlib is not installed: no plot written", file=sys.stderr)
    print(f"wall time {environment['wall_seconds']:.0f} s")


def _settings(settings: dict) -> str:
    return ", ".join(
        f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in settings.items()
    )


def _fit_time_ratios(rows: list[dict]) -> list[str]:
    """A line per tripletrec model measured (``Recommender()``, the default preset) giving
    its fit time as a multiple of EASE's and LightFM WARP's in the same run (none when
    either side is missing)."""
    peers = [
        row
        for row in rows
        if row.get("candidate", row["model"]).startswith("EASE") or row["model"] == "LightFM WARP"
    ]
    lines = []
    for ours in (row for row in rows if row["model"] in (RECOMMENDER_NAME, "tripletrec default")):
        ratios = ", ".join(
            f"{row['model']} {ours['fit_seconds'] / row['fit_seconds']:.3g}x"
            for row in peers
            if row["fit_seconds"] > 0
        )
        if ratios:
            lines.append(f"Fit time of `{ours['model']}` as a multiple of: {ratios}.")
    return lines


def markdown(rows: list[dict], environment: dict) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in environment["versions"].items())
    lines = [
        "# tripletrec vs baselines vs LightFM and implicit",
        "",
        f"`{environment['command'].strip()}` — {environment['date']}, {environment['seeds']} "
        f"model seed(s), mean +- std; {environment['threads']} threads everywhere; {versions}. "
        f"Wall time {environment['wall_seconds']:.0f} s.",
        "",
        "Protocol: random 80/20 row split (seed 42); positives rating > 7 (anime-tv, anime-5k) / "
        ">= 4 (MovieLens-100k); per user with a test positive, rank every item except the user's "
        "train positives; the same `tripletrec.evaluate` for every model. Fit s = the fit call "
        "only. Peer and item-kNN settings were chosen by validation AUC on a 20 % split of the "
        "training positives (never on test); for LightFM and implicit, the fastest setting "
        f"whose validation AUC is within {WITHIN} of their best; EASE and RP3beta once by "
        "validation NDCG@10 and once by validation AUC on the same split (the row names the "
        "metric and the chosen settings); tripletrec presets are used as they are.",
        "",
    ]
    for dataset in dict.fromkeys(row["dataset"] for row in rows):
        subset = sorted(
            (row for row in rows if row["dataset"] == dataset), key=lambda row: -row["auc"]
        )
        lines += [
            f"## {dataset} ({subset[0]['n_users_evaluated']:,} users evaluated)",
            "",
            "| model | settings | AUC | P@10 | R@10 | NDCG@10 | MAP@10 | fit s "
            "| reference AUC / NDCG@10 |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in subset:
            reference = REFERENCE.get((dataset, row.get("candidate", row["model"])))
            ref = "" if reference is None else f"{reference[0]:.3f} / {reference[1]:.3f}"
            settings = _settings(row["settings"]) if row["family"] != "tripletrec" else "preset"
            lines.append(
                f"| {row['model']} | {settings} | {mean_std(row, 'auc', 4)} | "
                + " | ".join(mean_std(row, m) for m in METRICS[1:])
                + f" | {mean_std(row, 'fit_seconds', 2)} | {ref} |"
            )
        lines += ["", *_fit_time_ratios(subset), ""]
    lines += ["Presets at run time:", ""]
    lines += [f"- `{name}`: `{params}`" for name, params in environment["presets"].items()]
    lines += [
        "",
        "Reference = independent measurements (`/work/shared/reference-results.md`). "
        "Plot: `compare.png` (AUC and NDCG@10 against fit seconds, log scale).",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
