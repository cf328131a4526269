"""Side features and cold start: new items, new users, and warm users with features on.

Three protocols, each on anime-tv (bundled) and MovieLens-100k (read from
``../shared/data/movielens-100k``, skipped with a note when absent), with the built-in
feature sets (``tripletrec.data.datasets.dataset_features``), mean +- std over seeds:

* **Cold items** (``docs/protocols.md``): ``tripletrec.data.splits.cold_item_split`` holds out
  20 % of the items with every interaction of theirs (the seed draws the items); models are
  fitted on the rest, the held-out items are added from their features only
  (``TripletRecommender.add_items``), and each user with a held-out positive ranks the
  held-out items (``evaluate(..., items=cold_items)``). Models: tripletrec with features
  (the default preset, and the FM), LightFM WARP with the same item features (identity
  + features, cold rows without identity, as tripletrec), the members-popularity baseline
  (anime: MyAnimeList community size) and a feature-popularity baseline (a cold item
  scores the mean training popularity of the warm items sharing each of its features).
  LightFM's learning rate and epochs are chosen on a cold-item validation split of the
  training items (never the test items); tripletrec uses its presets as they are.
* **New users**: 10 % of the users are held out; each one's positives are halved at
  random; the model is fitted on the other users, folds each held-out user in from one
  half (``score_from_history``) and ranks every item but that half against the other half.
  The same users' AUC when the model is trained on them (the first halves added to the
  training data) is the target; fold-in latency per user is measured for one user alone
  and for the batch of all held-out users (one user at a time also with Newton's method
  switched off, the Adam fold-in it replaced).
* **Warm users**: the random 80/20 protocol of ``compare.py``; the default preset with and
  without side features.

Run: ``python benchmarks/perf/cold_start.py [--seeds 3] [--datasets anime-tv,movielens-100k]``.
Writes ``results/cold_start.md`` and ``results/cold_start.json``.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "2")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import torch  # noqa: E402

import tripletrec as tr  # noqa: E402
from tripletrec.data.datasets import DATASETS  # noqa: E402
from tripletrec.data.features import FeatureEncoder, Features, with_identity  # noqa: E402
from tripletrec.data.interactions import IdMap  # noqa: E402
from tripletrec.data.splits import cold_item_split, fraction_per_user_split  # noqa: E402
from tripletrec.evaluation.metrics import ranking_metrics  # noqa: E402
from tripletrec.models import foldin_softmax  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared modules
from _peers import N_FACTORS, FactorModel  # noqa: E402
from _protocol import THREADS, load_with_features  # noqa: E402
from _results import RESULTS, mean_std, run_environment, write_results  # noqa: E402

METRICS = ("auc", "ndcg@10")
COLD_FRACTION = 0.2
NEW_USER_FRACTION = 0.1
LIGHTFM_GRID = [
    {"learning_rate": lr, "epochs": epochs} for lr in (0.02, 0.05) for epochs in (10, 40)
]


# ---------------------------------------------------------------------------- cold items
def _tripletrec(model: str) -> Callable:
    def fit(train, users, items, cold_items, seed):
        estimator = tr.TripletRecommender.from_preset("cold-start", model=model, random_state=seed)
        start = time.perf_counter()
        estimator.fit(train, item_features=items)  # users: worse on validation
        seconds = time.perf_counter() - start
        estimator.add_items(items.for_ids(cold_items))
        return estimator, seconds

    return fit


def _item_matrix(items: Features, train: tr.Interactions, cold_items: np.ndarray):
    """Warm-then-cold id map and the feature matrix tripletrec would build for it."""
    item_map = IdMap(np.concatenate([train.item_map.ids, cold_items]), "item")
    encoder = FeatureEncoder().fit(items.for_ids(train.item_map.ids))
    return item_map, with_identity(encoder.transform(items, item_map), len(train.item_map))


def _widened(train: tr.Interactions, item_map: IdMap) -> tr.Interactions:
    """``train`` over ``item_map`` (its own items first): cold items as empty columns."""
    return tr.Interactions(
        train.users, train.items, train.ratings, train.timestamps, train.user_map, item_map
    )


def _lightfm(settings: dict) -> Callable:
    from lightfm import LightFM

    def fit(train, users, items, cold_items, seed):
        item_map, matrix = _item_matrix(items, train, cold_items)
        wide = _widened(train, item_map)
        model = LightFM(
            no_components=N_FACTORS, loss="warp", learning_rate=settings["learning_rate"],
            random_state=seed,
        )  # fmt: skip
        start = time.perf_counter()
        model.fit(
            wide.to_csr().tocoo(), item_features=matrix, epochs=settings["epochs"],
            num_threads=THREADS,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        item_bias, item_factors = model.get_item_representations(matrix)
        _, user_factors = model.get_user_representations()
        return FactorModel.from_factors(wide, user_factors, item_factors, item_bias), seconds

    return fit


def _popularity_of(scores_by_item: Callable) -> Callable:
    """A baseline ranking every user's items by one score per item."""

    def fit(train, users, items, cold_items, seed):
        item_map, matrix = _item_matrix(items, train, cold_items)
        wide = _widened(train, item_map)
        scores = np.asarray(scores_by_item(train, items, item_map, matrix), np.float32)
        n_users, n_items = wide.n_users, len(item_map)
        model = FactorModel.from_factors(
            wide, np.zeros((n_users, 1), np.float32), np.zeros((n_items, 1), np.float32), scores
        )
        return model, 0.0

    return fit


