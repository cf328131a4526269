"""The choice of EASE's ``l2`` for :class:`~tripletrec.models.hybrid.HybridRecommender`
(``l2="auto"``): EASE fitted for each value of a grid on an inner split of the training
positives, over the most popular items, judged by NDCG@10 on the held-out part of a
sample of users."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from tripletrec.evaluation.protocols import evaluate
from tripletrec.models.ease import ease_for_each_l2

#: EASE ``l2`` values ``l2="auto"`` chooses from: log-spaced, from light shrinkage (trust
#: co-occurrences) to heavy (lean on popularity).
L2_GRID = (38.0, 130.0, 440.0, 1500.0)
#: Share of the training positives held out to choose ``l2``, and the cut-off judged.
INNER_FRACTION = 0.2
INNER_K = 10
#: The ``l2`` search runs on this many of the most popular items: its inverses cost the
#: cube of the catalogue, and the popular items carry most positives and decide the choice.
L2_SEARCH_ITEMS = 1000
#: The held-out part is judged on a random sample of this many of its users (all of them
#: if fewer): scoring and ranking every user was most of the search's time, and grows
#: with the users while the choice does not need them all.
L2_SEARCH_USERS = 2000


def chosen_l2(
    seen: sp.csr_matrix,
    random_state: int | None,
    grid: tuple[float, ...] = L2_GRID,
    max_items: int | None = L2_SEARCH_ITEMS,
    user_weight_exponent: float = 0.0,
    max_users: int | None = L2_SEARCH_USERS,
    min_item_positives: int = 1,
) -> tuple[float, list[float]]:
    """The value of ``grid`` whose EASE, fitted on an inner split of ``seen``, has the best
    NDCG@10 on the held-out part (ties to the first), and the NDCG@10 of each value.

    Parameters
    ----------
    seen : scipy.sparse.csr_matrix
        Training positives, users x items.
    random_state : int or None
        Seed of the inner split (:data:`INNER_FRACTION` of the positives held out) and of
        the users judged.
    grid : tuple of float
        Candidate ``l2`` values.
    max_items : int or None
        Search on the ``max_items`` most popular items only (ties to the lower index);
        None searches the whole catalogue.
    max_users : int or None
        Judge each value on a random sample of this many users with a held-out positive
        (the same sample for every value); None judges them all.
    user_weight_exponent, min_item_positives
        Those of the EASE models searched
        (:class:`~tripletrec.models.ease.EASERecommender`).
    """
    if max_items is not None and max_items < seen.shape[1]:
        popularity = np.diff(seen.tocsc().indptr)
        popular = np.sort(np.argsort(-popularity, kind="stable")[:max_items])
        seen = seen[:, popular].tocsr()
    inner_fit, held_out = inner_split(seen, INNER_FRACTION, random_state)
    metric = f"ndcg@{INNER_K}"
    users_seed = 0 if random_state is None else random_state  # one sample for every value
    scores = [
        evaluate(
            model, inner_fit, held_out, [metric], max_users=max_users, random_state=users_seed
        )[metric]
        for model in ease_for_each_l2(inner_fit, grid, user_weight_exponent, min_item_positives)
    ]
    return grid[int(np.argmax(scores))], scores


def inner_split(
    seen: sp.csr_matrix, held_fraction: float, random_state: int | None
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """``seen`` split at random into (fit, held-out) positives, ``held_fraction`` held out,
    with the same shape (a random row split, as the usual protocol's): the inner split of
    every choice made at fit time (EASE's ``l2``, the graph filter's degree exponent)."""
    coo = seen.tocoo()
    held = np.random.default_rng(random_state).random(coo.nnz) < held_fraction

    def part(mask: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix(
            (coo.data[mask], (coo.row[mask], coo.col[mask])), shape=seen.shape, dtype=np.float32
        )

    return part(~held), part(held)
