"""GF-CF: a training-free graph filter on the normalised user-item graph.

Shen, Wu, Zhang, Zhang, Letaief and Li, "How Powerful is Graph Convolution for
Recommendation?" (CIKM 2021). With ``R`` the binary users x items training matrix,
``d_u`` and ``d_i`` its row and column sums and ``Rn = D_u^-1/2 R D_i^-1/2``, a user with
history row ``r`` scores

``s = r Rn' Rn + w ((r D_i^-1/2) V_k' V_k) D_i^1/2``,

the sum of a linear low-pass filter (``P = Rn' Rn``, the normalised item co-occurrences)
and an *ideal* low-pass filter: the projection on ``V_k``, the top ``k`` right singular
vectors of ``Rn``. Nothing is trained: the fit is one sparse normalisation and one
seeded truncated SVD (ARPACK, or a randomized range finder), whose cost grows with the
positives times ``k`` and the items times ``k``; no items x items matrix is ever formed,
dense or sparse. Scores are computed by blocks of users as ``(r Rn') Rn`` plus a
rank-``k`` product.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from tripletrec._checks import finite_number, one_of, positive_int, random_seed
from tripletrec.data.interactions import Interactions
from tripletrec.exceptions import TripletrecError
from tripletrec.models.base import RecommenderBase
from tripletrec.models.capabilities import Capabilities
from tripletrec.models.score_terms import ScoreTerms

#: Extra columns of the randomized range finder's test matrix beyond ``k``.
OVERSAMPLING = 64
#: Power iterations of the randomized range finder.
POWER_ITERATIONS = 2
#: Users scored per sparse product: bounds the ``(x Rn') Rn`` intermediate (about 16k
#: entries per user on Gowalla).
_LINEAR_BLOCK_USERS = 512
#: The SVD solvers.
SOLVERS = ("auto", "arpack", "randomized")
#: ``solver="auto"`` is ARPACK on catalogues of at most this many items (every one the
#: default was validated on, Gowalla's 41k included) and the randomized solver above: at
#: 200,000 items ARPACK's top 256 took 871 s and 8.1 GB on 2 cores (its Lanczos basis
#: and left vectors), the randomized one's cost grows with positives x (k + 64).
ARPACK_MAX_ITEMS = 50_000
#: Columns of the randomized solver's basis multiplied at once: bounds its users x
#: columns temporary (512 MB at a million users).
_GRAM_CHUNK = 64

#: The fitted attributes, dropped together when a fit is refused half-way.
_FITTED = ("seen_", "normalized_", "components_", "singular_values_", "n_components_")


class GraphFilterRecommender(RecommenderBase):
    """Training-free graph filter: normalised item-item filter plus ideal low-pass (GF-CF).

    ``Rn = D_u^-1/2 R D_i^-1/2`` (``R`` the binary training positives, ``D_u``, ``D_i`` the
    users' and items' numbers of positives), ``V_k`` the top ``k`` right singular vectors
    of ``Rn``. A user (or a new user's history) ``r`` scores
    ``r Rn' Rn + low_pass_weight * ((r D_i^-1/2) V_k' V_k) D_i^1/2``.

    Use it where the catalogue is too large for :class:`~tripletrec.EASERecommender` (whose
    inverse costs items^3 time and 12 bytes per item pair): its fit costs one truncated
    SVD, linear in the positives and the items for a fixed ``k`` (about 20 s and 1 GB at
    Gowalla's 41k items, on one core), it scores new users' histories exactly, and each
    score is a sum over the history (``explain`` is exact). Items and users without
    positives score and add 0.

    Parameters
    ----------
    n_components : int, default 256
        ``k``: singular vectors in the ideal low-pass filter (>= 1). Clamped to
        ``min(active users, active items) - 1``, the most a truncated SVD can return
        (``n_components_`` records the value used; 0 leaves the linear filter alone). 256
        is the published setting on Gowalla.
    low_pass_weight : float, default 0.3
        Weight of the ideal low-pass term beside the linear filter (>= 0): 0 is the
        linear filter ``Rn' Rn`` alone. 0.3 is the published setting.
    solver : {"auto", "arpack", "randomized"}, default "auto"
        The truncated SVD: ``"arpack"`` is ``scipy.sparse.linalg.svds`` (the exact top
        ``k``, as published); ``"randomized"`` a randomized range finder on ``Rn' Rn``
        (``k`` + 64 Gaussian columns, two power iterations, in float64; memory grows with
        items, not users), whose vectors are close to but not exactly the leading ones.
        On Gowalla's training split the randomized one fits in about a third of the time
        and scored slightly higher on the validation split, but lower on anime-5k's
        (``benchmarks/studies/graph_filter.py``). ``"auto"`` is the exact one on
        catalogues of at most :data:`ARPACK_MAX_ITEMS` items and the randomized one
        beyond, where ARPACK's time and memory grow out of reach.
    random_state : int, optional, default 0
        Seed of the SVD's random draws (test matrix or start vector): the same data and
        seed give the same model, bitwise (on the same machine and thread count). None
        draws a fresh one.

    Attributes
    ----------
    normalized_ : scipy.sparse.csr_matrix of float32, shape (n_users, n_items)
        ``Rn``.
    components_ : numpy.ndarray of float32, shape (n_components_, n_items)
        ``V_k``, by decreasing singular value.
    singular_values_ : numpy.ndarray of float32, shape (n_components_,)
        The top singular values of ``Rn``, decreasing (the largest is 1).
    n_components_ : int
        ``k`` after the clamp.
    fit_seconds_ : float
        Wall time of the last ``fit``.

    Notes
    -----
    ``similar_items`` ranks items by the cosine of their rows of ``V_k' S_k`` (``S_k`` the
    singular values): the rank-``k`` approximation of their normalised co-occurrences
    ``Rn' Rn``.
    """

    def __init__(
        self,
        n_components: int = 256,
        low_pass_weight: float = 0.3,
        solver: str = "auto",
        random_state: int | None = 0,
    ) -> None:
        self.n_components = n_components
        self.low_pass_weight = low_pass_weight
        self.solver = solver
        self.random_state = random_state

    def capabilities(self) -> Capabilities:
        """A history is scored as a trained user's row, and each score is a sum over it."""
        return Capabilities(history_scoring=True, explain=True)

    # ------------------------------------------------------------------ fitting
    def fit(self, data: Interactions | sp.spmatrix) -> GraphFilterRecommender:
        """Normalise the training positives of ``data`` and take their truncated SVD.

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
            If ``n_components`` is not a positive integer, ``low_pass_weight`` not a
            finite number >= 0, ``solver`` not one of :data:`SOLVERS` or
            ``random_state`` neither None nor a seed.
        """
        k = positive_int("n_components", self.n_components)
        finite_number("low_pass_weight", self.low_pass_weight, low=0.0)
        solver = one_of("solver", self.solver, SOLVERS)
        seed = random_seed("random_state", self.random_state)
        start = time.perf_counter()
        for name in _FITTED:
            self.__dict__.pop(name, None)
        self._drop_caches()
        try:
            seen = self._set_training_data(data)
            normalized = normalize(seen)
            if solver == "auto":
                solver = "arpack" if seen.shape[1] <= ARPACK_MAX_ITEMS else "randomized"
            components, values = top_singular_vectors(normalized, k, seed, solver)
        except BaseException:
            for name in _FITTED:
                self.__dict__.pop(name, None)
            raise
        self.normalized_, self.components_ = normalized, components
        self.singular_values_, self.n_components_ = values, len(values)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    # ------------------------------------------------------------------ scoring
    def _drop_caches(self) -> None:
        for name in ("_cache", "_projection"):
            self.__dict__.pop(name, None)

    def _parts(self) -> dict[str, Any]:
        """What scoring needs, derived from the fitted state once: ``Rn'`` (CSR), the
        item degrees, ``V_k' D_i^-1/2`` (in) and ``V_k D_i^1/2`` (out)."""
        cache = self.__dict__.get("_cache")
        if cache is None or cache["of"] is not self.normalized_:
            degree = item_degrees(self.normalized_)
            inverse_root = np.zeros(len(degree), np.float32)
            np.divide(1.0, np.sqrt(degree), out=inverse_root, where=degree > 0)
            components = self.components_
            cache = {
                "of": self.normalized_,
                "transposed": self.normalized_.T.tocsr(),
                "inverse_root": inverse_root,
                "into": np.ascontiguousarray((components * inverse_root).T),
                "out": np.ascontiguousarray(components * np.sqrt(degree)),
            }
            self._cache = cache
        return cache

    def _scores(self, rows: sp.csr_matrix, item_idx: np.ndarray | None) -> np.ndarray:
        """Scores of binary history rows, float32, columns ``item_idx`` (all when None)."""
        parts = self._parts()
        x = sp.csr_matrix(rows, dtype=np.float32)
        n_columns = self.n_items_ if item_idx is None else len(item_idx)
        out = np.empty((x.shape[0], n_columns), np.float32)
        for first in range(0, x.shape[0], _LINEAR_BLOCK_USERS):
            block = slice(first, first + _LINEAR_BLOCK_USERS)
            linear = (x[block] @ parts["transposed"]) @ self.normalized_  # (x Rn') Rn
            out[block] = (linear if item_idx is None else linear[:, item_idx]).toarray()
        weight = np.float32(self.low_pass_weight)
        if self.n_components_ and weight != 0:
            coordinates = np.asarray(x @ parts["into"], dtype=np.float32)  # (n, k)
            outward = parts["out"] if item_idx is None else parts["out"][:, item_idx]
            coordinates *= weight
            out += coordinates @ outward
        return out

    def _score_block(self, user_idx: np.ndarray, item_idx: np.ndarray | None) -> np.ndarray:
        return self._scores(self.seen_[user_idx], item_idx)

    def _score_histories(
        self,
        rows: np.ndarray,
        items: np.ndarray,
        n_rows: int,
        random_state: int,
        offsets: Any = None,
    ) -> np.ndarray:
        """A history is the binary row of a user, scored with no fitting (``random_state``
        plays no part)."""
        if offsets is not None:
            raise TripletrecError(f"{type(self).__name__} takes no user features")
        x = sp.csr_matrix(
            (np.ones(len(rows), np.float32), (rows, items)), shape=(n_rows, self.n_items_)
        )
        x.sum_duplicates()
        x.data[:] = 1.0  # an item listed twice in a history counts once, as in training
        return self._scores(x, None)

    def _term_items(self) -> np.ndarray:
        """``(V_k D_i^1/2)'``: the low-pass term is an inner product with these."""
        return self._parts()["out"].T

    def _score_terms(self, user_idx: np.ndarray) -> ScoreTerms:
        """The low-pass term as queries ``w (r D_i^-1/2) V_k'``, the linear filter as the
        remainder, and its projection ``(r Rn') (Rn D_i^1/2 V_k')`` through a users x k
        matrix computed once: a product over the users who share an item with ``r``
        instead of one over every item the filter reaches."""
        parts = self._parts()
        x = self.seen_[user_idx].astype(np.float32)
        users = x @ parts["transposed"]  # r Rn'
        rest = np.asarray((users @ self.normalized_).toarray(), dtype=np.float32)
        weight = np.float32(self.low_pass_weight if self.n_components_ else 0.0)
        queries = np.asarray(x @ parts["into"], dtype=np.float32) * weight
        projection = self.__dict__.get("_projection")
        if projection is None or projection[0] is not self.normalized_:
            # Rn D_i^1/2 V_k': n_users x k floats, built on the first retrieval.
            projection = (self.normalized_, np.asarray(self.normalized_ @ parts["out"].T))
            self._projection = projection
        return ScoreTerms(queries, rest, np.asarray(users @ projection[1]))

    def _explain_contributions(self, history: np.ndarray, item_idx: int) -> tuple[np.ndarray, bool]:
        """What each history item adds to the score of ``item_idx``: its entry of ``Rn' Rn``
        plus its term of the low-pass product; they sum to the score exactly."""
        parts = self._parts()
        history = np.asarray(history, dtype=np.int64)
        transposed = parts["transposed"]
        linear = (transposed[history] @ transposed[[item_idx]].T).toarray().ravel()
        out = linear.astype(np.float64)
        if self.n_components_:
            low = parts["into"][history] @ parts["out"][:, item_idx]
            out += float(self.low_pass_weight) * low.astype(np.float64)
        return out, True

    def _item_vectors(self) -> np.ndarray:
        """Rows of ``V_k' S_k``: their dot products are the rank-``k`` approximation of
        ``Rn' Rn``."""
        return np.ascontiguousarray((self.components_ * self.singular_values_[:, None]).T)

    # ------------------------------------------------------------------ persistence
    def _fit_summary(self) -> dict:
        return {"fit_seconds": self.fit_seconds_, "n_components": self.n_components_}

    def _model_state(self) -> dict[str, np.ndarray]:
        normalized = self.normalized_
        return {
            "normalized.indptr": normalized.indptr.astype(np.int64),
            "normalized.indices": normalized.indices.astype(np.int64),
            "normalized.data": normalized.data.astype(np.float32),
            "components": np.ascontiguousarray(self.components_, dtype=np.float32),
            "singular_values": self.singular_values_.astype(np.float32),
        }

    def _load_model_state(self, state: dict[str, np.ndarray], fit_summary: dict) -> None:
        n_users, n_items = self.n_users_, self.n_items_
        indptr, indices = state["normalized.indptr"], state["normalized.indices"]
        data = np.asarray(state["normalized.data"], dtype=np.float32)
        if len(indptr) != n_users + 1 or len(indices) != len(data) or indptr[-1] != len(data):
            raise ValueError("the normalised matrix does not fit the id maps")
        if len(indices) and (indices.min() < 0 or indices.max() >= n_items):
            raise ValueError("the normalised matrix refers to items outside the item map")
        components = np.asarray(state["components"], dtype=np.float32)
        values = np.asarray(state["singular_values"], dtype=np.float32)
        if (
            components.ndim != 2
            or components.shape[1] != n_items
            or values.shape != (components.shape[0],)
        ):
            raise ValueError("the singular vectors do not fit the item map")
        self._drop_caches()
        self.normalized_ = sp.csr_matrix((data, indices, indptr), shape=(n_users, n_items))
        self.components_, self.singular_values_ = components, values
        self.n_components_ = len(values)
        self.fit_seconds_ = float(fit_summary.get("fit_seconds", float("nan")))


