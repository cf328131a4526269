"""Fold-in: user vectors for users the model has never seen, from their item histories.

The item side of a fitted :class:`~tripletrec.models.interface.Scorer` (item embeddings, item
biases, the MLP of the deep model) is frozen, by the scorer itself
(:meth:`~tripletrec.models.interface.Scorer.frozen_items`, :mod:`tripletrec.models.frozen`);
each new user gets a fresh embedding that is optimised
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

from dataclasses import dataclass

import numpy as np
import torch

from tripletrec._checks import finite_number, positive_int
from tripletrec._hashing import splitmix64, uniform01
from tripletrec._keys import contains
from tripletrec.exceptions import DataError
from tripletrec.models.foldin_softmax import full_softmax_fold_in
from tripletrec.models.frozen import FrozenItems
from tripletrec.models.interface import Scorer
from tripletrec.training.loop import threads_for_terms
from tripletrec.training.losses import Loss, resolve_loss

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
        item. Chosen on users held out of the training users (``benchmarks/perf/cold_start.py``).
    """

    steps: int = 60
    learning_rate: float = 0.05
    n_negatives: int = 8
    random_state: int = 0
    l2: float = 1.0

    def __post_init__(self) -> None:
        positive_int("steps", self.steps)
        positive_int("n_negatives", self.n_negatives)
        finite_number("learning_rate", self.learning_rate, low=0.0, low_open=True)
        finite_number("l2", self.l2, low=0.0)


#: Largest (histories x items) score block for the full-softmax fold-in; above it the
#: sampled fold-in is used.
FULL_SOFTMAX_BUDGET = 1 << 24


