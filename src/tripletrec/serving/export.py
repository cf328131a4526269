"""Batch export: every user's top-k recommendations to one Parquet file
(``tripletrec recommend --all --out recs.parquet``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from tripletrec._checks import positive_int
from tripletrec._files import atomic_path
from tripletrec.exceptions import DataError


def write_all_recommendations(
    model: Any,
    path: str | Path,
    *,
    k: int = 10,
    filter_seen: bool = True,
    chunk_users: int = 2048,
    progress: bool = True,
) -> dict:
    """Write the top-``k`` items of every user to a Parquet file, chunk by chunk.

    The file has one row per (user, rank): ``user_id``, ``rank`` (1 = best), ``item_id``,
    ``score``; users with fewer than ``k`` candidates have fewer rows. It is written under a
    temporary name and renamed into place (:func:`tripletrec._files.atomic_path`), so a crash
    never leaves a truncated file, and it gets the mode a new file gets under the umask.

    Returns
    -------
    dict
        ``n_users``, ``n_rows``, ``seconds``, ``users_per_second``.
    """
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    chunk_users = positive_int("chunk_users", chunk_users)
    model._check_fitted()
    user_ids = model.user_map_.ids
    start = time.perf_counter()
    n_rows = 0
    with atomic_path(path) as tmp:
        writer = None
        try:
            bar = tqdm(total=len(user_ids), unit="user", disable=not progress)
            for first in range(0, len(user_ids), chunk_users):
                users = user_ids[first : first + chunk_users]
                table = _chunk_table(model, users, k, filter_seen)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
                n_rows += table.num_rows
                bar.update(len(users))
            bar.close()
            if writer is None:
                raise DataError("the model has no users")
        finally:
            if writer is not None:
                writer.close()
    seconds = time.perf_counter() - start
    return {
        "n_users": len(user_ids),
        "n_rows": n_rows,
        "seconds": seconds,
        "users_per_second": len(user_ids) / max(seconds, 1e-9),
    }


def _chunk_table(model: Any, users: np.ndarray, k: int, filter_seen: bool) -> Any:
    """The rows of one chunk of users: padding (score -inf) left out."""
    import pyarrow as pa

    items, scores = model.recommend(users, k=k, filter_seen=filter_seen)
    keep = np.isfinite(scores).ravel()
    ranks = np.tile(np.arange(1, items.shape[1] + 1, dtype=np.int32), len(users))
    return pa.table(
        {
            "user_id": np.repeat(users, items.shape[1])[keep],
            "rank": ranks[keep],
            "item_id": items.ravel()[keep],
            "score": scores.ravel()[keep],
        }
    )
