"""Shared fixtures: paths to the project's shared data, and datasets loaded once per run.

The fast unit subset leaves out every test marked ``slow`` (those that train models on the
bundled data, or start processes):

    .venv/bin/python -m pytest -m "not slow"
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from hypothesis import settings

from tripletrec.data.datasets import load_dataset
from tripletrec.data.interactions import Interactions

# Property-based tests (tests/test_fuzz_*.py) run a fixed, small set of examples by default,
# the same on every run, so CI is deterministic and bounded; scripts/fuzz.py sets
# TRIPLETREC_FUZZ_EXAMPLES for a longer run that draws new examples each time.
settings.register_profile("ci", max_examples=100, deadline=None, derandomize=True, database=None)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("TRIPLETREC_FUZZ_EXAMPLES", "1000")),
    deadline=None,
    database=None,  # nothing written into the tree; a failure prints its blob
    print_blob=True,
)
settings.load_profile("fuzz" if os.environ.get("TRIPLETREC_FUZZ_EXAMPLES") else "ci")

ROOT = Path(__file__).resolve().parents[1]
#: The shared data folder (``../shared/data`` from the repository root); may be absent.
SHARED_DATA = ROOT.parent / "shared" / "data"


def _shared(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"shared data {path} is absent (it lives outside the repository)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; skips the test when the folder is absent."""
    return _shared("")


@pytest.fixture(scope="session")
def anime_5k_zip() -> Path:
    """The published ``anime-5k.zip``; skips when absent."""
    return _shared("anime-5k/anime-5k.zip")


@pytest.fixture(scope="session")
def movielens_100k_dir() -> Path:
    """The ``ml-100k`` folder (u.data, u.item, u.user, ua.test); skips when absent."""
    return _shared("movielens-100k/u.data").parent


@pytest.fixture(scope="session")
def gowalla_dir() -> Path:
    """Gowalla as split by LightGCN (train.txt, valid.txt, test.txt); skips when absent."""
    return _shared("gowalla/test.txt").parent


@pytest.fixture(scope="session")
def kaggle_anime_dir() -> Path:
    """Folder with Kaggle ``anime.csv`` and ``rating_tail_sample.parquet``; skips when absent."""
    return _shared("anime/rating_tail_sample.parquet").parent


#: Fixtures on the bundled data: a test using one, directly or through another fixture,
#: works on the real data set (mostly training models on it) and is marked ``slow``. Tests
#: that train on it without one (``main(["train", "anime-tv", ...])``) carry the marker.
BUNDLED_DATA_FIXTURES = frozenset(
    {
        "anime_tv",  # the data set itself
        "run_dir",  # test_cli.py, test_reports.py: `tripletrec train anime-tv` once per module
        "tuned",  # test_tuning.py: `tripletrec tune anime-tv` once per module
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if BUNDLED_DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module")
def small_positives() -> sp.csr_matrix:
    """30 users x 20 items of random positives: every user has one, every item is someone's."""
    rng = np.random.default_rng(0)
    dense = rng.random((30, 20)) < 0.25
    dense[np.arange(30), rng.integers(0, 20, 30)] = True
    dense[rng.integers(0, 30, 20), np.arange(20)] = True
    return sp.csr_matrix(dense.astype(np.float32))


@pytest.fixture
def small_csv(tmp_path) -> Path:
    """A CSV of implicit feedback (columns ``u``, ``i``): about 2,000 pairs of 60 users x
    40 items, for command-line tests that train in a second."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"u": rng.integers(0, 60, 2500), "i": rng.integers(0, 40, 2500)})
    path = tmp_path / "small.csv"
    df.drop_duplicates().to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def anime_tv() -> Interactions:
    """The bundled default dataset, loaded once (tests must not modify its arrays)."""
    return load_dataset("anime-tv")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Train with one thread: many tiny kernels on two threads slow down badly when
    another process is busy on the same cores, and test times must not depend on that."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