def item_degrees(matrix: sp.csr_matrix) -> np.ndarray:
    """Stored entries per column of ``matrix`` (the items' positives), float64."""
    return np.bincount(matrix.indices, minlength=matrix.shape[1]).astype(np.float64)


def normalize(seen: sp.csr_matrix) -> sp.csr_matrix:
    """``D_u^-1/2 R D_i^-1/2`` of the binary ``seen`` as float32 CSR (degrees 0 give 0)."""
    seen = sp.csr_matrix(seen, dtype=np.float64)
    seen.data[:] = 1.0
    user_degree = np.diff(seen.indptr).astype(np.float64)
    item_degree = item_degrees(seen)
    users = np.zeros_like(user_degree)
    np.power(user_degree, -0.5, out=users, where=user_degree > 0)
    items = np.zeros_like(item_degree)
    np.power(item_degree, -0.5, out=items, where=item_degree > 0)
    out = seen.copy()
    out.data *= np.repeat(users, np.diff(seen.indptr)) * items[seen.indices]
    out = sp.csr_matrix(out, dtype=np.float32)
    out.sort_indices()
    return out


def top_singular_vectors(
    matrix: sp.csr_matrix, k: int, seed: int | None, solver: str = "arpack"
) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` right singular vectors (rows, float32) and values (decreasing) of
    ``matrix``, computed in float64; ``k`` clamped to ``min(active rows, active columns)
    - 1`` (0: empty arrays). ``solver``: ``"arpack"`` (``svds`` from a start vector drawn
    from ``seed``) or ``"randomized"`` (:func:`randomized_svd`)."""
    active_rows = int(np.count_nonzero(np.diff(matrix.indptr)))
    active_columns = int(np.count_nonzero(item_degrees(matrix)))
    k = min(k, min(active_rows, active_columns) - 1)
    if k < 1:
        return np.zeros((0, matrix.shape[1]), np.float32), np.zeros(0, np.float32)
    matrix = sp.csr_matrix(matrix, dtype=np.float64)
    rng = np.random.default_rng(seed)
    if solver == "arpack":
        start = rng.standard_normal(min(matrix.shape))
        # The right vectors only: the left ones are users x k.
        _, values, vectors = svds(
            matrix, k=k, v0=start, solver="arpack", return_singular_vectors="vh"
        )
        order = np.argsort(-values, kind="stable")
        values, vectors = values[order], vectors[order]
    else:
        values, vectors = randomized_svd(matrix, k, rng)
    # A singular vector's sign is arbitrary: fix it (largest entry positive) so that the
    # stored state does not depend on it. The scores never do.
    signs = np.sign(vectors[np.arange(k), np.abs(vectors).argmax(axis=1)])
    vectors *= np.where(signs == 0, 1, signs)[:, None]
    return np.ascontiguousarray(vectors, dtype=np.float32), values.astype(np.float32)


def randomized_svd(
    matrix: sp.csr_matrix, k: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` singular values and right vectors of ``matrix`` by a randomized range
    finder (Halko, Martinsson and Tropp 2011) on its Gram matrix ``G = matrix' matrix``:
    a Gaussian test matrix of ``k +`` :data:`OVERSAMPLING` columns drawn from ``rng``,
    ``G`` applied :data:`POWER_ITERATIONS` ``+ 1`` times with QR in between (the subspace
    of the usual finder with that many power iterations), then the eigenvectors of ``G``
    projected on it (Rayleigh-Ritz). Every array is items x (k + p) or smaller, so its
    memory does not grow with users; each product costs ``O(nnz (k + p))``."""
    width = min(k + OVERSAMPLING, min(matrix.shape))
    transposed = matrix.T.tocsr()

    def gram(block: np.ndarray) -> np.ndarray:
        out = np.empty_like(block)
        for start in range(0, block.shape[1], _GRAM_CHUNK):
            columns = slice(start, start + _GRAM_CHUNK)
            out[:, columns] = transposed @ (matrix @ block[:, columns])
        return out

    basis = rng.standard_normal((matrix.shape[1], width))
    for _ in range(POWER_ITERATIONS + 1):
        basis, _ = np.linalg.qr(gram(basis))
    eigenvalues, eigenvectors = np.linalg.eigh(basis.T @ gram(basis))
    order = np.argsort(-eigenvalues, kind="stable")[:k]
    values = np.sqrt(np.clip(eigenvalues[order], 0.0, None))
    return values, np.ascontiguousarray((basis @ eigenvectors[:, order]).T)
