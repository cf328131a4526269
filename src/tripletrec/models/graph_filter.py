"""A training-free graph filter on the normalised user-item graph (GF-CF, ChebyCF).

With ``R`` the binary users x items training matrix, ``d_u`` and ``d_i`` its row and
column sums, ``Rn = D_u^-1/2 R D_i^-1/2`` and ``P = Rn' Rn`` (the normalised item
co-occurrences, eigenvalues ``lambda`` in [0, 1]), a graph filter scores a user's history
row ``r`` as ``r h(P)`` for a transfer function ``h`` of the eigenvalues.

GF-CF (Shen et al., "How Powerful is Graph Convolution for Recommendation?", CIKM 2021)
takes ``h(lambda) = lambda`` plus an *ideal* low-pass term, the projection on ``V_k``,
the top ``k`` right singular vectors of ``Rn``:
``r P + w ((r D_i^-1/2) V_k' V_k) D_i^1/2``. ChebyCF (Kim et al., "Graph Spectral
Filtering with Chebyshev Interpolation for Recommendation", SIGIR 2025) takes a
*plateau* ``h`` (:func:`plateau`: flat around ``lambda = 1/2``, steeper than ``lambda``
near 0 and 1) applied by a Chebyshev polynomial of degree 8 (eight sparse products per
score), adds the ideal term on the top 512 vectors, and normalises the whole filter by
item degree: ``r D_i^-b`` in, ``D_i^b`` out.

This module applies ``h`` through the SVD the ideal term needs anyway: exactly on the
top ``k`` eigenvalues and by its slope at 0 on the others (all below ``sigma_k^2``):
``h(P) ~= phi P + V_k' diag(h(sigma^2) - phi sigma^2) V_k``, ``phi = h'(0)``. So a
score costs one sparse product ``(r Rn') Rn`` and a rank-``k`` product, as GF-CF's.
On Gowalla's validation split this scored as the degree-8 polynomial
(``benchmarks/studies/graph_filter.py``). Nothing is trained: the fit is one sparse
normalisation and one seeded truncated SVD (ARPACK, or a randomized range finder), whose
cost grows with the positives times ``k`` and the items times ``k``, plus, for the
degree exponent's choice, a cheaper one on an inner split
(:mod:`~tripletrec.models.graph_filter_choice`); no items x items matrix is ever formed,
dense or sparse.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from tripletrec._checks import finite_number, one_of, positive_int, random_seed
from tripletrec.data.interactions import Interactions
from tripletrec.exceptions import TripletrecError
from tripletrec.models.base import RecommenderBase
from tripletrec.models.capabilities import Capabilities
from tripletrec.models.graph_filter_choice import chosen_degree_exponent
from tripletrec.models.score_terms import ScoreTerms
from tripletrec.models.spectral import (
    degree_powers,
    item_degrees,
    normalize,
    plateau,
    top_singular_vectors,
)

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
#: ... and on at most this many positives (Gowalla's train + valid hold 1.03 M): ARPACK's
#: time grows with positives x k x its iterations, and on the 5 M-row synthetic set's
#: validation split (3.2 M positives, 50,000 items, k 512) it took several times the
#: randomized solver's time for the same ranking (``docs/scaling.md``).
ARPACK_MAX_POSITIVES = 2_000_000
#: ``n_components="auto"``: this many singular vectors on catalogues of at most
#: :data:`ARPACK_MAX_ITEMS` items (512 ranked above 256 and 384 on Gowalla's validation
#: split), :data:`LARGE_CATALOGUE_COMPONENTS` above, where the randomized solver's items x
#: (k + 64) float64 arrays and the stored items x k vectors grow with the catalogue (256
#: is the setting ``benchmarks/results/scale_end_to_end.md`` measured at 200,000 items).
AUTO_COMPONENTS = 512
LARGE_CATALOGUE_COMPONENTS = 256
#: ``degree_exponent=None``: GF-CF's normalisation, none on the linear filter and
#: ``D_i^-1/2`` in, ``D_i^1/2`` out on the ideal term (the files saved before the
#: parameter existed score so).
GF_CF_EXPONENTS = (0.0, 0.5)

#: The fitted attributes, dropped together when a fit is refused half-way.
_FITTED = (
    "seen_",
    "normalized_",
    "components_",
    "singular_values_",
    "n_components_",
    "degree_exponent_",
    "degree_exponent_scores_",
)


class GraphFilterRecommender(RecommenderBase):
    """Training-free graph filter: a plateau filter of the normalised item-item graph plus
    an ideal low-pass term (ChebyCF's filter at GF-CF's cost).

    ``Rn = D_u^-1/2 R D_i^-1/2`` (``R`` the binary training positives, ``D_u``, ``D_i`` the
    users' and items' numbers of positives), ``P = Rn' Rn``, ``V_k`` the top ``k`` right
    singular vectors of ``Rn`` and ``sigma`` their singular values. With
    ``b = degree_exponent``, ``phi = flatness``, ``h`` the :func:`plateau` of ``phi`` and
    ``w = low_pass_weight``, a user (or a new user's history) ``r`` scores
    ``(phi s P + s V_k' diag(h(sigma^2) - phi sigma^2 + w) V_k) D_i^b``, ``s = r D_i^-b``:
    the filter ``h(P)``, exact on the top ``k`` eigenvalues and linear below them, plus
    ``w`` times the projection on ``V_k`` (module docstring). ``flatness=1`` and
    ``degree_exponent=None`` give GF-CF exactly.

    Use it where the catalogue is too large for :class:`~tripletrec.EASERecommender` (whose
    inverse costs items^3 time and 4 bytes per item pair): its fit costs one truncated
    SVD, linear in the positives and the items for a fixed ``k``, and, with
    ``degree_exponent="auto"``, a cheaper one on an inner split (figures:
    ``benchmarks/results/graph_filter.md``); it scores new users' histories exactly, and each
    score is a sum over the history (``explain`` is exact). Items and users without
    positives score and add 0.

    Parameters
    ----------
    n_components : int or "auto", default "auto"
        ``k``: singular vectors on which ``h`` is exact and the ideal term projects
        (>= 1). ``"auto"`` is :data:`AUTO_COMPONENTS` (512, ChebyCF's setting on
        Gowalla, which ranked above 256 and 384 on its validation split:
        ``benchmarks/studies/graph_filter.py``) on catalogues of at most
        :data:`ARPACK_MAX_ITEMS` items and :data:`LARGE_CATALOGUE_COMPONENTS` above.
        Clamped to ``min(active users, active items) - 1``, the most a truncated SVD can
        return (``n_components_`` records the value used; 0 leaves ``phi P`` alone).
    low_pass_weight : float, default 0.2
        Weight of the ideal low-pass term (>= 0). 0.2 is ChebyCF's setting on Gowalla
        and was chosen on its validation split.
    degree_exponent : float, "auto" or None, default "auto"
        ``b``: the history is divided by the items' degrees to this power and the scores
        multiplied by them (>= 0; 0: no normalisation), which lowers the weight of
        popular items in the history and raises their scores. ``"auto"`` chooses it from
        :data:`~tripletrec.models.graph_filter_choice.DEGREE_EXPONENT_GRID` on an inner
        split of the training positives
        (:func:`~tripletrec.models.graph_filter_choice.chosen_degree_exponent`): the best
        value ranged from 0 to 0.35 over the validation splits measured, each a clear
        loss elsewhere. None is GF-CF's normalisation (:data:`GF_CF_EXPONENTS`).
    flatness : float, default 1.5
        ``phi``: the exponent of the :func:`plateau` (> 0): 1 is the linear filter
        ``h(lambda) = lambda`` (GF-CF's), larger values flatten ``h`` around 1/2. 1.5
        is ChebyCF's setting on Gowalla and was chosen on its validation split.
    solver : {"auto", "arpack", "randomized"}, default "auto"
        The truncated SVD: ``"arpack"`` is ``scipy.sparse.linalg.svds`` (the exact top
        ``k``, as published); ``"randomized"`` a randomized range finder on ``Rn' Rn``
        (``k`` + 64 Gaussian columns, two power iterations, in float64; memory grows with
        items, not users), whose vectors are close to but not exactly the leading ones
        (both on Gowalla's validation split: ``benchmarks/studies/graph_filter.py``).
        ``"auto"`` is the exact one on
        catalogues of at most :data:`ARPACK_MAX_ITEMS` items and
        :data:`ARPACK_MAX_POSITIVES` positives, and the randomized one beyond, where
        ARPACK's time and memory grow out of reach.
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
    degree_exponent_ : float or None
        ``degree_exponent`` with ``"auto"`` resolved.
    degree_exponent_scores_ : list of float
        With ``"auto"``: the inner split's NDCG@10 of each exponent of the grid (empty
        where the split left nothing to judge by); otherwise empty.
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
        n_components: int | Literal["auto"] = "auto",
        low_pass_weight: float = 0.2,
        degree_exponent: float | Literal["auto"] | None = "auto",
        flatness: float = 1.5,
        solver: str = "auto",
        random_state: int | None = 0,
    ) -> None:
        self.n_components = n_components
        self.low_pass_weight = low_pass_weight
        self.degree_exponent = degree_exponent
        self.flatness = flatness
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
            If ``n_components`` is neither "auto" nor a positive integer,
            ``low_pass_weight`` not a finite number >= 0, ``degree_exponent`` neither
            "auto", None nor a finite number >= 0, ``flatness`` not a finite number > 0,
            ``solver`` not one of :data:`SOLVERS` or ``random_state`` neither None nor
            a seed.
        """
        if self.n_components != "auto":
            positive_int("n_components", self.n_components)
        self._filter_settings(self.degree_exponent)
        solver = one_of("solver", self.solver, SOLVERS)
        seed = random_seed("random_state", self.random_state)
        start = time.perf_counter()
        for name in _FITTED:
            self.__dict__.pop(name, None)
        self._drop_caches()
        try:
            seen = self._set_training_data(data)
            normalized = normalize(seen)
            large = seen.shape[1] > ARPACK_MAX_ITEMS
            if solver == "auto":
                exact = not large and seen.nnz <= ARPACK_MAX_POSITIVES
                solver = "arpack" if exact else "randomized"
            k = self.n_components
            if k == "auto":
                k = LARGE_CATALOGUE_COMPONENTS if large else AUTO_COMPONENTS
            components, values = top_singular_vectors(normalized, k, seed, solver)
            exponent, scores = self.degree_exponent, []
            if exponent == "auto":
                exponent, scores = chosen_degree_exponent(seen, self._inner_model, seed)
        except BaseException:
            for name in _FITTED:
                self.__dict__.pop(name, None)
            raise
        self.normalized_, self.components_ = normalized, components
        self.singular_values_, self.n_components_ = values, len(values)
        self._set_degree_exponent(exponent)
        self.degree_exponent_scores_ = scores
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _inner_model(self, **settings: Any) -> GraphFilterRecommender:
        """An unfitted filter with this one's settings but ``settings``: the inner fits of
        ``degree_exponent="auto"``."""
        return GraphFilterRecommender(**{**self.get_params(), **settings})

    def _set_degree_exponent(self, exponent: float | None) -> None:
        """Score with ``exponent`` (a resolved ``degree_exponent``) from now on."""
        self.degree_exponent_ = None if exponent is None else float(exponent)
        self._drop_caches()

    def _filter_settings(self, exponent: Any) -> tuple[float, float, float]:
        """The degree exponents of the linear filter and of the rank-``k`` term for
        ``exponent`` (``degree_exponent`` or its fitted value), and ``phi``, checked."""
        finite_number("low_pass_weight", self.low_pass_weight, low=0.0)
        flatness = finite_number("flatness", self.flatness, low=0.0, low_open=True)
        if exponent == "auto":
            return 0.0, 0.0, flatness  # checked only: resolved by the fit
        if exponent is None:
            return (*GF_CF_EXPONENTS, flatness)
        exponent = finite_number("degree_exponent", exponent, low=0.0)
        return exponent, exponent, flatness

    # ------------------------------------------------------------------ scoring
    def _drop_caches(self) -> None:
        for name in ("_cache", "_projection"):
            self.__dict__.pop(name, None)

    def _parts(self) -> dict[str, Any]:
        """What scoring needs, derived from the fitted state once: ``Rn'`` (CSR), the
        linear filter's item weights in (``D_i^-b``) and out (``phi D_i^b``), and the
        rank-``k`` term's ``V_k' D_i^-b`` (in) and ``diag(h(sigma^2) - phi sigma^2 + w)
        V_k D_i^b`` (out)."""
        cache = self.__dict__.get("_cache")
        if cache is None or cache["of"] is not self.normalized_:
            settings = self._filter_settings(self.degree_exponent_)
            linear_exponent, spectral_exponent, flatness = settings
            degree = item_degrees(self.normalized_)
            eigenvalues = self.singular_values_.astype(np.float64) ** 2
            shaped = plateau(eigenvalues, flatness) - flatness * eigenvalues
            spectral = shaped + float(self.low_pass_weight)
            into = degree_powers(degree, -spectral_exponent)
            out = degree_powers(degree, spectral_exponent)
            cache = {
                "of": self.normalized_,
                "transposed": self.normalized_.T.tocsr(),
                "linear_in": degree_powers(degree, -linear_exponent).astype(np.float32),
                "linear_out": (flatness * degree_powers(degree, linear_exponent)).astype(
                    np.float32
                ),
                "into": np.ascontiguousarray((self.components_ * into).T, dtype=np.float32),
                "out": np.ascontiguousarray(
                    self.components_ * spectral[:, None].astype(np.float32) * out,
                    dtype=np.float32,
                ),
            }
            self._cache = cache
        return cache

    def _linear(self, x: sp.csr_matrix) -> sp.csr_matrix:
        """``(x D_i^-b Rn') Rn``, sparse (its ``phi D_i^b`` columns factor is applied
        densely by the callers)."""
        parts = self._parts()
        return (x.multiply(parts["linear_in"]).tocsr() @ parts["transposed"]) @ self.normalized_

    def _scores(self, rows: sp.csr_matrix, item_idx: np.ndarray | None) -> np.ndarray:
        """Scores of binary history rows, float32, columns ``item_idx`` (all when None)."""
        parts = self._parts()
        x = sp.csr_matrix(rows, dtype=np.float32)
        columns = slice(None) if item_idx is None else item_idx
        linear_out = parts["linear_out"][columns]
        out = np.empty((x.shape[0], len(linear_out)), np.float32)
        for first in range(0, x.shape[0], _LINEAR_BLOCK_USERS):
            block = slice(first, first + _LINEAR_BLOCK_USERS)
            linear = self._linear(x[block])
            out[block] = (linear if item_idx is None else linear[:, item_idx]).toarray()
        out *= linear_out
        if self.n_components_:
            coordinates = np.asarray(x @ parts["into"], dtype=np.float32)  # (n, k)
            out += coordinates @ parts["out"][:, columns]
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
        """The rank-``k`` term's item side (``out`` of :meth:`_parts`, transposed): that
        term is an inner product with these."""
        return self._parts()["out"].T

    def _score_terms(self, user_idx: np.ndarray) -> ScoreTerms:
        """The rank-``k`` term as queries ``(r D_i^-b) V_k'``, the linear filter as the
        remainder, and its projection ``(r D_i^-b Rn') (Rn phi D_i^b out')`` through a
        users x k matrix computed once: a product over the users who share an item with
        ``r`` instead of one over every item the filter reaches."""
        parts = self._parts()
        x = self.seen_[user_idx].astype(np.float32)
        users = x.multiply(parts["linear_in"]).tocsr() @ parts["transposed"]  # r D^-b Rn'
        rest = np.asarray((users @ self.normalized_).toarray(), dtype=np.float32)
        rest *= parts["linear_out"]
        queries = np.asarray(x @ parts["into"], dtype=np.float32)
        projection = self.__dict__.get("_projection")
        if projection is None or projection[0] is not self.normalized_:
            # Rn phi D_i^b out': n_users x k floats, built on the first retrieval.
            items = parts["out"].T * parts["linear_out"][:, None]
            projection = (self.normalized_, np.asarray(self.normalized_ @ items))
            self._projection = projection
        return ScoreTerms(queries, rest, np.asarray(users @ projection[1]))

    def _explain_contributions(self, history: np.ndarray, item_idx: int) -> tuple[np.ndarray, bool]:
        """What each history item adds to the score of ``item_idx``: its entry of ``Rn' Rn``
        (degree-weighted) plus its term of the rank-``k`` product; they sum to the score
        exactly."""
        parts = self._parts()
        history = np.asarray(history, dtype=np.int64)
        transposed = parts["transposed"]
        linear = (transposed[history] @ transposed[[item_idx]].T).toarray().ravel()
        weights = parts["linear_in"][history].astype(np.float64)
        out = linear.astype(np.float64) * weights * float(parts["linear_out"][item_idx])
        if self.n_components_:
            out += (parts["into"][history] @ parts["out"][:, item_idx]).astype(np.float64)
        return out, True

    def _item_vectors(self) -> np.ndarray:
        """Rows of ``V_k' S_k``: their dot products are the rank-``k`` approximation of
        ``Rn' Rn``."""
        return np.ascontiguousarray((self.components_ * self.singular_values_[:, None]).T)

    # ------------------------------------------------------------------ persistence
    def _fit_summary(self) -> dict:
        return {
            "fit_seconds": self.fit_seconds_,
            "n_components": self.n_components_,
            "degree_exponent": self.degree_exponent_,
            "degree_exponent_scores": self.degree_exponent_scores_,
        }

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
        # Files saved before "auto" existed hold the exponent in their parameters.
        exponent = fit_summary.get("degree_exponent", self.degree_exponent)
        if exponent is not None and not isinstance(exponent, (int, float)):
            raise ValueError(f"degree_exponent {exponent!r} is not a number")
        self._set_degree_exponent(exponent)
        self.degree_exponent_scores_ = list(fit_summary.get("degree_exponent_scores", []))
        self.fit_seconds_ = float(fit_summary.get("fit_seconds", float("nan")))
