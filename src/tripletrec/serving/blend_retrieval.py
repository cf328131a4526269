"""Approximate top-k for a blend of standardised scores (``tripletrec.Recommender``).

A blend ranks by ``sum_p w_p max(z_p, floor_p)``, ``z_p`` a part's scores standardised over
the catalogue (:meth:`~tripletrec.models.hybrid.HybridRecommender.blend_parts`). No inner
product gives that, but each part's scores are ``queries @ items.T + rest``
(:mod:`tripletrec.models.score_terms`) with an exact mean and spread per user. So:

1. one faiss index (:class:`~tripletrec.serving.retrieval.ANNIndex`) holds every part's
   item vectors side by side; a user's query is each part's query scaled as the blend
   scales it (``w_p / spread_p``): a search gives the best items of the blend without its
   remainders and floors;
2. for each part with a floor, the same index is searched with the other parts' queries
   alone (the items that part leaves at its floor are ranked by the others);
3. each part's remainder (the graph filter's linear filter, EASE's whole score) adds its
   own best items, which the remainder ranks exactly;
4. the union is re-scored exactly: the scores returned are the model's scores.

Only the candidate set is approximate: ``benchmarks/perf/blend_retrieval.py`` measures its
recall against exact ranking and the latency of both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from tripletrec.evaluation.topk import merge_top_k
from tripletrec.exceptions import TripletrecError
from tripletrec.models.score_terms import BlendPart, ItemMoments, ScoreTerms
from tripletrec.serving.retrieval import ANNIndex, IndexSettings, Retriever

#: ``space`` of a blend's index (:meth:`ANNIndex.save`).
BLEND_SPACE = "blend"
#: Candidates each source proposes per user, as a multiple of ``k`` (plus the user's
#: exclusions); chosen with ``benchmarks/perf/blend_retrieval.py``.
CANDIDATE_FACTOR = 4


def has_blend(model: Any) -> bool:
    """Whether ``model`` is a blend this module retrieves for (it names its parts)."""
    return callable(getattr(model, "blend_parts", None))


@dataclass(frozen=True)
class _PartSpace:
    """A blend part with what retrieval keeps of it: its item vectors and their moments,
    and, where the part has a vector space, every user's query (no per-request forward)."""

    part: BlendPart
    items: np.ndarray
    moments: ItemMoments
    user_queries: np.ndarray | None

    @classmethod
    def of(cls, part: BlendPart) -> _PartSpace:
        space = part.model.vector_space()
        users, items = (None, part.model.term_items()) if space is None else space
        return cls(part, items, ItemMoments.of(items), users)

    def terms(self, user_idx: np.ndarray) -> ScoreTerms:
        if self.user_queries is not None:
            return ScoreTerms(self.user_queries[user_idx])
        return self.part.model.score_terms(user_idx)