def _members(train, items, item_map, matrix):
    members = items.table["members"].reindex(item_map.ids)
    return np.log1p(members.fillna(0).to_numpy(np.float64))


def _feature_popularity(train, items, item_map, matrix):
    n_warm = train.n_items
    n_features = matrix.shape[1] - n_warm  # identity columns come last
    features = matrix[:, :n_features].tocsc()
    popularity = np.bincount(train.items, minlength=n_warm).astype(np.float64)
    warm = (features[:n_warm] > 0).astype(np.float64)
    per_feature = (warm.T @ popularity) / np.maximum(np.asarray(warm.sum(0)).ravel(), 1)
    return (features @ per_feature).ravel()


def _tune_lightfm(train, users, items, seed: int) -> dict:
    """LightFM settings with the best cold-item validation AUC, within the training items."""
    fit_part, validation = cold_item_split(train, COLD_FRACTION, random_state=1000 + seed)
    cold = np.setdiff1d(train.item_map.ids, fit_part.item_map.ids)
    best, best_auc = LIGHTFM_GRID[0], -1.0
    for settings in LIGHTFM_GRID:
        model, _ = _lightfm(settings)(fit_part, users, items, cold, seed)
        auc = tr.evaluate(model, fit_part, validation, ["auc"], items=cold)["auc"]
        if auc > best_auc:
            best, best_auc = settings, auc
    return best


def cold_items(name, data, users, items, seeds) -> list[dict]:
    positives = DATASETS[name].positives(data)
    fits: dict[str, Callable] = {
        "tripletrec cold-start + item features": _tripletrec("bilinear"),
        "tripletrec FM (cold-start settings) + item features": _tripletrec("fm"),
        "feature popularity": _popularity_of(_feature_popularity),
    }
    if "members" in items.columns:
        fits["members popularity"] = _popularity_of(_members)
    try:
        import lightfm  # noqa: F401
    except ImportError as exc:
        print(f"LightFM is not available ({exc}); going on without it", file=sys.stderr)
        lightfm_available = False
    else:
        lightfm_available = True
    runs: dict[str, list[dict]] = {}
    for seed in seeds:
        train, test = cold_item_split(positives, COLD_FRACTION, random_state=seed)
        cold = np.setdiff1d(positives.item_map.ids, train.item_map.ids)
        seed_fits = dict(fits)
        if lightfm_available:
            settings = _tune_lightfm(train, users, items, seed)
            seed_fits["LightFM WARP + item features"] = _lightfm(settings)
        for label, fit in seed_fits.items():
            model, seconds = fit(train, users, items, cold, seed)
            scores = tr.evaluate(model, train, test, METRICS, items=cold)
            run = {m: scores[m] for m in METRICS}
            run |= {"fit_seconds": seconds, "n_users": scores["n_users"], "n_cold": len(cold)}
            if label.startswith("LightFM"):
                run["settings"] = settings
            runs.setdefault(label, []).append(run)
            print(f"  cold items {name} seed {seed} {label}: {run}", flush=True)
    return [_summary(name, "cold items", label, r) for label, r in runs.items()]


