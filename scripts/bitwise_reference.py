"""Bitwise reference of trained models, for refactors that must not change behaviour.

Fits 19 small configurations on anime-tv (every model kind, loss kind, sampler, side
features with identity dropout, data-parallel in one process, callbacks, early stopping)
and records each one's weights, scores, fold-in results, retrieval vectors and losses::

    python scripts/bitwise_reference.py save  DIR            # before the change
    python scripts/bitwise_reference.py check DIR [case ...]  # after it: np.array_equal

``check`` exits non-zero when any case differs.
"""

import sys
from pathlib import Path

import numpy as np
import torch

import tripletrec as tr

torch.set_num_threads(1)

data = tr.load_dataset("anime-tv")
train_all, test_all = tr.random_split(data, 0.2, random_state=42)
train, test = train_all.positives(7), test_all.positives(7)
USERS = train.user_map.ids[:50]
test_csr = test.to_csr()
HISTORIES = []
for row in range(5, 400):
    items = test.item_map.ids[test_csr[row].indices]
    if len(items) >= 3:
        HISTORIES.append(list(items[:6]))
    if len(HISTORIES) == 5:
        break
BASE = dict(epochs=2, random_state=0, n_threads=1)


def _features():
    from tripletrec.data.datasets import dataset_features

    return dataset_features("anime-tv", data)


def fit(preset="default", fit_kwargs=None, **kw):
    model = tr.TripletRecommender.from_preset(preset, **{**BASE, **kw})
    return model.fit(train, **(fit_kwargs or {}))


def ddp(sparse, **kw):
    from tripletrec.models.triplet.distributed import fit_data_parallel

    model = tr.TripletRecommender.from_preset("default", **{**BASE, **kw})
    return fit_data_parallel(model, train, sparse_gradients=sparse)


def callback_case():
    records = []

    def on_epoch_end(epoch, record):
        records.append(record["loss"])
        return epoch >= 1  # stop after the first epoch

    model = tr.TripletRecommender.from_preset("default", **{**BASE, "epochs": 3})
    model.fit(train, on_epoch_end=on_epoch_end)
    model._reference_extra = {"callback_losses": np.array(records)}
    return model


def validation_case():
    from tripletrec.data.splits import validation_split

    fit_part, validation = validation_split(train, 0.1, random_state=0)
    model = tr.TripletRecommender(**{**BASE, "epochs": 3, "patience": 1})
    model.fit(fit_part, validation=validation)
    return model


CASES = {
    "default": lambda: fit("default"),
    "bilinear": lambda: fit("bilinear"),
    "cosine_temp_softmax_pop": lambda: fit(
        "bilinear",
        similarity="cosine",
        learn_temperature=True,
        loss="softmax",
        negatives="popularity",
        n_negatives=5,
        batch_size=1024,
    ),
    "warp": lambda: fit("bilinear", loss="warp", n_negatives=5),
    "adaptive_hinge": lambda: fit("bilinear", loss="adaptive_hinge", n_negatives=5),
    "softmax_in_batch": lambda: fit("default", negatives="in_batch", batch_size=1024),
    "bpr_dot_uniform": lambda: fit("default", loss="bpr", negatives="uniform"),
    "deep": lambda: fit("deep"),
    "deep_neumf": lambda: fit("deep-neumf"),
    "fm": lambda: fit("default", model="fm", n_factors=32),
    "fm_features": lambda: fit(
        "default", model="fm", n_factors=32, fit_kwargs={"item_features": _features()[1]}
    ),
    "default_item_features_idrop": lambda: fit(
        "default", identity_dropout=0.5, fit_kwargs={"item_features": _features()[1]}
    ),
    "deep_item_features_idrop": lambda: fit(
        "deep", identity_dropout=0.5, fit_kwargs={"item_features": _features()[1]}
    ),
    "ddp_sparse": lambda: ddp(True),
    "ddp_dense": lambda: ddp(False),
    "ddp_sparse_bpr": lambda: ddp(True, loss="bpr", negatives="uniform"),
    "ddp_deep": lambda: ddp(
        False, model="deep", loss="margin", negatives="uniform", learning_rate=0.005, max_norm=None
    ),
    "callback": callback_case,
    "validation_patience": validation_case,
}


def arrays(model) -> dict:
    from tripletrec.serving.retrieval import model_vectors

    out = {f"state.{k}": v.detach().cpu().numpy() for k, v in model.module_.state_dict().items()}
    out["score"] = model.score(USERS)
    idx, scores = model.recommend_from_history(HISTORIES, k=10)
    out["history_idx"] = np.asarray(idx).astype(str)
    out["history_scores"] = scores
    out["history_losses"] = np.array([r["loss"] for r in model.history_])
    try:
        users, items = model_vectors(model)
        out["vectors.users"], out["vectors.items"] = users, items
    except tr.exceptions.TripletrecError:
        out["vectors.none"] = np.array([1])
    for key, value in getattr(model, "_reference_extra", {}).items():
        out[f"extra.{key}"] = value
    return out


def main() -> int:
    if len(sys.argv) < 3 or sys.argv[1] not in ("save", "check"):
        print(__doc__)
        return 2
    mode, ref_dir = sys.argv[1], Path(sys.argv[2])
    names = sys.argv[3:] or list(CASES)
    ref_dir.mkdir(parents=True, exist_ok=True)
    failures = 0
    for name in names:
        got = arrays(CASES[name]())
        path = ref_dir / f"{name}.npz"
        if mode == "save":
            np.savez(path, **got)
            print(f"saved {name}: {len(got)} arrays")
            continue
        ref = dict(np.load(path))
        bad = [
            k
            for k in sorted(set(ref) | set(got))
            if k not in ref or k not in got or not np.array_equal(ref[k], got[k])
        ]
        status = "IDENTICAL" if not bad else f"DIFFERENT {bad}"
        failures += bool(bad)
        print(f"{name}: {status}", flush=True)
    return failures


if __name__ == "__main__":
    sys.exit(main())