class BlendRetriever(Retriever):
    """Approximate top-k of a blend's known users, re-scored exactly.

    Build with :meth:`build` (or load the index with :meth:`load`), query with
    :meth:`search`.
    """

    space = BLEND_SPACE

    def __init__(self, model: Any, index: ANNIndex, spaces: list[_PartSpace]) -> None:
        self.model = model
        self.index = index
        self._spaces = spaces
        self._widths = [space.items.shape[1] for space in spaces]

    @staticmethod
    def _spaces_of(model: Any) -> list[_PartSpace]:
        if not has_blend(model):
            raise TripletrecError(f"{type(model).__name__} is not a blend of parts")
        spaces = [_PartSpace.of(part) for part in model.blend_parts()]
        if not sum(space.items.shape[1] for space in spaces):
            raise TripletrecError(
                f"no part of this {type(model).__name__} has item vectors to index"
            )
        return spaces

    @classmethod
    def build(cls, model: Any, settings: IndexSettings | None = None) -> BlendRetriever:
        """Index the item vectors of every part of the fitted blend ``model``."""
        spaces = cls._spaces_of(model)
        items = np.hstack([space.items for space in spaces])
        return cls(model, ANNIndex.build(items, settings), spaces)

    @classmethod
    def load(cls, model_dir: str | Path, model: Any, weights_sha256: str) -> BlendRetriever:
        """The index saved in ``model_dir`` for ``model`` (loaded from the same directory).

        Raises
        ------
        ModelFileError
            If the index is missing, unreadable, or was built for another model.
        """
        spaces = cls._spaces_of(model)
        items = np.hstack([space.items for space in spaces])
        return cls(model, ANNIndex.load(model_dir, items, weights_sha256, cls.space), spaces)

    def search(
        self,
        user_idx: np.ndarray,
        k: int,
        exclude: sp.spmatrix | None = None,
        nprobe: int | None = None,
        candidate_factor: int = CANDIDATE_FACTOR,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The approximate top-``k`` items of known users ``user_idx`` with their exact
        blended scores; ``exclude`` (n_users x n_items, non-zero: never returned) usually
        holds their training items. ``nprobe``: lists the index scans (its setting by
        default); ``candidate_factor``: candidates per source, times ``k``, beyond the
        exclusions. Returns ``(indices, scores)``, int64 and float32, shape (n_users, k),
        padded with -1 / -inf, ties to the lower item index."""
        user_idx = np.asarray(user_idx, dtype=np.int64)
        n_items = self.model.n_items_
        exclude = (
            sp.csr_matrix((len(user_idx), n_items), dtype=bool)
            if exclude is None
            else sp.csr_matrix(exclude, dtype=bool)
        )
        terms = [space.terms(user_idx) for space in self._spaces]
        moments = [t.moments(space.moments) for t, space in zip(terms, self._spaces)]
        n_excluded = int(np.diff(exclude.indptr).max(initial=0))
        n_fetch = min(n_items, candidate_factor * k + n_excluded)
        candidates = self._candidates(terms, moments, exclude, n_fetch, nprobe)
        valid = candidates >= 0
        safe = np.where(valid, candidates, 0)
        if exclude.nnz:
            rows = np.repeat(np.arange(len(safe)), safe.shape[1])
            valid &= ~np.asarray(exclude[rows, safe.ravel()]).reshape(safe.shape)
        # Score only the valid candidates: the sources overlap, and a user's exclusions
        # (which every source over-fetches for) are often most of them.
        order = np.argsort(~valid, axis=1, kind="stable")[:, : max(int(valid.sum(1).max()), 1)]
        safe = np.take_along_axis(safe, order, 1)
        valid = np.take_along_axis(valid, order, 1)
        scores = np.zeros(safe.shape, np.float64)
        for space, part_terms, (mean, spread) in zip(self._spaces, terms, moments):
            z = (part_terms.at(space.items, safe) - mean[:, None]) / spread[:, None]
            scores += space.part.weight * np.maximum(z, space.part.floor)
        return merge_top_k(np.where(valid, safe, -1), scores.astype(np.float32), k)

    def _candidates(
        self,
        terms: list[ScoreTerms],
        moments: list[tuple[np.ndarray, np.ndarray]],
        exclude: sp.csr_matrix,
        n_fetch: int,
        nprobe: int | None,
    ) -> np.ndarray:
        """Each user's candidates from every source, duplicates and padding as -1."""
        scaled = [
            np.asarray(t.queries, np.float32) * (space.part.weight / spread)[:, None]
            for t, space, (_, spread) in zip(terms, self._spaces, moments)
        ]
        queries = [np.hstack(scaled)]
        for p, space in enumerate(self._spaces):
            if np.isfinite(space.part.floor) and len(self._spaces) > 1:
                others = [np.zeros_like(q) if i == p else q for i, q in enumerate(scaled)]
                queries.append(np.hstack(others))
        found = [self.index.candidates(q, n_fetch, nprobe) for q in queries]
        for part_terms in terms:
            if part_terms.rest is not None:
                found.append(_best_of_rest(part_terms.rest, exclude, n_fetch))
        candidates = np.sort(np.hstack(found), axis=1)
        repeated = np.zeros(candidates.shape, bool)
        repeated[:, 1:] = candidates[:, 1:] == candidates[:, :-1]
        return np.where(repeated, -1, candidates)


def _best_of_rest(rest: np.ndarray, exclude: sp.csr_matrix, n: int) -> np.ndarray:
    """The ``n`` highest entries of each row of ``rest`` (excluded items left out), in no
    order."""
    masked = np.array(rest, dtype=np.float32)
    rows, cols = exclude.nonzero()
    masked[rows, cols] = -np.inf
    n = min(n, masked.shape[1])
    return np.argpartition(-masked, n - 1, axis=1)[:, :n].astype(np.int64)
