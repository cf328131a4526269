"""RP3beta: a three-step random walk on the user-item graph, popularity-penalised.

Paudel, Christoffel, Mendez and Bernstein, "Updatable, accurate, diverse, and scalable
recommendations for interactive applications" (ACM TiiS 2017). From item ``i`` the walk
goes to a user who liked ``i`` and on to an item ``j`` that user liked; the transition
probabilities are raised to the power ``alpha`` and the arrival at ``j`` is divided by
``pop(j) ** beta``, which trades accuracy for items beyond the most popular ones:

``W[i, j] = sum_u P(i -> u)^alpha P(u -> j)^alpha / pop(j)^beta``, ``W[i, i] = 0``,

with ``P(u -> j) = x_uj / |items of u|``, ``P(i -> u) = x_ui / |users of i|`` and
``pop(j) = |users of j|``. A user's scores are ``x_u @ W``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from tripletrec._checks import finite_number, positive_int
from tripletrec.data.interactions import Interactions
from tripletrec.models.base import RecommenderBase
from tripletrec.models.dense_limits import check_dense_fit
from tripletrec.models.item_item import ItemItemMixin, top_k_per_row

#: Bound on one block of rows of ``W`` while it is built (dense float64 + sparse product).
_BLOCK_BYTES = 64 << 20


class RP3BetaRecommender(ItemItemMixin, RecommenderBase):
    """Item-item random walk with a popularity penalty (RP3beta, Paudel et al. 2017).

    ``P_ui = X / rowsum(X)`` (user to item), ``P_iu = X' / colsum(X)`` (item to user),
    ``W = (P_iu^alpha @ P_ui^alpha) / pop(j)^beta`` (element-wise powers of the transition
    probabilities; column ``j`` divided by ``pop(j)^beta``, ``pop(j)`` the users who liked
    ``j``), zero diagonal, and optionally only the ``top_k`` largest entries of each row
    kept. Scores ``x_u @ W``.

    Use it as a fast, strong item-item baseline: one sparse product, two parameters, no
    inverse (so no cubic cost in the catalogue), exact scores for new users' histories.
    ``beta`` moves the ranking away from popular items: 0 is the plain random walk (P3alpha).

    Parameters
    ----------
    alpha : float, default 1.0
        Power of the transition probabilities (> 0). Above 1 it sharpens the walk towards
        users and items with few interactions' strong links; below 1 it flattens it.
    beta : float, default 0.5
        Popularity penalty (>= 0): arrival at item ``j`` is divided by ``pop(j) ** beta``.
    top_k : int, optional
        Keep only the ``top_k`` largest entries of each row of ``W`` (``weights_`` is then
        a sparse CSR matrix, items x ``top_k`` in memory); None keeps every entry, as a
        dense matrix of 4 bytes per pair of active items, and ``fit`` refuses (one
        :class:`~tripletrec.exceptions.DataError` line) a catalogue whose ``W`` would not
        fit in 90 % of the memory available.

    Attributes
    ----------
    active_items_ : numpy.ndarray of int64
        Indices of the items with at least one training positive (other items have zero
        rows and columns in ``W`` and score 0).
    weights_ : numpy.ndarray or scipy.sparse.csr_matrix of float32, shape (n_active, n_active)
        ``W`` on the active items: ``weights_[a, b]`` is what liking active item ``a`` adds
        to the score of active item ``b``.
    fit_seconds_ : float
        Wall time of the last ``fit``.

    Notes
    -----
    ``X`` is binary, so the powers reduce to degrees:
    ``W = D_items^-alpha X' D_users^-alpha X D_items^-beta``, computed by blocks
    of rows in float64 and stored in float32. ``similar_items`` ranks items by the cosine
    of their rows of ``W``: where a walk from each item arrives.
    """

    def __init__(self, alpha: float = 1.0, beta: float = 0.5, top_k: int | None = None) -> None:
        self.alpha = alpha
        self.beta = beta
        self.top_k = top_k

    def fit(self, data: Interactions | sp.spmatrix) -> RP3BetaRecommender:
        """Compute ``W`` from the training positives of ``data``.

        Parameters
        ----------
        data : Interactions or scipy.sparse matrix
            Training positives (users x items; any non-zero is a positive).

        Returns
        -------
        self

        Raises
        ------
        ParameterError
            If ``alpha`` is not a positive finite number, ``beta`` not a non-negative finite
            number, or ``top_k`` neither None nor a positive integer.
        DataError
            If ``top_k`` is None and the dense ``W`` would not fit in memory.
        """
        alpha = finite_number("alpha", self.alpha, low=0.0, low_open=True)
        beta = finite_number("beta", self.beta, low=0.0)
        top_k = None if self.top_k is None else positive_int("top_k", self.top_k)
        return self._fit_weights(data, lambda x: _walk_weights(x, alpha, beta, top_k))


def _walk_weights(
    x: sp.csr_matrix, alpha: float, beta: float, top_k: int | None
) -> np.ndarray | sp.csr_matrix:
    """``W`` on the active items of binary ``x``: dense, or CSR pruned to ``top_k`` per row."""
    n = x.shape[1]
    user_degree = np.asarray(x.sum(axis=1)).ravel()
    item_degree = np.asarray(x.sum(axis=0)).ravel()  # >= 1: the items are active
    # Users with no positive have no outgoing walk; 0 ** -alpha would be inf.
    user_weight = np.zeros_like(user_degree)
    np.power(user_degree, -alpha, out=user_weight, where=user_degree > 0)
    walk_to_items = sp.diags(user_weight) @ x  # P_ui^alpha
    row_scale = item_degree**-alpha  # P_iu^alpha = diag(row_scale) X'
    column_scale = item_degree**-beta  # the popularity penalty, pop(j)^-beta
    block = max(1, _BLOCK_BYTES // (20 * max(n, 1)))
    if top_k is None:
        # The dense float32 W, beside a block of rows (float64 and its sparse product).
        needed = 4 * n * n + 20 * n * min(block, n)
        check_dense_fit("RP3BetaRecommender(top_k=None)", n, needed)
    to_users = x.T.tocsr()
    pieces = []
    dense = None if top_k is not None else np.empty((n, n), np.float32)
    for first in range(0, n, block):
        last = min(n, first + block)
        rows = (to_users[first:last] @ walk_to_items).toarray()
        rows *= row_scale[first:last, None]
        rows *= column_scale[None, :]
        rows[np.arange(last - first), np.arange(first, last)] = 0.0
        if dense is not None:
            dense[first:last] = rows
        else:
            pieces.append(top_k_per_row(rows, top_k))
    return dense if dense is not None else _stack(pieces, n)


def _stack(pieces: list[sp.csr_matrix], n: int) -> sp.csr_matrix:
    if not pieces:
        return sp.csr_matrix((n, n), dtype=np.float32)
    out = sp.vstack(pieces, format="csr", dtype=np.float32)
    out.sort_indices()
    return out
