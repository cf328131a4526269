"""The full-softmax fold-in: a new user's vector as the regularised maximum likelihood of
their history under the softmax over the whole catalogue, the item side frozen
(:func:`~tripletrec.models.foldin.fold_in` calls it for models trained with the softmax).

For a dot-product model the gradient is in closed form (:class:`_HistoryMoments`), and on
small problems Newton's method reaches the optimum in a few steps; past
:data:`NEWTON_BUDGET` Adam runs a fixed number of steps from zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tripletrec.models.frozen import FrozenItems
from tripletrec.training.loop import threads_for_terms

#: Adam steps of the full-softmax fold-in: 100 and 200 give the same rankings on anime-tv
#: and MovieLens-100k; on Gowalla 100 stop short of the optimum, and rank new users better
#: than it (:data:`NEWTON_BUDGET`).
_FULL_SOFTMAX_STEPS = 100


def full_softmax_fold_in(
    frozen: FrozenItems,
    rows: np.ndarray,
    items: np.ndarray,
    n_rows: int,
    n_items: int,
    offsets: torch.Tensor,
    l2: float,
    learning_rate: float,
) -> torch.Tensor:
    """argmin_u sum_(r, i) [logsumexp_j s(o_r + u_r, j) - s(o_r + u_r, i)] + l2 sum_r |u_r|^2.

    ``o`` are the fixed offsets (zero without user features; their device is the
    result's); ``u`` is returned. ``rows`` and ``items`` list each (history, item) pair
    once; ``l2`` weighs the prior, ``learning_rate`` is Adam's.

    Starts from zero and draws nothing, so the result depends on the history alone: by
    Newton's method within :data:`NEWTON_BUDGET` for dot-product models, else by
    :data:`_FULL_SOFTMAX_STEPS` steps of Adam.
    """
    device = offsets.device
    rows_t = torch.as_tensor(rows, device=device)
    items_t = torch.as_tensor(items, device=device)
    dim, vectors = frozen.user_dim, frozen.linear_items
    if vectors is not None and n_rows * n_items * dim * dim <= NEWTON_BUDGET:
        return _newton_fold_in(frozen, vectors, rows_t, items_t, n_rows, offsets, l2)
    users = torch.nn.Parameter(torch.zeros(n_rows, frozen.user_dim, device=device))
    optimiser = torch.optim.Adam([users], lr=learning_rate)
    history = None if vectors is None else _HistoryMoments.of(vectors, rows_t, items_t, n_rows)
    with threads_for_terms(n_rows * n_items):
        for _ in range(_FULL_SOFTMAX_STEPS):
            if history is not None:  # a dot product: the gradient in closed form
                with torch.no_grad():
                    users.grad = history.gradient(frozen, offsets, users, l2)[0]
                optimiser.step()
                continue
            logits = frozen.all_scores(frozen.user_side(offsets + users))
            log_likelihood = logits[rows_t, items_t] - torch.logsumexp(logits, 1)[rows_t]
            objective = l2 * (users**2).sum() - log_likelihood.sum()
            optimiser.zero_grad(set_to_none=True)
            objective.backward()
            optimiser.step()
    return users.detach()


@dataclass(frozen=True)
class _HistoryMoments:
    """What the full-softmax objective's gradient needs of each history, for a dot-product
    model with item vectors ``vectors``: its number of items and the sum of their vectors.

    The gradient is ``2 l2 u - sum_(i in r) v_i + n_r E_p[v]``, ``p`` the softmax of the
    user's scores over the catalogue: two matrix products, none of autograd's bookkeeping.
    """

    vectors: torch.Tensor
    counts: torch.Tensor
    sums: torch.Tensor

    @classmethod
    def of(
        cls, vectors: torch.Tensor, rows: torch.Tensor, items: torch.Tensor, n_rows: int
    ) -> _HistoryMoments:
        counts = torch.bincount(rows, minlength=n_rows).to(vectors.dtype)
        sums = torch.zeros(n_rows, vectors.shape[1], dtype=vectors.dtype, device=vectors.device)
        sums.index_add_(0, rows, vectors[items].detach())
        return cls(vectors.detach(), counts, sums)

    def gradient(
        self,
        frozen: FrozenItems,
        offsets: torch.Tensor,
        users: torch.Tensor,
        l2: float,
        active: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The gradient at ``users`` of the histories ``active`` (all when None), with the
        softmax ``p`` and ``E_p[v]`` it was computed from."""
        if active is not None:
            offsets = offsets if offsets.dim() == 0 else offsets[active]
            users = users[active]
        counts = self.counts if active is None else self.counts[active]
        sums = self.sums if active is None else self.sums[active]
        p = torch.softmax(frozen.all_scores(offsets + users.detach()), dim=1)
        mean = p @ self.vectors
        return 2 * l2 * users.detach() - sums + counts[:, None] * mean, p, mean


#: Largest (histories x items x dim^2) for Newton's method, whose Hessians cost that much
#: per iteration; a single new user fits on catalogues of up to 16,384 items at 128
#: dimensions. Past it Adam runs :data:`_FULL_SOFTMAX_STEPS` steps from zero, not converged
#: on large catalogues, and its new users rank better there than the optimum's (Gowalla's
#: valid: Recall@20 0.2391 against 0.2307, ``benchmarks/results/foldin_gowalla.md``).
NEWTON_BUDGET = 1 << 28
#: Bound on the floats of the weighted copy of item vectors a Hessian block makes.
_HESSIAN_BLOCK_FLOATS = 1 << 23
#: Newton iterations at most; from zero, with the prior, the gradient is below 1e-5 of
#: its starting norm after 6 on anime-tv and MovieLens-100k, and after 3 to 5 on Gowalla.
_NEWTON_STEPS = 8
#: A history's iterations stop once its gradient is below this share of its starting norm
#: (float32 arithmetic reaches about 1e-7 there): each Hessian is most of a step's cost.
_NEWTON_TOLERANCE = 1e-5


def _newton_fold_in(
    frozen: FrozenItems,
    vectors: torch.Tensor,
    rows: torch.Tensor,
    items: torch.Tensor,
    n_rows: int,
    offsets: torch.Tensor,
    l2: float,
) -> torch.Tensor:
    """The full-softmax fold-in of a dot-product model by Newton's method.

    ``vectors`` are the item vectors (``frozen.linear_items``).

    With ``s(u, j) = <o + u, v_j> + b_j`` the objective of :func:`full_softmax_fold_in`
    has, per history ``r`` of ``n_r`` items with softmax ``p`` over the catalogue,
    gradient ``2 l2 u - sum_(i in r) v_i + n_r E_p[v]`` and Hessian
    ``2 l2 I + n_r Cov_p[v]`` (positive definite), so a few exact Newton steps reach the
    optimum where Adam needs a hundred small ones: what makes one new user's fold-in a
    few milliseconds.
    """
    dim = vectors.shape[1]
    history = _HistoryMoments.of(vectors, rows, items, n_rows)
    identity = torch.eye(dim, dtype=vectors.dtype, device=vectors.device)
    users = torch.zeros(n_rows, dim, dtype=vectors.dtype, device=vectors.device)
    # Histories still iterating: each stops on its own gradient, so that its vector does
    # not depend on the others in the batch.
    active = torch.arange(n_rows, device=vectors.device)
    start_norms: torch.Tensor | None = None
    with torch.no_grad():
        for _ in range(_NEWTON_STEPS):
            gradient, p, mean = history.gradient(frozen, offsets, users, l2, active)
            norms = gradient.norm(dim=1)
            start_norms = norms if start_norms is None else start_norms
            going = norms > _NEWTON_TOLERANCE * start_norms[active]
            if not bool(going.any()):
                break
            active, p, mean, gradient = active[going], p[going], mean[going], gradient[going]
            covariance = _second_moments(p, vectors) - mean[:, :, None] * mean[:, None, :]
            hessian = 2 * l2 * identity + history.counts[active, None, None] * covariance
            users[active] -= torch.linalg.solve(hessian, gradient[:, :, None])[:, :, 0]
    return users


def _second_moments(p: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """``E_p[v v']`` per row of ``p`` (histories x items): ``(rows, dim, dim)``.

    One matrix product per block of items, ``(p_r v_i)`` for every row and dimension
    against ``v_i``, so that the weighted copy stays within :data:`_HESSIAN_BLOCK_FLOATS`
    on any catalogue (an einsum over the three indices runs at a third of the speed).
    """
    n_rows, (n_items, dim) = p.shape[0], vectors.shape
    out = torch.zeros(n_rows, dim, dim, dtype=vectors.dtype, device=vectors.device)
    step = max(1, _HESSIAN_BLOCK_FLOATS // (n_rows * dim))
    for start in range(0, n_items, step):
        block = vectors[start : start + step]
        weighted = p[:, None, start : start + step] * block.T[None]  # (rows, dim, block)
        out += (weighted.reshape(n_rows * dim, -1) @ block).view(n_rows, dim, dim)
    return out
