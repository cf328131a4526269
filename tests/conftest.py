"""Shared fixtures: paths to the project's shared data, and datasets loaded once per run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tripletrec.data.datasets import load_dataset
from tripletrec.data.interactions import Interactions

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
def kaggle_anime_dir() -> Path:
    """Folder with Kaggle ``anime.csv`` and ``rating_tail_sample.parquet``; skips when absent."""
    return _shared("anime/rating_tail_sample.parquet").parent


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
