"""The :class:`~tripletrec.models.base.RecommenderBase` hooks of an estimator whose fitted
state is a :class:`~tripletrec.models.interface.Scorer` in ``module_``: scoring by index,
fold-in scores, and the arrays a saved model holds.

:class:`~tripletrec.models.triplet.TripletRecommender` is the estimator; this mixin keeps
what it answers to the base contract apart from its hyper-parameters and fitting.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tripletrec._system import resolve_device
from tripletrec.data.features import Features
from tripletrec.exceptions import ParameterError
from tripletrec.models.capabilities import Capabilities
from tripletrec.models.explain import ridge_contributions
from tripletrec.models.foldin import FoldInSettings, fold_in, score_user_vectors
from tripletrec.models.index_level import RESOLVED_KEY
from tripletrec.models.scorers import count_parameters, scoring
from tripletrec.models.triplet import _features


class ScorerHooks:
    """Scoring and persistence for an estimator holding its fitted scorer in ``module_``.

    The estimator provides ``module_``, ``device``, ``init_scale``, ``_loss()`` and
    ``build_module()``.
    """

    module_: Any
    device: str
    negatives: str
    negatives_: str
    batch_by_: str
    init_scale: float

    model: str

    def capabilities(self) -> Capabilities:
        """Everything but a vector space and explanations for the deep model, whose
        scores come from an MLP rather than an inner product."""
        inner_product = self.model != "deep"
        return Capabilities(
            history_scoring=True, vector_space=inner_product, explain=inner_product,
            side_features=True, epochs=True, checkpoints=True, fit_partial=True,
            data_parallel=True, tuning=True,
        )  # fmt: skip

    def _vector_space(self) -> tuple[np.ndarray, np.ndarray]:
        """The ranking space's user query vectors and item vectors, the item terms (biases,
        the FM's within-item pairs) as one more dimension."""
        with scoring(self.module_) as module:
            space = module.vector_space(for_ranking=True)
            if space is None:
                raise ParameterError(f"{type(module).__name__} has no user/item vector space")
            users = module.query_vectors(module.user_vectors()).detach().float().cpu().numpy()
        items = space.item_vectors.detach().float().cpu().numpy()
        if space.item_terms is not None:
            users = np.hstack([users, np.ones((len(users), 1), np.float32)])
            items = np.hstack([items, space.item_terms.detach().float().cpu().numpy()[:, None]])
        return np.ascontiguousarray(users), np.ascontiguousarray(items)

    @property
    def n_parameters_(self) -> int:
        """Trainable parameters of the fitted network."""
        return count_parameters(self.module_)

    def _score_block(self, user_idx: np.ndarray, item_idx: np.ndarray | None) -> np.ndarray:
        with scoring(self.module_) as module:
            device = next(module.parameters()).device
            users = torch.as_tensor(user_idx, dtype=torch.int64, device=device)
            items = None if item_idx is None else torch.as_tensor(item_idx, device=device)
            return module.score_all(users, items, for_ranking=True).float().cpu().numpy()

    def _item_vectors(self) -> np.ndarray:
        with scoring(self.module_) as module:
            return module.item_vectors().float().cpu().numpy()

    def _explain_contributions(self, history: np.ndarray, item_idx: int) -> tuple[np.ndarray, bool]:
        """The ridge (ALS-style) split of the score over the history, on the item vectors
        of the ranking vector space; an approximation (see :mod:`tripletrec.models.explain`)."""
        with scoring(self.module_) as module:
            space = module.vector_space(for_ranking=True)
        if space is None:
            raise ParameterError(
                f"cannot explain the scores of a {type(self.module_).__name__}: it has no "
                "user/item vector space to split a score over the history"
            )
        vectors = space.item_vectors.detach().double().cpu().numpy()
        return ridge_contributions(vectors, history, item_idx), False

    def _score_histories(
        self,
        rows: np.ndarray,
        items: np.ndarray,
        n_rows: int,
        random_state: int,
        offsets: torch.Tensor | None = None,
    ) -> np.ndarray:
        if offsets is None and getattr(self, "user_history_", False):
            # A history model's new user starts as their history's mean, as known users do.
            offsets = self._row_vectors(_features.new_user_history_rows(self, rows, items, n_rows))
        # Fold-in with the loss this model was trained with; see tripletrec.models.foldin.
        vectors = fold_in(
            self.module_, rows, items, n_rows, loss=self._loss(), init_scale=self.init_scale,
            settings=FoldInSettings(random_state=random_state), offsets=offsets,
        )  # fmt: skip
        return score_user_vectors(self.module_, vectors)

    def _user_feature_vectors(self, features: Features, user_ids: list) -> torch.Tensor:
        """New users' vectors from their features alone (no identity embedding)."""
        return self._row_vectors(_features.new_user_rows(self, features, user_ids))

    def _row_vectors(self, matrix: Any) -> torch.Tensor:
        """User vectors of feature rows ``matrix`` (in the columns of ``user_features_``)."""
        with torch.no_grad():  # the fold-in's user vector: every user part, concatenated
            parts = self.module_.user_parts()
            return torch.cat([part.vectors_of(matrix) for part in parts], dim=1)

    # ------------------------------------------------------------------ persistence
    def _model_state(self) -> dict[str, np.ndarray]:
        state = {
            f"module.{k}": v.detach().cpu().numpy() for k, v in self.module_.state_dict().items()
        }
        return state | _features.state_of(self)

    def _load_model_state(self, state: dict[str, np.ndarray], fit_summary: dict) -> None:
        if self.device != "cpu" and not torch.cuda.is_available():
            self.device = "cpu"  # a model trained on a GPU still serves on a CPU-only host
        prefix = "module."
        # load_state_dict copies these into the module's own parameters, so the tensors are
        # only a passage; torch cannot wrap a read-only (memory-mapped) array without a
        # warning, so such an array passes as a copy (the factor model is small).
        weights = {
            k[len(prefix) :]: torch.from_numpy(v if v.flags.writeable else v.copy())
            for k, v in state.items()
            if k.startswith(prefix)
        }
        _features.load_sides(self, state, fit_summary.get("features", {}))
        # Before build_module: the "auto" ranking bias follows the fitted loss. A file saved
        # before "auto" existed names its negatives in the parameters; one without them
        # at all had the full softmax, the default of its day.
        negatives = self.negatives if self.negatives != "auto" else "all"
        self.negatives_ = str(fit_summary.get("negatives", negatives))
        # Files from before batch_by existed were trained on shuffled positives.
        self.batch_by_ = str(fit_summary.get("batch_by", "positive"))
        # Files from before user_history existed: the user features were the caller's.
        self.user_history_ = bool(fit_summary.get("user_history", False))
        module = self.build_module(self.n_users_, self.n_items_, torch.Generator())
        module.load_state_dict(weights, strict=True)
        self.module_ = module.to(resolve_device(self.device)).eval()
        self.history_ = list(fit_summary.get("history", []))
        self.fit_seconds_ = float(fit_summary.get("fit_seconds", float("nan")))

    def _fit_summary(self) -> dict:
        summary = {
            "fit_seconds": self.fit_seconds_,
            "negatives": self.negatives_,
            "batch_by": self.batch_by_,
            "user_history": self.user_history_,
            RESOLVED_KEY: {
                "negatives": self.negatives_,
                "loss_kind": self._loss().kind,
                "batch_by": self.batch_by_,
                "user_history": self.user_history_,
            },
            "n_parameters": self.n_parameters_,
            "history": self.history_,
        }
        features = _features.summary_of(self)
        if features:
            summary["features"] = features
        return summary
