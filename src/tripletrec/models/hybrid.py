"""The default factor model and EASE, blended per user: a history-aware recommender.

A low-rank factor model (:class:`~tripletrec.models.triplet.TripletRecommender`) ranks the
whole catalogue well (AUC) but cannot represent item-to-item structure finer than its
rank: a sequel, a second season. EASE (:class:`~tripletrec.models.ease.EASERecommender`)
is full rank on items and ranks the top of the list well, but leans on co-occurrence
alone. :class:`HybridRecommender` fits both on the same positives and ranks by

``(1 - weight) * z(factor scores) + weight * max(z(EASE scores), item_item_floor)``

where ``z`` standardises a user's scores over the catalogue (mean 0, standard deviation 1),
so that neither model's scale decides. The floor (0: the user's mean) lets EASE promote
the items it scores above average and leaves the order of the rest, where co-occurrence
counts are noise, to the factor model: that keeps the factor model's AUC. EASE's ``l2``
is chosen on an inner split of the training positives, over the most popular items only
(:func:`~tripletrec.models.ease_l2.chosen_l2`), and EASE weighs each user's positives by
one over the square root of the user's number of positives, so that long histories do not
dominate the co-occurrences (``user_weight_exponent``;
``benchmarks/studies/item_item_weighting.py`` chose it); items with fewer than
:data:`EASE_MIN_ITEM_POSITIVES` positives stay out of EASE's inverse, ranked by the factor
model (``benchmarks/studies/ease_min_positives.py``).
``benchmarks/studies/hybrid_validation.py`` chose the weight and
``benchmarks/studies/hybrid_rule.py`` the floor, the factor model's epochs and the search's
catalogue, all on validation splits of the training positives of three data sets;
``benchmarks/perf/compare.py`` measures the result on test (its ``Recommender()`` row).

The factor model is history-aware too (its ``user_history``): a user's vector is their own
embedding plus the mean of learned embeddings of the items they liked (the asymmetric-MF /
FISM idea; ``benchmarks/studies/history_aware.py`` chose it on validation).

New users: the EASE part scores a history exactly; the factor part takes the history's
item embeddings as the user's features and folds the rest in.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from tripletrec._checks import finite_number, fraction
from tripletrec._files import json_lists_to_tuples
from tripletrec.data.features import history_features
from tripletrec.data.interactions import Interactions
from tripletrec.exceptions import DataError, ParameterError
from tripletrec.models.base import RecommenderBase
from tripletrec.models.composite import CompositeRecommender, part_entry
from tripletrec.models.ease import EASERecommender, check_ease_fits
from tripletrec.models.ease_l2 import L2_GRID, chosen_l2
from tripletrec.models.graph_filter import GraphFilterRecommender
from tripletrec.models.hybrid_factor import factor_model
from tripletrec.models.index_level import PARTS_KEY, RESOLVED_KEY
from tripletrec.models.score_terms import MIN_SPREAD, BlendPart, blend, standardised
from tripletrec.models.triplet import TripletRecommender

#: ``item_item="auto"`` fits EASE on catalogues of at most this many items and the graph
#: filter (:class:`~tripletrec.models.graph_filter.GraphFilterRecommender`) above. EASE
#: ranks better on the small sets (up to 7,157 items: ``benchmarks/results/graph_filter.md``)
#: and on Gowalla's cores, where it holds every item, up to 18,649 items; the filter ranks
#: better where most items are too rare for EASE (user samples of Gowalla,
#: ``benchmarks/results/decay_density.md``), as a catalogue past 10,000 items may be. EASE
#: costs items^3 time and 4 bytes x items^2 memory (``benchmarks/results/dense_limits.md``):
#: about 4 s and 430 MiB at 10,000 items, 16 s and 1.2 GiB at 17,600, a refusal beyond
#: 25,505 (AVX-512 kernels). The graph filter's fit grows with the positives and items x k.
#: A fixed count, not the memory found at run time, so that the same data gives the same
#: model on every machine.
EASE_MAX_ITEMS = 10_000
#: EASE here leaves out of its inverse the items with fewer training positives than this
#: (:class:`~tripletrec.models.ease.EASERecommender`'s ``min_item_positives``): under the
#: ridge ``l2`` chooses, so few co-occurrences barely move an item's weights from zero,
#: while the inverse costs the cube of the items it holds. Chosen on validation splits
#: (``benchmarks/studies/ease_min_positives.py``): it ranks as keeping every item on all
#: three data sets, with about half of anime-5k's active items in the inverse.
EASE_MIN_ITEM_POSITIVES = 5
#: The item-item parts ``item_item`` names.
ItemItemKind = Literal["auto", "ease", "graph_filter"]
ITEM_ITEM_KINDS: tuple[str, ...] = ("auto", "ease", "graph_filter")


class HybridRecommender(CompositeRecommender):
    """The default factor model and an item-item model (EASE, or a graph filter on large
    catalogues), blended per user on standardised scores.

    Parameters
    ----------
    weight : float, default 0.3
        The item-item model's share of the blend, in [0, 1]: 0 ranks as the factor model alone, 1 as
        EASE alone. 0.3 was chosen on validation splits of the training positives of
        anime-tv, MovieLens-100k and anime-5k (``benchmarks/studies/hybrid_validation.py``,
        ``benchmarks/studies/hybrid_weight.py``: it ties 0.4 and 0.5 on NDCG@10 with a better AUC).
    l2 : float or "auto", default "auto"
        EASE's ridge penalty. ``"auto"`` fits EASE for each value of
        :data:`~tripletrec.models.ease_l2.L2_GRID` on 80 % of the training positives of the
        :data:`~tripletrec.models.ease_l2.L2_SEARCH_ITEMS` most popular items and keeps
        the one with the best NDCG@10 on the other 20 %, judged on at most
        :data:`~tripletrec.models.ease_l2.L2_SEARCH_USERS` users (EASE alone: the factor
        model is fitted once, on everything).
    item_item_floor : float or None, default 0.0
        EASE's standardised scores are raised to at least this value before the blend, so
        EASE reorders only the items it scores above ``floor`` standard deviations from
        the user's mean; None blends them as they are. 0 was chosen on validation splits
        (``benchmarks/studies/hybrid_rule.py``).
    user_weight_exponent : float, default 0.5
        EASE's user weighting (:class:`~tripletrec.models.ease.EASERecommender`): each
        user's positives weigh one over the ``user_weight_exponent``-th power of the
        user's number of positives in ``X'X``, so that long histories do not dominate the
        co-occurrences. 0.5 was chosen on validation splits
        (``benchmarks/studies/item_item_weighting.py``); 0 is Steck's EASE.
    item_item : {"auto", "ease", "graph_filter"}, default "auto"
        The item-item part: EASE, or
        :class:`~tripletrec.models.graph_filter.GraphFilterRecommender` (GF-CF, whose
        cost grows with the positives, not items^2). ``"auto"`` fits EASE on catalogues
        of at most :data:`EASE_MAX_ITEMS` items and the graph filter above; ``l2`` and
        ``user_weight_exponent`` concern EASE only.
    factor : mapping, optional
        Hyper-parameters of the factor model, passed to
        :class:`~tripletrec.models.triplet.TripletRecommender` over
        :data:`~tripletrec.models.hybrid_factor.FACTOR_DEFAULTS`, adapted to the data by
        :func:`~tripletrec.models.hybrid_factor.factor_model` (a small weight decay beside
        EASE on data at least 1 % dense; without it, batches grown with the data) where
        ``factor`` does not name the setting. ``random_state`` is this estimator's.
    random_state : int or None
        Seed of the factor model and of the inner split: the same seed on the same data
        gives the same model.

    Attributes
    ----------
    factor_ : TripletRecommender
        The fitted factor model.
    item_item_ : EASERecommender or GraphFilterRecommender
        The fitted item-item model.
    item_item_kind_ : str
        ``"ease"`` or ``"graph_filter"``: ``item_item`` with ``"auto"`` resolved.
    parts_ : dict
        Both, by name (``"factor"``, ``"item_item"``): how they are saved and loaded
        (:class:`~tripletrec.models.composite.CompositeRecommender`).
    l2_ : float or None
        The ``l2`` EASE was fitted with (``"auto"`` resolved); None for the graph filter.
    fit_seconds_ : float
        Wall time of the last ``fit``, both models and the choice of ``l2`` included.
    user_map_, item_map_, seen_, item_metadata_
        See :class:`~tripletrec.models.base.RecommenderBase`.

    Notes
    -----
    The blend is no inner product, but its parts split into one plus a remainder with
    exact moments (:mod:`tripletrec.models.score_terms`): ``tripletrec index`` searches
    them (:mod:`tripletrec.serving.blend_retrieval`). EASE refuses
    catalogues whose items x items matrices do not fit in memory or that the linked LAPACK
    cannot factorise (about 25,000 items with scipy's OpenBLAS); so does this model with
    ``item_item="ease"``, with the same one line, before it searches ``l2`` or trains its
    factor model.
    """

    part_settings: ClassVar[Mapping[str, type[RecommenderBase]]] = {"factor": TripletRecommender}

    def __init__(
        self,
        weight: float = 0.3,
        l2: float | Literal["auto"] = "auto",
        item_item_floor: float | None = 0.0,
        user_weight_exponent: float = 0.5,
        item_item: ItemItemKind = "auto",
        factor: Mapping[str, Any] | None = None,
        random_state: int | None = None,
    ) -> None:
        self.weight = weight
        self.l2 = l2
        self.item_item_floor = item_item_floor
        self.user_weight_exponent = user_weight_exponent
        self.item_item = item_item
        self.factor = factor
        self.random_state = random_state

    # ------------------------------------------------------------------ parts
    def _factor_model(
        self, item_item_kind: str = "ease", seen: sp.csr_matrix | None = None
    ) -> TripletRecommender:
        """The factor model for ``factor``'s settings beside ``item_item_kind`` on ``seen``
        (:func:`~tripletrec.models.hybrid_factor.factor_model`)."""
        params = {} if self.factor is None else json_lists_to_tuples(dict(self.factor))
        return factor_model(params, self.random_state, item_item_kind, seen)

    def _item_item_model(self, l2: float) -> EASERecommender:
        return EASERecommender(
            l2=l2,
            user_weight_exponent=self.user_weight_exponent,
            min_item_positives=EASE_MIN_ITEM_POSITIVES,
        )

    def _item_item_kind(self, n_items: int) -> str:
        """``item_item`` with ``"auto"`` resolved for a catalogue of ``n_items`` items."""
        if self.item_item != "auto":
            return str(self.item_item)
        return "ease" if n_items <= EASE_MAX_ITEMS else "graph_filter"

    def _part_prototypes(self) -> dict[str, RecommenderBase]:
        l2 = L2_GRID[0] if self.l2 == "auto" else float(self.l2)
        item_item: RecommenderBase = (
            GraphFilterRecommender(random_state=self.random_state)
            if self.item_item == "graph_filter"
            else self._item_item_model(l2)
        )
        kind = "graph_filter" if self.item_item == "graph_filter" else "ease"
        return {"factor": self._factor_model(kind), "item_item": item_item}

    def _install_parts(self, parts: Mapping[str, RecommenderBase], fit_summary: dict) -> None:
        self.parts_ = dict(parts)
        self.factor_, self.item_item_ = parts["factor"], parts["item_item"]
        is_ease = isinstance(self.item_item_, EASERecommender)
        self.item_item_kind_ = "ease" if is_ease else "graph_filter"
        self.l2_ = None if fit_summary.get("l2") is None else float(fit_summary["l2"])
        self.item_item_floor_ = _floor(self.item_item_floor)
        self.fit_seconds_ = float(fit_summary.get("fit_seconds", float("nan")))

    def _own_fit_summary(self) -> dict:
        return {
            "fit_seconds": self.fit_seconds_,
            "l2": self.l2_,
            RESOLVED_KEY: {"item_item": self.item_item_kind_, "item_item_l2": self.l2_},
        }

    # ------------------------------------------------------------------ fitting
    def fit(self, data: Interactions | sp.spmatrix) -> HybridRecommender:
        """Fit the factor model and the item-item model on the training positives of ``data``.

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
            If ``weight`` is outside [0, 1], ``l2`` is neither "auto" nor a positive
            number, ``item_item`` is not one of :data:`ITEM_ITEM_KINDS`,
            ``item_item_floor`` is neither None nor a finite number,
            ``user_weight_exponent`` is not a finite number >= 0, or ``factor`` has a bad
            hyper-parameter.
        DataError
            For bad data, or a catalogue too large for EASE.
        """
        fraction("weight", self.weight)
        if self.l2 != "auto":
            finite_number("l2", self.l2, low=0.0, low_open=True)
        _floor(self.item_item_floor)
        exponent = finite_number("user_weight_exponent", self.user_weight_exponent, low=0.0)
        if self.item_item not in ITEM_ITEM_KINDS:
            raise ParameterError(
                f"item_item must be one of {', '.join(map(repr, ITEM_ITEM_KINDS))}, "
                f"not {self.item_item!r}"
            )
        self._factor_model()  # a bad ``factor`` setting is refused before any work
        start = time.perf_counter()
        seen = self._set_training_data(data)
        kind = self._item_item_kind(seen.shape[1])
        factor = self._factor_model(kind, seen)
        l2: float | None = None
        if kind == "ease":
            try:
                # Before the l2 search and the factor model's minutes of training: a
                # catalogue EASE cannot fit is refused in well under a second.
                check_ease_fits(
                    f"{type(self).__name__} (its EASE part)",
                    seen,
                    min_item_positives=EASE_MIN_ITEM_POSITIVES,
                )
            except DataError:
                self.__dict__.pop("seen_", None)  # refused: unfitted, not half-fitted
                raise
            l2 = (
                float(self.l2)
                if self.l2 != "auto"
                else chosen_l2(
                    seen,
                    self.random_state,
                    user_weight_exponent=exponent,
                    min_item_positives=EASE_MIN_ITEM_POSITIVES,
                )[0]
            )
            item_item: RecommenderBase = self._item_item_model(l2).fit(data)
        else:
            item_item = GraphFilterRecommender(random_state=self.random_state).fit(data)
        factor.fit(data)
        self.fit_seconds_ = time.perf_counter() - start
        summary = {"l2": l2, "fit_seconds": self.fit_seconds_}
        self._install_parts({"factor": factor, "item_item": item_item}, summary)
        return self

    # ------------------------------------------------------------------ scoring
    def _blend(self, factor_scores: np.ndarray, item_item_scores: np.ndarray) -> np.ndarray:
        return blend(factor_scores, item_item_scores, float(self.weight), self.item_item_floor_)

    def _score_block(self, user_idx: np.ndarray, item_idx: np.ndarray | None) -> np.ndarray:
        # Standardised over the whole catalogue whatever ``item_idx`` asks for, so that a
        # score does not depend on which other items are scored with it.
        scores = self._blend(
            self.factor_.score_indices(user_idx), self.item_item_.score_indices(user_idx)
        )
        return scores if item_idx is None else scores[:, item_idx]

    def _score_histories(
        self,
        rows: np.ndarray,
        items: np.ndarray,
        n_rows: int,
        random_state: int,
        offsets: Any = None,
    ) -> np.ndarray:
        """The factor model folds each history in; EASE scores it as it is. (``offsets``
        come from user features given to ``recommend_from_history``, which this model
        refuses: it was not fitted with any of the caller's.)"""
        factor = self._factor_history_scores(rows, items, n_rows, random_state)
        item_item = self.item_item_.score_histories(rows, items, n_rows)
        return self._blend(factor, item_item)

    def _factor_history_scores(
        self, rows: np.ndarray, items: np.ndarray, n_rows: int, random_state: int
    ) -> np.ndarray:
        """The factor model's scores of new users (its ``user_history_`` makes a history
        their features). Files saved before ``user_history`` existed passed the histories
        as the caller's features, or (older still) had none: the history is folded in."""
        factor = self.factor_
        if factor.user_history_ or factor.user_encoder_ is None:
            return factor.score_histories(rows, items, n_rows, random_state=random_state)
        new_users = [f"new user {row}" for row in range(n_rows)]
        return self.factor_.score_histories(
            rows, items, n_rows, random_state=random_state,
            user_features=history_features(rows, items, new_users), user_ids=new_users,
        )  # fmt: skip

    def _explain_contributions(self, history: np.ndarray, item_idx: int) -> tuple[np.ndarray, bool]:
        """Each part's contributions, scaled as the blend scales that part's scores (by
        the weight over the spread of the history's scores; EASE's part is 0 where the
        item's score is held at the floor); approximate, as the factor model's split and
        the standardisation's centring are."""
        rows = np.zeros(len(history), np.int64)
        weight = float(self.weight)
        factor_scores = self._factor_history_scores(rows, history, 1, 0)
        item_item_scores = self.item_item_.score_histories(rows, history, 1)
        parts = [(self.factor_, factor_scores, 1.0 - weight)]
        if standardised(item_item_scores)[0, item_idx] > self.item_item_floor_:
            parts.append((self.item_item_, item_item_scores, weight))
        total = np.zeros(len(history), np.float64)
        for model, scores, share in parts:
            contributions, _ = model.history_contributions(history, item_idx)
            spread = max(float(np.std(scores, dtype=np.float64)), MIN_SPREAD)
            total += share * np.asarray(contributions, np.float64) / spread
        return total, False

    def blend_parts(self) -> tuple[BlendPart, BlendPart]:
        """The blend as its parts, weights and floors: what approximate retrieval
        (:mod:`tripletrec.serving.blend_retrieval`) needs to score any item exactly."""
        self._check_fitted()
        weight = float(self.weight)
        return (
            BlendPart(self.factor_, 1.0 - weight),
            BlendPart(self.item_item_, weight, self.item_item_floor_),
        )

    def _item_vectors(self) -> np.ndarray:
        """The factor model's item vectors: similar items are near in its space."""
        return self.factor_.item_vectors()

    # ------------------------------------------------------------------ persistence
    def _load_model_state(self, state: dict[str, np.ndarray], fit_summary: dict) -> None:
        if PARTS_KEY not in fit_summary:  # saved before parts were named by class
            parts = {"factor": self._factor_model(), "item_item": self._item_item_model(0.0)}
            # Such files predate min_item_positives: their EASE kept every active item.
            parts["item_item"].set_params(l2=float(fit_summary["l2"]), min_item_positives=1)
            fit_summary = {
                **fit_summary,
                PARTS_KEY: {
                    name: part_entry(part, fit_summary[name]) for name, part in parts.items()
                },
            }
        super()._load_model_state(state, fit_summary)


def _floor(setting: float | None) -> float:
    """``item_item_floor`` checked, with None as minus infinity (no floor)."""
    return -np.inf if setting is None else finite_number("item_item_floor", setting)
