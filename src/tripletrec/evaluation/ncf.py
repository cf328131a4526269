"""Reader of the NCF paper's published test files (He et al., 2017).

The files ``*.test.negative`` list, per user, the held-out item and the 99 sampled negatives
the paper ranked it against; :func:`tripletrec.evaluation.protocols.evaluate_candidates`
evaluates a model on them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tripletrec.exceptions import DataError


def load_ncf_negatives(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read an NCF ``*.test.negative`` file (He et al., 2017, published data).

    Each line is ``(user,item)`` followed by tab-separated negative item ids.

    Returns
    -------
    users, positives : numpy.ndarray of int64, shape (n_cases,)
        The user and its held-out item, as in the file (0-based ids of the NCF data).
    negatives : numpy.ndarray of int64, shape (n_cases, n_negatives)
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        table = pd.read_csv(path, sep="\t", header=None, dtype=str)
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot read as an NCF negatives file ({exc})") from exc
    pairs = table[0].str.extract(r"^\((\d+),(\d+)\)$")
    if pairs.isna().any().any() or table.shape[1] < 2:
        raise DataError(f"{path}: lines must start with '(user,item)' then negative item ids")
    negatives = table.iloc[:, 1:]
    if negatives.isna().any().any():
        raise DataError(f"{path}: lines have different numbers of negatives")
    try:
        negative_ids = negatives.to_numpy().astype(np.int64)
    except ValueError as exc:
        raise DataError(f"{path}: negative item ids must be integers") from exc
    return pairs[0].to_numpy().astype(np.int64), pairs[1].to_numpy().astype(np.int64), negative_ids