# ---------------------------------------------------------------------------- new users
def _histories(part: tr.Interactions) -> tuple[np.ndarray, list[list]]:
    """The users of ``part`` (raw ids, sorted) and each one's raw item ids."""
    order = np.argsort(part.users, kind="stable")
    users, starts = np.unique(part.users[order], return_index=True)
    raw_items = part.item_map.to_raw(part.items[order])
    return part.user_map.to_raw(users), [list(h) for h in np.split(raw_items, starts[1:])]


def new_users(name, data, users, items, seeds) -> list[dict]:
    positives = DATASETS[name].positives(data)
    runs: dict[str, list[dict]] = {}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        counts = np.bincount(positives.users, minlength=positives.n_users)
        eligible = np.flatnonzero(counts >= 2)
        held = rng.choice(eligible, size=round(NEW_USER_FRACTION * len(eligible)), replace=False)
        is_new = np.isin(positives.users, held)
        known = positives.subset(~is_new)
        history, target = fraction_per_user_split(positives.subset(is_new), 0.5, seed)
        history_users, histories = _histories(history)

        model = tr.TripletRecommender(random_state=seed).fit(known.compact())
        single = []
        for h in histories[:50]:
            start = time.perf_counter()
            model.recommend_from_history([h], k=10)
            single.append(time.perf_counter() - start)
        # The same calls with the Adam fold-in (Newton's method switched off): the baseline
        # the Newton solve replaced, measured in the same process.
        newton_budget, foldin_softmax.NEWTON_BUDGET = foldin_softmax.NEWTON_BUDGET, 0
        single_adam = []
        for h in histories[:50]:
            start = time.perf_counter()
            model.recommend_from_history([h], k=10)
            single_adam.append(time.perf_counter() - start)
        foldin_softmax.NEWTON_BUDGET = newton_budget
        start = time.perf_counter()
        scores = model.score_from_history(histories, random_state=seed)
        batch_seconds = time.perf_counter() - start
        rows_of = IdMap(history_users, "user")
        shape = (len(histories), model.n_items_)
        relevant = _matrix(rows_of, model.item_map_, target, shape)
        exclude = _matrix(rows_of, model.item_map_, history, shape)
        folded = ranking_metrics(scores, relevant, exclude, metrics=list(METRICS))
        keep = np.diff(relevant.indptr) > 0
        fold_run = {m: float(np.nanmean(folded[m][keep])) for m in METRICS}
        fold_run |= {
            "latency_ms_single": 1000 * float(np.median(single)),
            "latency_ms_single_adam": 1000 * float(np.median(single_adam)),
            "latency_ms_batch_per_user": 1000 * batch_seconds / len(histories),
            "n_users": int(keep.sum()),
        }
        runs.setdefault("fold-in (model never saw them)", []).append(fold_run)

        if users is not None:  # the same fold-in, starting from the users' features
            with_features = tr.TripletRecommender(random_state=seed)
            with_features.fit(known.compact(), user_features=users)
            by_id = dict(zip(history_users, histories, strict=True))
            scores = with_features.score_from_history(by_id, seed, user_features=users)
            folded = ranking_metrics(scores, relevant, exclude, metrics=list(METRICS))
            run = {m: float(np.nanmean(folded[m][keep])) for m in METRICS}
            runs.setdefault("fold-in + user features", []).append(
                run | {"n_users": int(keep.sum())}
            )

        trained = tr.TripletRecommender(random_state=seed)
        trained.fit(_concat(known, history))
        scores = tr.evaluate(trained, history, target, METRICS)
        trained_run = {m: scores[m] for m in METRICS} | {"n_users": scores["n_users"]}
        runs.setdefault("trained on them", []).append(trained_run)
        print(f"  new users {name} seed {seed}: {fold_run} vs {trained_run}", flush=True)
    return [_summary(name, "new users", label, r) for label, r in runs.items()]


def _matrix(rows_of: IdMap, items_of: IdMap, part: tr.Interactions, shape) -> sp.csr_matrix:
    """``part`` as a binary matrix over the given row and column id maps (unknown dropped)."""
    rows = rows_of.to_index(part.user_map.to_raw(part.users), strict=False)
    cols = items_of.to_index(part.item_map.to_raw(part.items), strict=False)
    known = (rows >= 0) & (cols >= 0)
    return sp.csr_matrix(
        (np.ones(known.sum(), np.float32), (rows[known], cols[known])), shape=shape
    )


