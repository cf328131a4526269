"""The choice of the graph filter's degree exponent (``degree_exponent="auto"``): the
filter fitted once on an inner split of the training positives, scored at each exponent
of a grid on the held-out part (NDCG@10), the best kept.

The exponent is the graph filter's most data-dependent setting: on the validation splits
measured (``benchmarks/studies/graph_filter.py``) the best one ranges from 0 on a dense
293-item catalogue to 0.35 on Gowalla's sparse 41k items, each a clear loss on the
other. It changes only how scores are weighted, not the SVD, so the grid costs one inner
fit and one scoring per value; the inner fit uses a cheaper SVD (randomized,
:data:`INNER_COMPONENTS` vectors) and a sample of the held-out users
(:data:`INNER_USERS`, fewer past :data:`INNER_SCORE_BUDGET` scores).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from tripletrec.evaluation.protocols import evaluate
from tripletrec.models.ease_l2 import INNER_FRACTION, INNER_K, inner_split

#: The exponents ``"auto"`` chooses from, none to strong popularity damping.
DEGREE_EXPONENT_GRID = (0.0, 0.1, 0.2, 0.35, 0.5)
#: The exponent where the inner split leaves nothing to judge by (tiny data).
FALLBACK_DEGREE_EXPONENT = 0.2
#: Singular vectors of the inner fit's (randomized) SVD.
INNER_COMPONENTS = 256
#: Held-out users scored per exponent, at most (a seeded sample)...
INNER_USERS = 4000
#: ... and at most this many scores (users x items) per exponent: up to 50,000 items
#: (every validated catalogue) the cap above binds, beyond it the sample shrinks so that
#: the choice's cost stops growing with the catalogue (1,000 users at 200,000 items).
INNER_SCORE_BUDGET = 200_000_000


def chosen_degree_exponent(
    seen: sp.csr_matrix,
    build: Callable[..., Any],
    random_state: int | None,
    grid: tuple[float, ...] = DEGREE_EXPONENT_GRID,
) -> tuple[float, list[float]]:
    """The exponent of ``grid`` whose filter, fitted on an inner split of ``seen``, has the
    best NDCG@10 on the held-out part (ties to the first), and the NDCG@10 of each.

    Parameters
    ----------
    seen : scipy.sparse.csr_matrix
        Training positives, users x items.
    build : callable
        ``build(degree_exponent=, n_components=, solver=)`` gives an unfitted graph filter
        with the caller's other settings.
    random_state : int or None
        Seed of the inner split (:data:`INNER_FRACTION` of the positives held out), the
        inner SVD and the users' sample.
    grid : tuple of float
        Candidate exponents.
    """
    inner_fit, held_out = inner_split(seen, INNER_FRACTION, random_state)
    if held_out.nnz == 0 or inner_fit.nnz == 0:
        return FALLBACK_DEGREE_EXPONENT, []
    model = build(degree_exponent=grid[0], n_components=INNER_COMPONENTS, solver="randomized")
    model.fit(inner_fit)
    metric = f"ndcg@{INNER_K}"
    users = max(1, min(INNER_USERS, INNER_SCORE_BUDGET // seen.shape[1]))
    scores = []
    for exponent in grid:
        model._set_degree_exponent(exponent)  # weighs the scores; the SVD stays
        result = evaluate(
            model, inner_fit, held_out, [metric], max_users=users, random_state=random_state
        )
        scores.append(float(result[metric]))
    if not np.isfinite(scores).any():
        return FALLBACK_DEGREE_EXPONENT, scores
    return grid[int(np.nanargmax(scores))], scores
