"""The normalised user-item graph and its spectrum, for the graph filter.

``Rn = D_u^-1/2 R D_i^-1/2`` of binary positives (:func:`normalize`), its top singular
vectors by ARPACK or a randomized range finder (:func:`top_singular_vectors`), and the
plateau transfer function the filter applies to the eigenvalues of ``Rn' Rn``
(:func:`plateau`); :mod:`tripletrec.models.graph_filter` composes them.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

#: Extra columns of the randomized range finder's test matrix beyond ``k``.
OVERSAMPLING = 64
#: Power iterations of the randomized range finder.
POWER_ITERATIONS = 2
#: Columns of the randomized solver's basis multiplied at once: bounds its users x
#: columns temporary (512 MB at a million users).
_GRAM_CHUNK = 64


def plateau(eigenvalues: np.ndarray, flatness: float) -> np.ndarray:
    """ChebyCF's plateau transfer function of eigenvalues ``lambda`` in [0, 1]: with
    ``x = 1 - 2 lambda``, ``(1 - sign(x) |x|^flatness) / 2``. It maps 0 to 0, 1/2 to 1/2
    and 1 to 1; ``flatness`` 1 is the identity, larger values flatten it around 1/2; its
    slope at 0 is ``flatness``."""
    x = 1.0 - 2.0 * np.clip(np.asarray(eigenvalues, dtype=np.float64), 0.0, 1.0)
    return 0.5 - 0.5 * np.sign(x) * np.abs(x) ** flatness


def degree_powers(degree: np.ndarray, exponent: float) -> np.ndarray:
    """``degree ** exponent`` (float64), 0 where the degree is 0."""
    out = np.zeros(len(degree), np.float64)
    np.power(degree, exponent, out=out, where=degree > 0)
    return out


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
    # Entries below float32's resolution of a vector's largest are the solver's rounding
    # (items a vector does not reach): zeroed, so that such items score exactly 0 and
    # their order does not depend on how many users are scored at once.
    resolution = np.finfo(np.float32).eps * np.abs(vectors).max(axis=1, keepdims=True)
    vectors[np.abs(vectors) < resolution] = 0.0
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