def _concat(a: tr.Interactions, b: tr.Interactions) -> tr.Interactions:
    """Rows of ``a`` and ``b`` (which share their id maps)."""
    return tr.Interactions(
        np.concatenate([a.users, b.users]), np.concatenate([a.items, b.items]),
        None, None, a.user_map, a.item_map,
    )  # fmt: skip


# ---------------------------------------------------------------------------- warm users
def warm_users(name, data, users, items, seeds) -> list[dict]:
    rule = DATASETS[name]
    train, test = tr.random_split(data, test_size=0.2, random_state=42)
    train, test = rule.positives(train), rule.positives(test)
    variants = {
        "default, no features": {},
        "default + item features": {"item_features": items},
    }
    variants["cold-start preset + item features"] = {"item_features": items}
    if users is not None:
        variants["default + user and item features"] = {
            "item_features": items,
            "user_features": users,
        }
    runs: dict[str, list[dict]] = {}
    for seed in seeds:
        for label, features in variants.items():
            preset = "cold-start" if label.startswith("cold-start") else "default"
            model = tr.TripletRecommender.from_preset(preset, random_state=seed)
            model.fit(train, **features)
            scores = tr.evaluate(model, train, test, METRICS)
            run = {m: scores[m] for m in METRICS}
            run |= {"fit_seconds": model.fit_seconds_, "n_users": scores["n_users"]}
            runs.setdefault(label, []).append(run)
            print(f"  warm {name} seed {seed} {label}: {run}", flush=True)
    return [_summary(name, "warm users", label, r) for label, r in runs.items()]


# ---------------------------------------------------------------------------- report
def _summary(dataset: str, protocol: str, label: str, runs: list[dict]) -> dict:
    row: dict = {"dataset": dataset, "protocol": protocol, "model": label, "runs": runs}
    for key in runs[0]:
        values = [run[key] for run in runs]
        if all(isinstance(v, (int, float)) for v in values):
            row[key] = float(np.mean(values))
            row[f"{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    if "settings" in runs[0]:
        row["settings"] = [run["settings"] for run in runs]
    return row


def markdown(rows: list[dict], environment: dict) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in environment["versions"].items())
    lines = [
        "# Side features and cold start",
        "",
        f"`{environment['command']}` — {environment['date']}, {environment['n_seeds']} "
        f"seed(s), mean +- std; {THREADS} threads; {versions}. Wall time "
        f"{environment['wall_seconds']:.0f} s. Protocols: see the script's docstring and "
        "`docs/protocols.md`.",
        "",
    ]
    for protocol, extra in (
        ("cold items", ["fit_seconds"]),
        ("new users", ["latency_ms_single", "latency_ms_single_adam", "latency_ms_batch_per_user"]),
        ("warm users", ["fit_seconds"]),
    ):
        subset = [row for row in rows if row["protocol"] == protocol]
        if not subset:
            continue
        lines += [
            f"## {protocol.capitalize()}",
            "",
            "| dataset | model | AUC | NDCG@10 | " + " | ".join(extra) + " | users |",
            "|---|---|---|---|" + "---|" * len(extra) + "---|",
        ]
        for row in subset:
            lines.append(
                f"| {row['dataset']} | {row['model']} | {mean_std(row, 'auc', 4)} | "
                f"{mean_std(row, 'ndcg@10')} | "
                + " | ".join(mean_std(row, key, 2) for key in extra)
                + f" | {row['n_users']:.0f} |"
            )
        lines.append("")
    tuned = [row for row in rows if "settings" in row]
    for row in tuned:
        lines.append(f"- {row['dataset']} {row['model']}: chosen settings {row['settings']}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datasets", default="anime-tv,movielens-100k")
    parser.add_argument("--protocols", default="cold items,new users,warm users")
    parser.add_argument("--out", default=str(RESULTS / "cold_start"))
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    protocols = {"cold items": cold_items, "new users": new_users, "warm users": warm_users}
    seeds = list(range(args.seeds))
    start = time.perf_counter()
    rows: list[dict] = []
    for name in args.datasets.split(","):
        loaded = load_with_features(name)
        if loaded is None:
            continue
        for protocol in args.protocols.split(","):
            rows += protocols[protocol](name, *loaded, seeds)
    environment = run_environment(__file__, argv or sys.argv[1:], len(seeds), start)
    write_results(Path(args.out), rows, environment, markdown)


if __name__ == "__main__":
    main()
