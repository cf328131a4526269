"""What a fitted estimator answers by index: the seam estimators are composed through.

Users speak raw ids (:class:`~tripletrec.models.base.RecommenderBase`); a composite
estimator (:mod:`tripletrec.models.composite`), the service and retrieval speak the indices
of the id maps its parts share. Each public method here checks the estimator's
:class:`~tripletrec.models.capabilities.Capabilities` and then calls the hook a subclass
implements (``_score_histories``, ``_explain_contributions``, ``_vector_space``, ...), so a
caller never needs an estimator's private methods, and an estimator without a capability
refuses with one line.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from tripletrec.exceptions import ParameterError, TripletrecError
from tripletrec.models.capabilities import Capabilities
from tripletrec.models.score_terms import ScoreTerms

if TYPE_CHECKING:
    from tripletrec.data.features import Features
    from tripletrec.data.interactions import IdMap

#: Fit-summary keys: the choices a fit resolved (``"auto"`` settings), and a composite's
#: parts (:mod:`tripletrec.models.composite`).
RESOLVED_KEY = "resolved"
PARTS_KEY = "parts"


class IndexLevelMixin:
    """Capabilities, scoring by index, vectors and fitted state of a fitted estimator.

    Hooks a subclass overrides for each capability it declares: ``_score_histories`` and
    (with side features) ``_user_feature_vectors`` (history_scoring),
    ``_explain_contributions`` (explain), ``_vector_space`` (vector_space).
    """

    # The attributes and hooks below come from RecommenderBase.
    seen_: sp.csr_matrix
    user_map_: IdMap
    item_map_: IdMap
    item_metadata_: Any

    def _check_fitted(self) -> None: ...  # pragma: no cover - RecommenderBase's

    def score_indices(
        self, user_idx: np.ndarray, item_idx: np.ndarray | None = None
    ) -> np.ndarray: ...  # pragma: no cover - RecommenderBase's

    @property
    def n_users_(self) -> int: ...  # pragma: no cover - RecommenderBase's

    @property
    def n_items_(self) -> int: ...  # pragma: no cover - RecommenderBase's

    # ------------------------------------------------------------------ capabilities
    def capabilities(self) -> Capabilities:
        """What this estimator, with its hyper-parameters, can do beyond fit and rank.

        Returns
        -------
        Capabilities
            A frozen value; see :class:`~tripletrec.models.capabilities.Capabilities`.
        """
        return Capabilities()

    def require(self, capability: str, needed_for: str) -> None:
        """Raise one :class:`~tripletrec.exceptions.TripletrecError` line unless this
        estimator declares ``capability``; ``needed_for`` names what asked for it."""
        self.capabilities().require(capability, type(self).__name__, needed_for)

    # ------------------------------------------------------------------ by index
    def score_histories(
        self,
        rows: np.ndarray,
        items: np.ndarray,
        n_rows: int,
        *,
        random_state: int = 0,
        user_features: Features | None = None,
        user_ids: list | None = None,
    ) -> np.ndarray:
        """Scores of every item for ``n_rows`` new users given as (row, item index) pairs.

        Parameters
        ----------
        rows, items : numpy.ndarray of int64
            Row (0 .. n_rows - 1) and item index of each history entry, sorted by row.
        n_rows : int
            Number of new users.
        random_state : int, default 0
            Seed of the fold-in, where the estimator folds histories in.
        user_features : Features, optional
            Side features of the new users, keyed by ``user_ids`` (one id per row).
        user_ids : list, optional
            The new users' ids in ``user_features``.

        Returns
        -------
        numpy.ndarray, shape (n_rows, n_items), float32
        """
        self._check_fitted()
        self.require("history_scoring", "scoring a new user's history")
        offsets = None
        if user_features is not None:
            if user_ids is None or len(user_ids) != n_rows:
                raise ParameterError("user_features need user_ids: one id per history row")
            offsets = self._user_feature_vectors(user_features, list(user_ids))
        return self._score_histories(rows, items, n_rows, random_state, offsets)

    def history_contributions(self, history: np.ndarray, item_idx: int) -> tuple[np.ndarray, bool]:
        """What each of the distinct item indices ``history`` adds to the score of item
        ``item_idx``, and whether the contributions add up to the score exactly."""
        self._check_fitted()
        self.require("explain", "explaining a score")
        return self._explain_contributions(history, item_idx)

    def item_vectors(self) -> np.ndarray:
        """One vector per item, in index order: similar items have the highest cosine."""
        self._check_fitted()
        return np.asarray(self._item_vectors(), dtype=np.float32)

    def vector_space(self) -> tuple[np.ndarray, np.ndarray] | None:
        """User and item vectors whose dot products rank as the model does, or None.

        Returns
        -------
        (users, items) : tuple of numpy.ndarray, shapes (n_users, d) and (n_items, d)
            float32, C-contiguous; None for an estimator without the ``vector_space``
            capability (scores that no inner product gives: the deep model, EASE, blends).
        """
        self._check_fitted()
        return self._vector_space() if self.capabilities().vector_space else None

    def term_items(self) -> np.ndarray:
        """The item vectors of :meth:`score_terms`'s inner-product part, (n_items, d)
        float32: the vector space's where there is one, none (``d`` = 0) by default."""
        self._check_fitted()
        return np.ascontiguousarray(self._term_items(), dtype=np.float32)

    def score_terms(self, user_idx: np.ndarray) -> ScoreTerms:
        """Known users' scores over the catalogue split as ``queries @ term_items().T +
        rest`` (:class:`~tripletrec.models.score_terms.ScoreTerms`), for retrieval."""
        self._check_fitted()
        return self._score_terms(np.asarray(user_idx, dtype=np.int64))

    # ------------------------------------------------------------------ fitted state
    def fit_summary(self) -> dict:
        """JSON-serialisable facts about the fit, kept with a saved model."""
        self._check_fitted()
        return self._fit_summary()

    def model_state(self) -> dict[str, np.ndarray]:
        """The estimator's own fitted arrays by name (not the maps nor ``seen_``)."""
        self._check_fitted()
        return self._model_state()

    def restore(
        self,
        user_map: IdMap,
        item_map: IdMap,
        item_metadata: Any,
        seen: sp.csr_matrix,
        state: dict[str, np.ndarray],
        fit_summary: dict,
    ) -> IndexLevelMixin:
        """Become the fitted estimator whose :meth:`model_state` and :meth:`fit_summary`
        were ``state`` and ``fit_summary``, on these id maps, metadata and seen items.

        Returns
        -------
        self
        """
        self.user_map_, self.item_map_ = user_map, item_map
        self.item_metadata_, self.seen_ = item_metadata, seen
        self._load_model_state(dict(state), dict(fit_summary))
        return self

    def _get_state(self) -> dict[str, np.ndarray]:
        """Every fitted array, by name, for ``tripletrec.persistence.save_model``."""
        return {
            "seen.indptr": self.seen_.indptr.astype(np.int64),
            "seen.indices": self.seen_.indices.astype(np.int64),
            **self._model_state(),
        }

    def _set_state(self, state: dict[str, np.ndarray], fit_summary: dict) -> None:
        """Restore what :meth:`_get_state` returned (maps already set)."""
        state = dict(state)
        indptr, indices = state.pop("seen.indptr"), state.pop("seen.indices")
        if len(indptr) != self.n_users_ + 1 or (len(indices) and indices.max() >= self.n_items_):
            raise ValueError("seen items do not fit the id maps")
        self.seen_ = sp.csr_matrix(
            (np.ones(len(indices), np.float32), indices, indptr),
            shape=(self.n_users_, self.n_items_),
        )
        self._load_model_state(state, fit_summary)

    # ------------------------------------------------------------------ hooks
    def _fit_summary(self) -> dict:
        """JSON-serialisable facts about the fit; override."""
        return {}

    @abstractmethod
    def _model_state(self) -> dict[str, np.ndarray]:
        """The model's own fitted arrays."""

    @abstractmethod
    def _load_model_state(self, state: dict[str, np.ndarray], fit_summary: dict) -> None:
        """Restore the model's own fitted arrays."""

    @abstractmethod
    def _item_vectors(self) -> np.ndarray:
        """One vector per item; similar items are those with the highest cosine."""

    def _vector_space(self) -> tuple[np.ndarray, np.ndarray]:
        """The vectors of :meth:`vector_space`; override with the capability."""
        raise TripletrecError(f"{type(self).__name__} has no user/item vector space")

    def _term_items(self) -> np.ndarray:
        """See :meth:`term_items`; override with :meth:`_score_terms`."""
        if self.capabilities().vector_space:
            return self._vector_space()[1]
        return np.zeros((self.n_items_, 0), np.float32)

    def _score_terms(self, user_idx: np.ndarray) -> ScoreTerms:
        """See :meth:`score_terms`. By default the vector space's query vectors (all
        computed, then the block's taken: callers that query often keep the space), or
        else the whole scores as the remainder."""
        if self.capabilities().vector_space:
            return ScoreTerms(self._vector_space()[0][user_idx])
        scores = np.asarray(self.score_indices(user_idx), dtype=np.float32)
        empty = np.zeros((len(user_idx), 0), np.float32)
        return ScoreTerms(empty, scores, empty)

    def _score_histories(
        self, rows: np.ndarray, items: np.ndarray, n_rows: int, random_state: int,
        offsets: Any = None,
    ) -> np.ndarray:  # fmt: skip
        """Scores of new users' histories (see :meth:`score_histories`); ``offsets``:
        their vectors from :meth:`_user_feature_vectors`, or None. Override."""
        raise TripletrecError(f"{type(self).__name__} cannot recommend from a history")

    def _user_feature_vectors(self, features: Features, user_ids: list) -> Any:
        """Vectors of new users from their side features; override."""
        raise TripletrecError(f"this {type(self).__name__} was fitted without user features")

    def _explain_contributions(self, history: np.ndarray, item_idx: int) -> tuple[np.ndarray, bool]:
        """See :meth:`history_contributions`; override."""
        raise ParameterError(
            f"{type(self).__name__} cannot explain a score: its scores do not come from "
            "the user's history"
        )
