"""Every known user's best items, computed when the index is built and shared by workers.

On a large catalogue even an approximate search costs milliseconds a request (the blend's
scores need a sparse product per user), while most requests are a known user's top-k with
no exclusions. ``tripletrec index`` therefore also writes the best :data:`WIDTH` items of
every known user (training items left out, the library's tie rule) into the index folder:
exactly, by scoring users in blocks, where users x items is at most
:data:`EXACT_SCORE_ENTRIES`, and through the approximate index beyond. The file is
memory-mapped when served, so every worker reads one copy from the page cache; a request
it answers is a slice of it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

from tripletrec._files import file_mode, sha256_of_file
from tripletrec._safetensors_mmap import map_safetensors
from tripletrec.evaluation.topk import top_k_masked
from tripletrec.exceptions import ModelFileError

ANSWERS_FILE = "answers.safetensors"
#: Answers kept per user: requests up to this k without exclusions are slices.
WIDTH = 100
#: Users x items scored exactly at most (about a minute and a half for the default blend
#: on Gowalla's 1.2 billion on 2 cores); beyond, the answers come from the index.
EXACT_SCORE_ENTRIES = 2_000_000_000
#: Users per block: bounds the dense scores to about this x items floats.
_BLOCK_USERS = 256


def compute_answers(
    model: Any, retriever: Any, width: int = WIDTH, *, progress: bool = False
) -> tuple[np.ndarray, np.ndarray, bool]:
    """The best ``width`` items (int32, -1 padded) and their scores (float32, -inf
    padded) of every known user of ``model``, and whether they are exact (else they are
    ``retriever``'s answers)."""
    from tqdm.auto import tqdm

    n_users, n_items = model.n_users_, model.n_items_
    width = min(width, n_items)
    exact = n_users * n_items <= EXACT_SCORE_ENTRIES
    items = np.empty((n_users, width), np.int32)
    scores = np.empty((n_users, width), np.float32)
    starts = range(0, n_users, _BLOCK_USERS)
    for first in tqdm(starts, desc="answers", unit="block", disable=not progress):
        block = np.arange(first, min(first + _BLOCK_USERS, n_users))
        seen = model.seen_[block]
        if exact:
            block_scores = np.asarray(model.score_indices(block), dtype=np.float32)
            rows, cols = seen.nonzero()
            block_scores[rows, cols] = -np.inf
            idx, values = top_k_masked(block_scores, width)
        else:
            idx, values = retriever.search(block, width, exclude=seen)
        items[block], scores[block] = idx, values
    return items, scores, exact


def save_answers(folder: Path, items: np.ndarray, scores: np.ndarray) -> None:
    """Write the answers into ``folder`` (the index's staging folder: its rename makes
    the write atomic)."""
    save_file({"items": items, "scores": scores}, str(folder / ANSWERS_FILE))
    # safetensors creates the file readable by its owner only; like every output, it is
    # meant to be shared (0666 less the umask).
    os.chmod(folder / ANSWERS_FILE, file_mode())


def load_answers(
    folder: Path, n_users: int, described: dict | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """The answers saved in ``folder``, memory-mapped, or None where the index has none;
    ``described``: the index's record of them (``index.json``'s ``"answers"``).

    Raises
    ------
    ModelFileError
        If the file is missing, damaged (checksum) or does not fit ``n_users``.
    """
    if described is None:
        return None
    path = folder / ANSWERS_FILE
    if not isinstance(described, dict) or not path.is_file():
        raise ModelFileError(f"{path}: the index lists answers that are not there")
    if sha256_of_file(path) != described.get("sha256"):
        raise ModelFileError(f"{path}: checksum mismatch (the file is corrupt or truncated)")
    arrays = map_safetensors(path)
    items, scores = arrays.get("items"), arrays.get("scores")
    if (
        items is None
        or scores is None
        or items.ndim != 2
        or items.shape != scores.shape
        or len(items) != n_users
    ):
        raise ModelFileError(f"{path}: holds no answers for the model's {n_users:,} users")
    return items, scores
