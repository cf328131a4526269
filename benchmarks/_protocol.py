"""The protocol the benchmarks share: the data sets, the reference notebook's split, the
validation fraction and the thread count.

anime-tv and anime-5k are bundled; MovieLens-100k is read from ``../shared/data/movielens-100k``
(beside the repository, never copied into it) and skipped with a note when absent. The
split is the notebook's: a random 80/20 split of the rating rows with seed 42
(``tripletrec.random_split``), then each data set's positive rule (rating > 7 on the anime
sets, >= 4 on MovieLens-100k).

Importing this module starts NumPy and torch: a script pins its thread pools (the
``OMP_NUM_THREADS`` family) before it imports it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import tripletrec as tr
from tripletrec.data.datasets import DATASETS, dataset_features
from tripletrec.data.features import Features

from _results import ROOT

#: Data that is not bundled (MovieLens-100k), beside the repository.
SHARED_DATA = ROOT.parent / "shared" / "data"
#: Threads everywhere (BLAS, torch, LightFM, implicit): the 2-core development machine.
THREADS = 2
#: The share of the *training* positives held out to choose settings (seed 0).
VALIDATION_FRACTION = 0.2


def read(name: str) -> tuple[tr.Interactions, Path | None] | None:
    """Every rating of data set ``name`` and the folder it was read from (None: the
    bundled copy); None, with a note, when MovieLens-100k is absent."""
    if name in ("anime-tv", "anime-5k"):
        return tr.load_dataset(name), None
    if name == "movielens-100k":
        folder = SHARED_DATA / "movielens-100k"
        if not (folder / "u.data").is_file():
            print(f"{folder} is absent: skipping movielens-100k", file=sys.stderr)
            return None
        return tr.load_dataset(name, path=folder), folder
    raise SystemExit(f"unknown dataset {name!r}")


def load(name: str) -> tuple[tr.Interactions, tr.Interactions] | None:
    """Train and test positives of ``name`` on the notebook's split, or None (with a note)
    when the data is absent."""
    loaded = read(name)
    if loaded is None:
        return None
    rule = DATASETS[name]
    train, test = tr.random_split(loaded[0], test_size=0.2, random_state=42)
    return rule.positives(train), rule.positives(test)


def test_parts(names: str) -> Iterator[tuple[str, tr.Interactions, tr.Interactions]]:
    """``(name, train, test)`` positives (:func:`load`) of each comma-separated data set
    that is present, printed as they come."""
    for name in names.split(","):
        loaded = load(name)
        if loaded is None:
            continue
        train, test = loaded
        print(f"{name}: {len(train):,} train / {len(test):,} test positives", flush=True)
        yield name, train, test


def load_with_features(name: str) -> tuple[tr.Interactions, Features | None, Features] | None:
    """Every rating of ``name`` and its built-in user / item features
    (``tripletrec.data.datasets.dataset_features``; no user features: None), or None (with
    a note) when the data is absent."""
    loaded = read(name)
    if loaded is None:
        return None
    data, path = loaded
    users, items = dataset_features(name, data, path=path)
    return data, users, items