def _row_keys(rows: np.ndarray, items: np.ndarray, n_rows: int, seed: int) -> np.ndarray:
    """One hash per history, from its set of items and the seed (order-free)."""
    item_hashes = splitmix64(items.astype(np.uint64) ^ np.uint64(seed & 0xFFFFFFFFFFFFFFFF))
    keys = np.zeros(n_rows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        np.add.at(keys, rows, item_hashes)  # wrapping sum: independent of item order
    return splitmix64(keys)


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
    loss: Loss | None = None,
    init_scale: float = 0.05,
    settings: FoldInSettings | None = None,
    offsets: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fit user vectors for ``n_rows`` histories with the item side of ``module`` frozen.

    Models trained with a softmax loss and a vector space (bilinear, FM) fold in by the
    full softmax over the catalogue (when ``n_rows x n_items`` fits
    :data:`FULL_SOFTMAX_BUDGET`): the regularised maximum-likelihood user vector, a convex
    problem with no sampling (see
    :func:`~tripletrec.models.foldin_softmax.full_softmax_fold_in`). Other models minimise
    their training loss against sampled negatives.

    Parameters
    ----------
    module : Scorer
        A fitted scorer with a frozen item side
        (:meth:`~tripletrec.models.interface.Scorer.frozen_items`); its weights are not
        changed.
    rows, items : numpy.ndarray of int
        Aligned: history ``rows[j]`` contains item index ``items[j]``. Duplicates are
        dropped. Every row in ``0 .. n_rows - 1`` needs at least one item.
    n_rows : int
        Number of histories.
    loss : Loss, optional
        The loss the model was trained with (:func:`tripletrec.training.losses.resolve_loss`);
        default: the margin loss with margin 1.
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
    loss = loss or resolve_loss("margin")
    frozen = module.frozen_items()
    device = next(module.parameters()).device
    rows = np.asarray(rows, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    if offsets is None:
        return _fold_in(frozen, rows, items, n_rows, module.n_items, loss, init_scale,
                        settings, torch.zeros((), device=device), device)  # fmt: skip
    offsets = offsets.to(device)
    has_history = np.bincount(rows, minlength=n_rows) > 0
    if has_history.all():
        return _fold_in(frozen, rows, items, n_rows, module.n_items, loss, init_scale,
                        settings, offsets, device)  # fmt: skip
    out = offsets.clone()  # users known by their features alone keep their offset
    if has_history.any():
        new_row = np.cumsum(has_history) - 1
        out[torch.as_tensor(np.flatnonzero(has_history))] = _fold_in(
            frozen, new_row[rows], items, int(has_history.sum()), module.n_items, loss,
            init_scale, settings, offsets[torch.as_tensor(has_history)], device,
        )  # fmt: skip
    return out


def _fold_in(
    frozen: FrozenItems,
    rows: np.ndarray,
    items: np.ndarray,
    n_rows: int,
    n_items: int,
    loss: Loss,
    init_scale: float,
    settings: FoldInSettings,
    offsets: torch.Tensor,
    device: torch.device,
) -> torch.Tensor:
    """:func:`fold_in` of histories that all have an item; returns offsets + fitted part."""
    _check_ragged(rows, items, n_rows, n_items)
    # One entry per (row, item), sorted: membership tests below are a binary search.
    pair_keys = np.unique(rows * n_items + items)
    rows, items = pair_keys // n_items, pair_keys % n_items
    if loss.is_softmax and frozen.supports_full_softmax and n_rows * n_items <= FULL_SOFTMAX_BUDGET:
        return offsets + full_softmax_fold_in(
            frozen, rows, items, n_rows, n_items, offsets, settings.l2, settings.learning_rate
        )
    pairs = _SampledPairs.of(rows, items, pair_keys, n_rows, n_items, settings, device)
    init_counter = np.arange(frozen.user_dim, dtype=np.uint64)[None, :] | np.uint64(1 << 40)
    init = uniform01(pairs.row_keys[:, None] ^ splitmix64(init_counter)) * 2.0 - 1.0
    users = torch.nn.Parameter(
        torch.as_tensor(init * init_scale, dtype=torch.float32, device=device)
    )
    # The model's own loss against uniform negatives: the softmax needs no log-q correction.
    with threads_for_terms(len(pairs.pair_rows)):
        _optimise(frozen, users, offsets, settings, pairs, loss.sampled(n_items))
    return offsets + users.detach()


@dataclass(frozen=True)
class _SampledPairs:
    """The (history item, negative) pairs of the sampled fold-in, each repeated once per
    negative, with the hash seeds of their draws."""

    row_keys: np.ndarray
    base: np.ndarray
    pair_rows: np.ndarray
    pair_keys: np.ndarray
    rows_t: torch.Tensor
    positives_t: torch.Tensor
    n_items: int
    n_negatives: int

    @classmethod
    def of(
        cls,
        rows: np.ndarray,
        items: np.ndarray,
        pair_keys: np.ndarray,
        n_rows: int,
        n_items: int,
        settings: FoldInSettings,
        device: torch.device,
    ) -> _SampledPairs:
        row_keys = _row_keys(rows, items, n_rows, settings.random_state)
        # Position of each pair in its row: random draws are indexed by (row key,
        # position), which makes each history's fold-in independent of the rest of the
        # batch.
        starts = np.searchsorted(rows, np.arange(n_rows))
        position = (np.arange(len(rows)) - starts[rows]).astype(np.uint64)
        n_neg = settings.n_negatives
        pair_rows = np.repeat(rows, n_neg)
        slot = np.tile(np.arange(n_neg, dtype=np.uint64), len(rows))
        base = splitmix64(np.repeat(row_keys[rows] ^ splitmix64(position), n_neg) + slot)
        return cls(
            row_keys, base, pair_rows, pair_keys, torch.as_tensor(pair_rows, device=device),
            torch.as_tensor(np.repeat(items, n_neg), device=device), n_items, n_neg,
        )  # fmt: skip


def _optimise(
    frozen: FrozenItems,
    users: torch.nn.Parameter,
    offsets: torch.Tensor,
    settings: FoldInSettings,
    pairs: _SampledPairs,
    loss: Loss,
) -> None:
    """Adam on ``users`` against fresh negatives at every step."""
    optimiser = torch.optim.Adam([users], lr=settings.learning_rate)
    n_neg, device = pairs.n_negatives, users.device
    for step in range(settings.steps):
        negatives, valid = _draw_negatives(
            pairs.base, step, pairs.pair_rows, pairs.pair_keys, pairs.n_items
        )
        neg_t = torch.as_tensor(negatives, device=device)
        valid_t = torch.as_tensor(valid, device=device).view(-1, n_neg)
        # index_select: its backward is an index_add, far faster on CPU than the
        # accumulating index_put behind users[rows].
        row_vectors = frozen.user_side(offsets + users).index_select(0, pairs.rows_t)
        # Pairs are repeated n_neg times in a row: one column is the positive scores.
        s_pos = frozen.pair_scores(row_vectors, pairs.positives_t).view(-1, n_neg)[:, 0]
        s_neg = frozen.pair_scores(row_vectors, neg_t).view(-1, n_neg)
        # Negatives that kept hitting the history drop out: a score far below any real
        # one adds nothing to any of the losses (hinge, BPR, WARP, softmax).
        s_neg = torch.where(valid_t, s_neg, torch.full_like(s_neg, _EXCLUDED_SCORE))
        # The losses average over pairs; times the pair count, each history's gradient
        # depends on that history alone (Adam is invariant to the overall scale).
        objective = loss(s_pos, s_neg) * len(s_pos)
        optimiser.zero_grad(set_to_none=True)
        objective.backward()
        optimiser.step()


def _draw_negatives(
    base: np.ndarray, step: int, pair_rows: np.ndarray, pair_keys: np.ndarray, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """Uniform negatives outside each history; ``valid`` is False where every redraw hit."""
    counter = np.uint64(step) << np.uint64(8)
    negatives = (uniform01(base ^ splitmix64(np.full(1, counter))) * n_items).astype(np.int64)
    for attempt in range(1, _MAX_REDRAWS + 1):
        hit = contains(pair_keys, pair_rows * n_items + negatives)
        if not hit.any():
            break
        redraw_counter = np.full(1, counter + np.uint64(attempt))
        fresh = (uniform01(base[hit] ^ splitmix64(redraw_counter)) * n_items).astype(np.int64)
        negatives[hit] = fresh
    valid = ~contains(pair_keys, pair_rows * n_items + negatives)
    return negatives, valid


def score_user_vectors(module: Scorer, user_vectors: torch.Tensor) -> np.ndarray:
    """Scores of folded-in ``user_vectors`` against every item, ``(n, n_items)`` float32,
    as ranking weighs them."""
    frozen = module.frozen_items(for_ranking=True)
    with torch.no_grad():
        return frozen.all_scores(frozen.user_side(user_vectors)).float().cpu().numpy()
