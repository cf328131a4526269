"""Sample recommendations of a run report: a few users, their history, what the model ranks
for them and why.

The users are chosen from the history lengths alone (a light, a typical and a heavy user:
fixed quantiles, ties to the lower index), so the same model always shows the same users.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tripletrec.exceptions import TripletrecError

#: Quantiles of the history length the sample users are taken at.
SAMPLE_QUANTILES = (0.1, 0.5, 0.9)


@dataclass(frozen=True)
class NamedItem:
    """A raw item id and its name (None when the model has no names for it)."""

    item: Any
    name: str | None


@dataclass(frozen=True)
class Because:
    """A history item behind a recommendation, and its share of the score."""

    item: NamedItem
    share: float


@dataclass(frozen=True)
class Recommendation:
    """One recommended item, its score and the history items that explain it most."""

    item: NamedItem
    score: float
    because: tuple[Because, ...]


@dataclass(frozen=True)
class SampleUser:
    """A sample user: history (the training positives, up to the shown number), its full
    length, and the recommendations."""

    user: Any
    history: tuple[NamedItem, ...]
    n_history: int
    recommendations: tuple[Recommendation, ...]


@dataclass(frozen=True)
class Samples:
    """The sample users, and why explanations are missing (None when they are there)."""

    users: tuple[SampleUser, ...]
    explain_note: str | None


def sample_user_rows(
    lengths: np.ndarray, quantiles: tuple[float, ...] = SAMPLE_QUANTILES
) -> np.ndarray:
    """Row indices of the users at ``quantiles`` of ``lengths`` (distinct, users with an
    empty history left out), ordered by length then index."""
    candidates = np.flatnonzero(lengths > 0)
    if len(candidates) == 0:
        return np.empty(0, np.int64)
    order = candidates[np.lexsort((candidates, lengths[candidates]))]
    # Half up, not numpy's half to even: the median of an even count is the upper one.
    positions = np.floor(np.asarray(quantiles) * (len(order) - 1) + 0.5).astype(np.int64)
    return order[np.unique(positions)]


def _named(model: Any, items: np.ndarray) -> list[NamedItem]:
    names = model.item_names(items)
    shown = [None] * len(items) if names is None else names
    return [
        NamedItem(item.item() if isinstance(item, np.generic) else item, _name(name))
        for item, name in zip(items, shown)
    ]


def _name(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return str(value)


def _because(model: Any, user: Any, item: Any, n: int) -> tuple[Because, ...]:
    """The ``n`` history items behind ``item`` by ``model.explain``."""
    explanation = model.explain(user, item, n=n)
    items = np.asarray(explanation.items)[:n]
    shares = np.asarray(explanation.shares, dtype=float)[:n]
    return tuple(Because(named, float(share)) for named, share in zip(_named(model, items), shares))


def collect_samples(model: Any, *, k: int = 10, n_history: int = 15, n_because: int = 3) -> Samples:
    """Sample users of a fitted ``model`` with their recommendations and explanations.

    Parameters
    ----------
    model : RecommenderBase
        A fitted model; the history shown is its training positives (``seen_``).
    k : int
        Recommendations per user.
    n_history : int
        History items shown per user (the rest are counted).
    n_because : int
        History items shown beside each recommendation (``model.explain``).

    Returns
    -------
    Samples
    """
    seen = model.seen_
    rows = sample_user_rows(np.diff(seen.indptr))
    users = model.user_map_.ids[rows]
    items, scores = model.recommend(users, k=k)
    explain_note = None
    if not model.capabilities().explain:
        explain_note = f"{type(model).__name__} cannot explain its scores: no 'because you liked'"
    samples = []
    for row, raw_user, user_items, user_scores in zip(rows, users, items, scores):
        user = raw_user.item() if isinstance(raw_user, np.generic) else raw_user
        history = model.item_map_.ids[seen.indices[seen.indptr[row] : seen.indptr[row + 1]]]
        keep = np.isfinite(user_scores)
        recommendations = []
        for named, score in zip(_named(model, user_items[keep]), user_scores[keep]):
            because: tuple[Because, ...] = ()
            if explain_note is None:
                try:
                    because = _because(model, user, named.item, n_because)
                except TripletrecError as exc:
                    explain_note = f"no 'because you liked': {exc}"
            recommendations.append(Recommendation(named, float(score), because))
        samples.append(
            SampleUser(
                user,
                tuple(_named(model, history[:n_history])),
                len(history),
                tuple(recommendations),
            )
        )
    return Samples(tuple(samples), explain_note)
