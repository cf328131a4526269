"""EASE: the closed-form item-item linear autoencoder (Steck 2019).

"Embarrassingly Shallow Autoencoders for Sparse Data" (WWW 2019) learns the item-item
matrix ``B`` that best reconstructs the interaction matrix from itself,
``min ||X - X B||^2 + l2 ||B||^2`` subject to ``diag(B) = 0`` (an item may not predict
itself). The solution is closed-form: with ``P = (X'X + l2 I)^-1``,
``B[i, j] = -P[i, j] / P[j, j]`` off the diagonal. A user's scores are ``x_u @ B``.

The ridge shrinks the weights of an item with few positives towards zero in both
directions (what it predicts and what predicts it): ``min_item_positives`` leaves such
items out of the inverse altogether, which costs the cube of the items kept.

Weighting each user's reconstruction error by ``w_u`` (``min sum_u w_u ||x_u - x_u B||^2
+ l2 ||B||^2``) keeps the closed form with ``X' W X`` in place of ``X'X``; with ``w_u`` a
power of the user's number of positives (``user_weight_exponent``), users with long
histories no longer dominate the co-occurrences.

The cost is one dense inverse of an items x items matrix: cubic in the catalogue, and
quadratic in memory (4 bytes per pair of active items at the peak: the float32 Gram matrix
is inverted and turned into ``B`` in place). :class:`EASERecommender`
refuses, in well under a second and before allocating anything large, a catalogue whose
matrices would not fit in the memory available or that the linked LAPACK cannot factorise
without crashing (:mod:`tripletrec.models.dense_limits`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from tripletrec._checks import finite_number, positive_int
from tripletrec.data.interactions import Interactions
from tripletrec.exceptions import ParameterError
from tripletrec.models.base import RecommenderBase
from tripletrec.models.dense_limits import check_dense_fit
from tripletrec.models.item_item import ItemItemMixin

#: Bytes per active item squared at the peak of a fit: the float32 Gram matrix, inverted
#: in place and turned into ``B`` in place.
BYTES_PER_ITEM_PAIR = 4
#: Bound on the sparse intermediate of the Gram matrix (bytes per block of columns).
_GRAM_BLOCK_BYTES = 64 << 20
#: Bytes of the inverse's triangle copied per step when it is mirrored.
_MIRROR_BLOCK_BYTES = 16 << 20


class EASERecommender(ItemItemMixin, RecommenderBase):
    """Embarrassingly shallow autoencoder: closed-form item-item regression (Steck 2019).

    ``G = X'X + l2 I``, ``P = G^-1``, ``B = -P / diag(P)`` column by column, ``diag(B) = 0``;
    scores ``x_u @ B``. Items without a training positive get zero rows and columns in
    ``B`` (``G`` is invertible on them thanks to ``l2 > 0``, and they decouple), so only the
    active items enter the inverse.

    Use it when the catalogue has at most about twenty thousand items: it is often the
    strongest top-of-list model on small and mid-sized catalogues, fits in one linear
    algebra call, has a single hyper-parameter, and scores new users' histories exactly.
    Past that, the cubic inverse, the quadratic memory and the LAPACK rule it out, and
    ``fit`` refuses at once with one :class:`~tripletrec.exceptions.DataError` line rather
    than let the process die: its peak is 4 bytes per pair of active items (a float32
    Gram matrix inverted and turned into ``B`` in place), 6.7 GB at Gowalla's 40,981
    items, and the OpenBLAS that scipy's wheels link crashes (SIGSEGV) in ``spotrf``
    above a catalogue size set by its kernels, with two threads: 26,250 items on AVX-512
    machines (26,100 factorise), 37,000 on AVX2 ones (36,800 factorise). The refusal
    applies 97 % of that (:func:`~tripletrec.models.dense_limits.lapack_max_items`).

    Parameters
    ----------
    l2 : float, default 500.0
        Ridge penalty on ``B`` (> 0). Larger values shrink the item-item weights, which
        leans the ranking towards popular items (usually better AUC); smaller values trust
        co-occurrences more (usually better precision at the top). 500 sits in the middle,
        on a log scale, of the values Steck (2019) reports as best on his data sets and of
        those chosen on validation splits of the bundled data; it is the one parameter to
        tune, on a log grid.
    max_memory_bytes : int, optional
        Memory the fit may use. None (the default) takes 90 % of the memory available when
        ``fit`` starts (``MemAvailable`` on Linux, else ``os.sysconf``; a cgroup's room if
        lower), leaving the rest to the process and to others.
    user_weight_exponent : float, default 0.0
        Each user's positives weigh ``n_u ** -user_weight_exponent`` in the Gram matrix
        (``n_u``: the user's number of positives), rescaled so that all positives weigh as
        much in total as unweighted, which keeps ``l2``'s scale (>= 0). 0 is Steck's EASE;
        0.5 (one over the square root of the history's length) ranked better on
        validation splits of all three bundled data sets and is what
        :class:`~tripletrec.models.hybrid.HybridRecommender` uses
        (``benchmarks/studies/item_item_weighting.py``).
    min_item_positives : int, default 1
        Items with fewer training positives than this get zero rows and columns in ``B``,
        as items with none do, and stay out of the inverse (>= 1). With ``l2`` in the
        tens or more, a handful of co-occurrences barely moves an item's weights from
        zero, while the inverse costs the cube of the items it holds
        (:data:`~tripletrec.models.hybrid.EASE_MIN_ITEM_POSITIVES` says what the default
        recommender uses, and why).

    Attributes
    ----------
    active_items_ : numpy.ndarray of int64
        Indices of the items with at least ``min_item_positives`` training positives.
    weights_ : numpy.ndarray of float32, shape (n_active, n_active)
        ``B`` on the active items: ``weights_[a, b]`` is what liking active item ``a``
        adds to the score of active item ``b``. Zero diagonal.
    fit_seconds_ : float
        Wall time of the last ``fit``.

    Notes
    -----
    The inverse is a Cholesky factorisation in float32 (``G`` is symmetric positive
    definite, and ``l2`` bounds its smallest eigenvalue away from 0): half the time and
    a third of the memory of float64 (``tests/test_item_item.py`` checks it against a
    float64 solve). ``similar_items`` ranks items by the cosine of their rows of ``B``:
    the recommendations each item alone leads to.
    """

    def __init__(
        self,
        l2: float = 500.0,
        max_memory_bytes: int | None = None,
        user_weight_exponent: float = 0.0,
        min_item_positives: int = 1,
    ) -> None:
        self.l2 = l2
        self.max_memory_bytes = max_memory_bytes
        self.user_weight_exponent = user_weight_exponent
        self.min_item_positives = min_item_positives

    def fit(self, data: Interactions | sp.spmatrix) -> EASERecommender:
        """Solve for ``B`` on the training positives of ``data``.

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
            If ``l2`` is not a positive finite number, ``max_memory_bytes`` not a
            positive integer, ``user_weight_exponent`` not a finite number >= 0 or
            ``min_item_positives`` not a positive integer.
        DataError
            If the catalogue's items x items matrices would not fit in memory, or it has
            more active items than the linked LAPACK factorises without crashing.
        """
        l2 = finite_number("l2", self.l2, low=0.0, low_open=True)
        limit = self.max_memory_bytes
        if limit is not None:
            limit = positive_int("max_memory_bytes", limit)
        exponent = finite_number("user_weight_exponent", self.user_weight_exponent, low=0.0)
        least = positive_int("min_item_positives", self.min_item_positives)
        return self._fit_weights(data, lambda x: _ease_weights(x, l2, limit, exponent), least)


def ease_for_each_l2(
    data: Interactions | sp.spmatrix,
    l2_values: Iterable[float],
    user_weight_exponent: float,
    min_item_positives: int = 1,
) -> Iterator[EASERecommender]:
    """EASE fitted on ``data`` for each of ``l2_values`` in turn, every fit from one Gram
    matrix: what a search over ``l2`` needs (the Gram matrix is most of a small fit's
    cost). Each model is yielded before the next is fitted; the shared Gram matrix adds
    its 4 bytes per item pair to each fit's peak, checked like any fit's."""
    gram: np.ndarray | None = None

    def weights_of(x: sp.csr_matrix, l2: float) -> np.ndarray:
        nonlocal gram
        if gram is None:
            n = x.shape[1]
            needed = BYTES_PER_ITEM_PAIR * n * n + ease_peak_bytes(n, x.nnz, x.shape[0])
            check_dense_fit("EASERecommender", n, needed, factorises=np.float32)
            gram = _gram(user_weighted(x, user_weight_exponent))
        return weights_from_gram(gram.copy(), l2)

    for l2 in l2_values:
        model = EASERecommender(
            l2=l2, user_weight_exponent=user_weight_exponent, min_item_positives=min_item_positives
        )
        yield model._fit_weights(data, lambda x, l2=l2: weights_of(x, l2), min_item_positives)


def user_weighted(x: sp.csr_matrix, exponent: float) -> sp.csr_matrix:
    """``x`` with each user's row scaled by ``sqrt(w_u)``, ``w_u = n_u ** -exponent``
    rescaled so that ``sum_u w_u n_u`` is the number of positives: then
    ``x' x`` of the result is ``X' W X``."""
    if exponent == 0.0:
        return x
    lengths = np.diff(x.indptr).astype(np.float64)
    weights = np.zeros_like(lengths)
    has_any = lengths > 0
    weights[has_any] = lengths[has_any] ** -exponent
    weights *= lengths.sum() / max(float(weights @ lengths), np.finfo(np.float64).tiny)
    return sp.csr_matrix(sp.diags(np.sqrt(weights)) @ x)


def ease_peak_bytes(n_items: int, n_positives: int, n_users: int) -> int:
    """Memory an EASE fit on ``n_items`` active items adds at its peak, all copies included.

    Measured (``benchmarks/results/dense_limits.md``): 4 bytes per item pair (the float32
    Gram matrix, which the Cholesky inverse and then ``B`` overwrite) plus transients;
    this bound adds the Gram matrix's block of columns (dense and as a sparse
    product) and three sparse copies of the data (transposed, by columns, user-weighted).
    """
    block = min(n_items, max(1, _GRAM_BLOCK_BYTES // (12 * max(n_items, 1))))
    transients = 20 * n_items * block + 3 * (12 * n_positives + 8 * (n_users + n_items + 1))
    return BYTES_PER_ITEM_PAIR * n_items * n_items + transients


def check_ease_fits(
    model: str,
    seen: sp.spmatrix,
    max_memory_bytes: int | None = None,
    min_item_positives: int = 1,
) -> None:
    """Refuse, in well under a second and before any large allocation, an EASE fit on the
    positives ``seen`` (users x items; items with at least ``min_item_positives`` of them
    enter the inverse) that would exhaust memory or crash the LAPACK.

    Raises
    ------
    DataError
        One line naming ``model``, the active items, the bytes needed and available, and
        what to use instead (:func:`~tripletrec.models.dense_limits.check_dense_fit`).
    """
    seen = sp.csr_matrix(seen)
    n_active = len(ItemItemMixin._active_columns(seen, min_item_positives))
    needed = ease_peak_bytes(n_active, seen.nnz, seen.shape[0])
    check_dense_fit(model, n_active, needed, max_memory_bytes, factorises=np.float32)


def _ease_weights(
    x: sp.csr_matrix, l2: float, limit: int | None, exponent: float = 0.0
) -> np.ndarray:
    """``B`` on the active items of binary ``x`` (users weighted by ``exponent``), once the
    memory it needs is known to fit and the LAPACK known to survive it."""
    n = x.shape[1]
    check_dense_fit(
        "EASERecommender", n, ease_peak_bytes(n, x.nnz, x.shape[0]), limit, factorises=np.float32
    )
    return weights_from_gram(_gram(user_weighted(x, exponent)), l2)


def weights_from_gram(gram: np.ndarray, l2: float) -> np.ndarray:
    """EASE's ``B`` from the Gram matrix ``X' W X`` (float32, overwritten: ``B`` takes its
    memory). Several ``l2`` on one Gram matrix each take a copy of it."""
    if not len(gram):  # no item kept: nothing to invert
        return gram
    gram[np.diag_indices(len(gram))] += np.float32(l2)
    precision = _spd_inverse(gram)
    diagonal = np.diag(precision).copy()
    precision /= -diagonal[None, :]  # in place: B[:, j] = -P[:, j] / P[j, j]
    np.fill_diagonal(precision, 0.0)
    return precision


def _gram(x: sp.csr_matrix) -> np.ndarray:
    """``x' x`` as a dense float32 array (each block summed in ``x``'s precision), built by
    blocks of columns so that the sparse product never holds more than a block's worth of
    entries."""
    n = x.shape[1]
    gram = np.empty((n, n), np.float32)
    transposed = x.T.tocsr()
    columns = x.tocsc()
    block = max(1, _GRAM_BLOCK_BYTES // (12 * max(n, 1)))
    for start in range(0, n, block):
        stop = min(n, start + block)
        gram[:, start:stop] = (transposed @ columns[:, start:stop]).toarray()
    return gram


def _spd_inverse(matrix: np.ndarray) -> np.ndarray:
    """The inverse of symmetric positive definite ``matrix``, overwriting it.

    Cholesky (``potrf`` + ``potri``) costs half an LU inverse and suits the matrix; it fills
    one triangle, which is mirrored into the other by blocks (no full-size temporary).
    """
    # The transpose of a C-ordered array is Fortran-ordered: LAPACK works on it in place,
    # and for a symmetric matrix it is the same matrix.
    work = matrix.T
    potrf, potri = scipy.linalg.lapack.get_lapack_funcs(("potrf", "potri"), (work,))
    factor, info = potrf(work, lower=False, clean=False, overwrite_a=True)
    if info == 0:
        inverse, info = potri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise ParameterError("EASE: X'X + l2 I is not numerically positive definite; increase l2")
    # The inverse's upper triangle (Fortran order) is valid: mirror it into the lower one.
    n = inverse.shape[0]
    block = max(1, _MIRROR_BLOCK_BYTES // (inverse.itemsize * max(n, 1)))
    for start in range(0, n, block):
        stop = min(n, start + block)
        # Rows start:stop of the lower triangle = columns start:stop of the upper one.
        inverse[start:stop, :start] = inverse[:start, start:stop].T
        sub = inverse[start:stop, start:stop]
        sub[np.tril_indices(stop - start, -1)] = sub.T[np.tril_indices(stop - start, -1)]
    # Symmetric now, so its (C-ordered) transpose is the same matrix, with no copy.
    return inverse.T
