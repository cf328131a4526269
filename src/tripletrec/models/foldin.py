"""Fold-in: user vectors for users the model has never seen, from their item histories.

The item side of a fitted :class:`~tripletrec.models.scorers.Scorer` (item embeddings, item biases,
the MLP of the deep model) is frozen; each new user gets a fresh embedding that is optimised
with the loss the model was trained with (margin, BPR, WARP, softmax, ...) on (history
item, uniform negative) pairs, with Adam, for all histories at once. A history is a ragged
array given as two aligned index arrays: ``rows`` (which history) and ``items`` (which
item).

Every random draw (initial vector, negatives) comes from a counter-based hash of the seed,
the history's own items, the step and the position in the history, not from a shared
stream: a history folds in to the same vector whether it is alone in the batch or one of
thousands, and the result does not depend on batch order.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tripletrec.exceptions import DataError
from tripletrec.models.scorers import _ACTIVATION_BUDGET, BilinearScorer, DeepScorer, Scorer
from tripletrec.training.losses import LossFunction, get_loss

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
#: Redraws of a negative that hit the history before the pair is dropped from the step.
_MAX_REDRAWS = 8
#: Score given to dropped negatives: finite, so no inf - inf reaches a gradient.
_EXCLUDED_SCORE = -1e9


@dataclass(frozen=True)
class FoldInSettings:
    """How new user vectors are fitted.

    Attributes
    ----------
    steps : int
        Adam steps over all (history item, negative) pairs.
    learning_rate : float
        Adam step size.
    n_negatives : int
        Negatives drawn per history item and step.
    random_state : int
        Seed of initial vectors and negatives.
    l2 : float
        Full-softmax fold-in only: weight of ``|u|^2`` in the objective (a Gaussian prior
        on the new user's vector), against a sum of one log-likelihood term per history
        item. Chosen on users held out of the training users (``benchmarks/cold_start.py``).
    """

    steps: int = 60
    learning_rate: float = 0.05
    n_negatives: int = 8
    random_state: int = 0
    l2: float = 1.0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.n_negatives < 1 or not self.learning_rate > 0:
            raise DataError(
                "fold-in needs steps >= 1, n_negatives >= 1 and learning_rate > 0, got "
                f"{self.steps}, {self.n_negatives}, {self.learning_rate}"
            )
        if not self.l2 >= 0:
            raise DataError(f"fold-in l2 must be non-negative, got {self.l2}")


#: Largest (histories x items) score block for the full-softmax fold-in; above it the
#: sampled fold-in is used.
FULL_SOFTMAX_BUDGET = 1 << 24


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser, elementwise on uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return x ^ (x >> np.uint64(31))


def _uniform01(x: np.ndarray) -> np.ndarray:
    """Hash values to floats in [0, 1) (53 random bits)."""
    return (_splitmix64(x) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _row_keys(rows: np.ndarray, items: np.ndarray, n_rows: int, seed: int) -> np.ndarray:
    """One hash per history, from its set of items and the seed (order-free)."""
    item_hashes = _splitmix64(items.astype(np.uint64) ^ np.uint64(seed & 0xFFFFFFFFFFFFFFFF))
    keys = np.zeros(n_rows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        np.add.at(keys, rows, item_hashes)  # wrapping sum: independent of item order
    return _splitmix64(keys)


def _check_ragged(rows: np.ndarray, items: np.ndarray, n_rows: int, n_items: int) -> None:
    if rows.shape != items.shape or rows.ndim != 1:
        raise DataError("history rows and items must be aligned 1-d arrays")
    if len(rows) and (rows.min() < 0 or rows.max() >= n_rows):
        raise DataError(f"history rows must lie in [0, {n_rows})")
    if len(items) and (items.min() < 0 or items.max() >= n_items):
        raise DataError(f"history items must lie in [0, {n_items})")
    if n_rows and np.bincount(rows, minlength=n_rows).min() == 0:
        raise DataError("every history needs at least one known item")


def fold_in(
    module: Scorer,
    rows: np.ndarray,
    items: np.ndarray,
    n_rows: int,
    *,
    loss: str = "margin",
    margin: float = 1.0,
    init_scale: float = 0.05,
    settings: FoldInSettings | None = None,
    offsets: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fit user vectors for ``n_rows`` histories with the item side of ``module`` frozen.

    Models trained with the softmax loss, bilinear ones, fold in by the full softmax over
    the catalogue (when ``n_rows x n_items`` fits :data:`FULL_SOFTMAX_BUDGET`): the
    regularised maximum-likelihood user vector, a convex problem with no sampling (see
    :func:`_full_softmax_fold_in`). Other models minimise their training loss against
    sampled negatives.

    Parameters
    ----------
    module : BilinearScorer or DeepScorer
        A fitted scorer; its weights are not changed.
    rows, items : numpy.ndarray of int
        Aligned: history ``rows[j]`` contains item index ``items[j]``. Duplicates are
        dropped. Every row in ``0 .. n_rows - 1`` needs at least one item.
    n_rows : int
        Number of histories.
    loss : str
        The loss the model was trained with (any of :func:`tripletrec.training.losses.get_loss`).
    margin : float
        Margin of the hinge losses.
    init_scale : float
        New vectors start uniform in ``[-init_scale, init_scale]``, as trained ones did.
    settings : FoldInSettings, optional
    offsets : torch.Tensor, shape (n_rows, user_dim), optional
        A fixed part of each user vector, from the user's side features: the fitted part
        is added to it (and regularised towards zero), and a row with an empty history is
        its offset alone.

    Returns
    -------
    torch.Tensor, shape (n_rows, user_dim), float32
        The raw (unnormalised) user embeddings; score them with :func:`score_user_vectors`.
    """
    settings = settings or FoldInSettings()
    if not isinstance(module, (BilinearScorer, DeepScorer)):
        raise DataError(f"cannot fold in users for a {type(module).__name__}")
    if offsets is not None:
        has_history = np.bincount(np.asarray(rows, dtype=np.int64), minlength=n_rows) > 0
        if not has_history.all():  # users known by their features alone
            out = offsets.clone()
            if has_history.any():
                new_row = np.cumsum(has_history) - 1
                out[torch.as_tensor(np.flatnonzero(has_history))] = fold_in(
                    module, new_row[rows], items, int(has_history.sum()), loss=loss,
                    margin=margin, init_scale=init_scale, settings=settings,
                    offsets=offsets[torch.as_tensor(has_history)],
                )  # fmt: skip
            return out
    n_items = module.n_items
    # The model's own loss; negatives are uniform, so softmax needs no log-q correction.
    loss_fn = get_loss(loss, margin, n_items=n_items)
    rows = np.asarray(rows, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    _check_ragged(rows, items, n_rows, n_items)
    # One entry per (row, item), sorted: membership tests below are a binary search.
    pair_keys = np.unique(rows * n_items + items)
    rows, items = pair_keys // n_items, pair_keys % n_items
    n_pairs = len(rows)
    dim = _FrozenItems(module).user_dim

    row_keys = _row_keys(rows, items, n_rows, settings.random_state)
    # Position of each pair in its row: random draws are indexed by (row key, position),
    # which makes each history's fold-in independent of the rest of the batch.
    starts = np.searchsorted(rows, np.arange(n_rows))
    position = (np.arange(n_pairs) - starts[rows]).astype(np.uint64)

    init_counter = np.arange(dim, dtype=np.uint64)[None, :] | np.uint64(1 << 40)
    init = _uniform01(row_keys[:, None] ^ _splitmix64(init_counter)) * 2.0 - 1.0
    device = next(module.parameters()).device
    users = torch.nn.Parameter(torch.as_tensor(init * init_scale, dtype=torch.float32))
    optimiser = torch.optim.Adam([users], lr=settings.learning_rate)

    n_neg = settings.n_negatives
    pair_rows = np.repeat(rows, n_neg)
    pair_items = np.repeat(items, n_neg)
    slot = np.tile(np.arange(n_neg, dtype=np.uint64), n_pairs)
    base = _splitmix64(np.repeat(row_keys[rows] ^ _splitmix64(position), n_neg) + slot)
    rows_t = torch.as_tensor(pair_rows, device=device)
    pos_t = torch.as_tensor(pair_items, device=device)

    frozen = _FrozenItems(module)
    offsets = torch.zeros((), device=device) if offsets is None else offsets.to(device)
    if loss == "softmax" and not frozen.deep and n_rows * n_items <= FULL_SOFTMAX_BUDGET:
        return offsets + _full_softmax_fold_in(
            frozen, rows, items, n_rows, offsets, settings, device
        )
    with _threads_for(len(pair_rows)):
        _optimise(frozen, optimiser, users, offsets, settings, base, pair_rows, pair_keys,
                  rows_t, pos_t, n_items, loss_fn, device)  # fmt: skip
    return offsets + users.detach()


#: Adam steps of the full-softmax fold-in; the objective is convex and converged by then
#: (100 and 200 steps give the same rankings on anime-tv and MovieLens-100k).
_FULL_SOFTMAX_STEPS = 100


def _full_softmax_fold_in(
    frozen: _FrozenItems,
    rows: np.ndarray,
    items: np.ndarray,
    n_rows: int,
    offsets: torch.Tensor,
    settings: FoldInSettings,
    device: torch.device,
) -> torch.Tensor:
    """argmin_u sum_(r, i) [logsumexp_j s(o_r + u_r, j) - s(o_r + u_r, i)] + l2 sum_r |u_r|^2.

    ``o`` are the fixed offsets (zero without user features); ``u`` is returned.

    Starts from zero and draws nothing, so the result depends on the history alone.
    Early stopping of an unregularised fit ranks about as well but depends on the step
    count; the prior makes the answer a fixed point.
    """
    rows_t = torch.as_tensor(rows, device=device)
    items_t = torch.as_tensor(items, device=device)
    n_items, dim = frozen.item_vectors.shape
    if not frozen.cosine and n_rows * n_items * dim * dim <= NEWTON_BUDGET:
        return _newton_fold_in(frozen, rows_t, items_t, n_rows, offsets, settings.l2)
    users = torch.nn.Parameter(torch.zeros(n_rows, frozen.user_dim, device=device))
    optimiser = torch.optim.Adam([users], lr=settings.learning_rate)
    with _threads_for(n_rows * len(frozen.item_vectors)):
        for _ in range(_FULL_SOFTMAX_STEPS):
            logits = frozen.all_scores(frozen.user_side(offsets + users))
            log_likelihood = logits[rows_t, items_t] - torch.logsumexp(logits, 1)[rows_t]
            objective = settings.l2 * (users**2).sum() - log_likelihood.sum()
            optimiser.zero_grad(set_to_none=True)
            objective.backward()
            optimiser.step()
    return users.detach()


#: Largest (histories x items x dim^2) for Newton's method, whose Hessians cost that much
#: per iteration; a single new user (the serving case) always fits.
NEWTON_BUDGET = 1 << 28
#: Newton iterations; from zero, with the prior, the gradient is below 1e-5 of its
#: starting norm after 6 on anime-tv and MovieLens-100k.
_NEWTON_STEPS = 8


def _newton_fold_in(
    frozen: _FrozenItems,
    rows: torch.Tensor,
    items: torch.Tensor,
    n_rows: int,
    offsets: torch.Tensor,
    l2: float,
) -> torch.Tensor:
    """The full-softmax fold-in of a dot-product model by Newton's method.

    With ``s(u, j) = <o + u, v_j> + b_j`` the objective of :func:`_full_softmax_fold_in`
    has, per history ``r`` of ``n_r`` items with softmax ``p`` over the catalogue,
    gradient ``2 l2 u - sum_(i in r) v_i + n_r E_p[v]`` and Hessian
    ``2 l2 I + n_r Cov_p[v]`` (positive definite), so a few exact Newton steps reach the
    optimum where Adam needs a hundred small ones: what makes one new user's fold-in a
    few milliseconds.
    """
    vectors, dim = frozen.item_vectors, frozen.item_vectors.shape[1]
    counts = torch.bincount(rows, minlength=n_rows).to(vectors.dtype)
    history_sums = torch.zeros(n_rows, dim, dtype=vectors.dtype, device=vectors.device)
    history_sums.index_add_(0, rows, vectors[items])
    identity = torch.eye(dim, dtype=vectors.dtype, device=vectors.device)
    users = torch.zeros(n_rows, dim, dtype=vectors.dtype, device=vectors.device)
    with torch.no_grad():
        for _ in range(_NEWTON_STEPS):
            p = torch.softmax(frozen.all_scores(offsets + users), dim=1)
            mean = p @ vectors
            gradient = 2 * l2 * users - history_sums + counts[:, None] * mean
            second = torch.einsum("ri,id,ie->rde", p, vectors, vectors)
            covariance = second - mean[:, :, None] * mean[:, None, :]
            hessian = 2 * l2 * identity + counts[:, None, None] * covariance
            users = users - torch.linalg.solve(hessian, gradient[:, :, None])[:, :, 0]
    return users


#: Below this many (pair, negative) terms a step is too small to gain from threads.
_SINGLE_THREAD_TERMS = 262_144


@contextlib.contextmanager
def _threads_for(n_terms: int):
    """One torch thread for small problems: tiny ops on a busy machine lose far more to
    thread hand-offs than they gain (measured 50 ms vs 0.4-4 s for one history)."""
    previous = torch.get_num_threads()
    if n_terms >= _SINGLE_THREAD_TERMS or previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _optimise(
    frozen: _FrozenItems,
    optimiser: torch.optim.Optimizer,
    users: torch.nn.Parameter,
    offsets: torch.Tensor,
    settings: FoldInSettings,
    base: np.ndarray,
    pair_rows: np.ndarray,
    pair_keys: np.ndarray,
    rows_t: torch.Tensor,
    pos_t: torch.Tensor,
    n_items: int,
    loss_fn: LossFunction,
    device: torch.device,
) -> None:
    n_neg = settings.n_negatives
    for step in range(settings.steps):
        negatives, valid = _draw_negatives(base, step, pair_rows, pair_keys, n_items)
        neg_t = torch.as_tensor(negatives, device=device)
        valid_t = torch.as_tensor(valid, device=device).view(-1, n_neg)
        # index_select: its backward is an index_add, far faster on CPU than the
        # accumulating index_put behind users[rows].
        row_vectors = frozen.user_side(offsets + users).index_select(0, rows_t)
        # Pairs are repeated n_neg times in a row: one column is the positive scores.
        s_pos = frozen.pair_scores(row_vectors, pos_t).view(-1, n_neg)[:, 0]
        s_neg = frozen.pair_scores(row_vectors, neg_t).view(-1, n_neg)
        # Negatives that kept hitting the history drop out: a score far below any real
        # one adds nothing to any of the losses (hinge, BPR, WARP, softmax).
        s_neg = torch.where(valid_t, s_neg, torch.full_like(s_neg, _EXCLUDED_SCORE))
        # The losses average over pairs; times the pair count, each history's gradient
        # depends on that history alone (Adam is invariant to the overall scale).
        objective = loss_fn(s_pos, s_neg) * len(s_pos)
        optimiser.zero_grad(set_to_none=True)
        objective.backward()
        optimiser.step()


def _draw_negatives(
    base: np.ndarray, step: int, pair_rows: np.ndarray, pair_keys: np.ndarray, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """Uniform negatives outside each history; ``valid`` is False where every redraw hit."""
    counter = np.uint64(step) << np.uint64(8)
    negatives = (_uniform01(base ^ _splitmix64(np.full(1, counter))) * n_items).astype(np.int64)
    for attempt in range(1, _MAX_REDRAWS + 1):
        hit = _in_history(pair_rows * n_items + negatives, pair_keys)
        if not hit.any():
            break
        redraw_counter = np.full(1, counter + np.uint64(attempt))
        fresh = (_uniform01(base[hit] ^ _splitmix64(redraw_counter)) * n_items).astype(np.int64)
        negatives[hit] = fresh
    valid = ~_in_history(pair_rows * n_items + negatives, pair_keys)
    return negatives, valid


def _in_history(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    where = np.searchsorted(sorted_keys, keys)
    return sorted_keys[np.minimum(where, len(sorted_keys) - 1)] == keys


class _FrozenItems:
    """The item side of a scorer, detached: scores of free user vectors against items."""

    def __init__(self, module: Scorer) -> None:
        self.module = module
        self.deep = isinstance(module, DeepScorer)
        with torch.no_grad():
            if self.deep:
                first = module._first_layer()
                user_dim = module.user_embedding.embedding_dim
                self.w_user = first.weight[:, :user_dim].detach()
                # First layer of the item half, plus the bias, precomputed once per item.
                self.item_part = (
                    module.item_embedding.weight @ first.weight[:, user_dim:].T + first.bias
                ).detach()
                # Detached copies of the later layers: backpropagating into the user
                # vectors must not write gradients into the shared model's weights.
                self.later = [
                    (layer.weight.detach(), layer.bias.detach()) for layer in module.hidden[1:]
                ]
                self.output = (module.output.weight.detach(), module.output.bias.detach())
                self.has_hidden = len(module.hidden) > 0
                self.width = first.weight.shape[0]
                # The optional dot-product branch (dot_factors > 0): a new user gets both an
                # MLP embedding and a dot embedding, concatenated in one vector.
                item_dot = getattr(module, "item_dot", None)
                self.item_dot = None if item_dot is None else item_dot.weight.detach()
                dot_dim = 0 if self.item_dot is None else self.item_dot.shape[1]
                self.split = user_dim
                self.user_dim = user_dim + dot_dim
            else:
                self.user_dim = module.user_embedding.embedding_dim
                self.item_vectors = module._items(None).detach()
                bias = module._bias(None)
                self.bias = bias.detach() if torch.is_tensor(bias) else None
                self.cosine = module.similarity == "cosine"

    def user_side(self, users: torch.Tensor) -> torch.Tensor:
        """Per-user work done once per history rather than once per pair."""
        if self.deep:
            first = users[:, : self.split] @ self.w_user.T
            return torch.cat([first, users[:, self.split :]], dim=1)
        return self.module.query_vectors(users)

    def pair_scores(self, row_vectors: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of pairs, from :meth:`user_side` gathered per pair and item indices."""
        if self.deep:
            scores = self.mlp(row_vectors[:, : self.width] + self.item_part[items])
            if self.item_dot is not None:
                scores = scores + (row_vectors[:, self.width :] * self.item_dot[items]).sum(-1)
            return scores
        scores = (row_vectors * self.item_vectors[items]).sum(-1)
        return scores if self.bias is None else scores + self.bias[items]

    def all_scores(self, row_vectors: torch.Tensor) -> torch.Tensor:
        """Bilinear only: scores of :meth:`user_side` vectors against every item."""
        scores = row_vectors @ self.item_vectors.T
        return scores if self.bias is None else scores + self.bias

    def mlp(self, pre: torch.Tensor) -> torch.Tensor:
        """The deep scorer from its first layer's pre-activation on (eval mode: no dropout)."""
        if not self.has_hidden:
            return pre.squeeze(-1)
        h = F.relu(pre)
        for weight, bias in self.later:
            h = F.relu(F.linear(h, weight, bias))
        return F.linear(h, *self.output).squeeze(-1)


def score_user_vectors(module: Scorer, user_vectors: torch.Tensor) -> np.ndarray:
    """Scores of folded-in ``user_vectors`` against every item, ``(n, n_items)`` float32."""
    with torch.no_grad():
        if isinstance(module, BilinearScorer):
            scores = module.query_vectors(user_vectors) @ module._items(
                None
            ).T + module._ranking_bias(None)
            return scores.float().cpu().numpy()
        if isinstance(module, DeepScorer):
            frozen = _FrozenItems(module)
            user_part = frozen.user_side(user_vectors)
            step = max(1, _ACTIVATION_BUDGET // max(1, frozen.item_part.numel()))
            blocks = []
            for block in user_part.split(step):
                pre = block[:, None, : frozen.width] + frozen.item_part[None, :, :]
                blocks.append(frozen.mlp(pre))
            scores = torch.cat(blocks)
            if frozen.item_dot is not None:
                scores = scores + user_part[:, frozen.width :] @ frozen.item_dot.T
            return scores.float().cpu().numpy()
    raise DataError(f"cannot score folded-in users of a {type(module).__name__}")
