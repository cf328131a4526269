"""``TripletRecommender``: the bilinear, deep and FM match models behind one estimator.

The estimator holds the hyper-parameters and the fitted state; training itself is
:func:`tripletrec.training.trainer.fit_triplet_model`, the presets are in
:mod:`tripletrec.models.presets` and the side-feature matrices in
:mod:`tripletrec.models._features`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch

from tripletrec.data.features import Features
from tripletrec.data.interactions import Interactions
from tripletrec.exceptions import ParameterError
from tripletrec.models import _features
from tripletrec.models.base import RecommenderBase
from tripletrec.models.foldin import FoldInSettings, fold_in, score_user_vectors
from tripletrec.models.presets import (
    FULL_SOFTMAX_RANKING_BIAS_SCALE,
    PRESETS,
    build_scorer,
    resolved_ranking_bias_scale,
)
from tripletrec.models.scorers import FeatureEmbedding, Scorer, count_parameters, scoring
from tripletrec.training.loop import EpochCallback, resolve_device
from tripletrec.training.losses import Loss, resolve_loss
from tripletrec.training.trainer import fit_triplet_model

__all__ = ["FULL_SOFTMAX_RANKING_BIAS_SCALE", "PRESETS", "TripletRecommender"]


class TripletRecommender(RecommenderBase):
    """A recommender trained on (user, positive, negative) triplets.

    The defaults are the ``"default"`` preset, the best configuration measured on the
    bundled data and MovieLens-100k; ``from_preset("notebook-bilinear")`` and
    ``from_preset("notebook-deep")`` give the reference notebook's models and settings.

    Parameters
    ----------
    model : {"bilinear", "deep", "fm"}
        ``"bilinear"``: score = cosine (or dot) of a user and an item embedding.
        ``"deep"``: score = MLP(concat(user embedding, item embedding)).
        ``"fm"``: a factorization machine over the user's and the item's features
        (``n_factors`` factors; see
        :class:`~tripletrec.models.scorers.FactorizationMachineScorer`).
        Each can use side features: see ``fit``.
    similarity : {"cosine", "dot"}
        Bilinear only: how embeddings are compared.
    n_factors : int
        Bilinear only: embedding dimension.
    item_bias : bool
        Bilinear only: add a learned per-item bias.
    ranking_bias_scale : float or "auto"
        Weight of the item bias when ranking (``recommend``, ``evaluate``, serving);
        training always uses the whole bias. Below 1, popular items are ranked a little
        lower than the softmax likelihood says: a user's remaining positives are items
        they have not consumed yet, among which popular ones are rarer than overall
        (:class:`~tripletrec.models.scorers.BilinearScorer`). ``"auto"``: 0.75 for
        the full softmax (``loss="softmax"``, ``negatives="all"``), chosen on validation
        splits of both datasets, and 1 otherwise: pairwise losses against uniform
        negatives already under-weight popularity, and shrinking their bias lowered
        validation AUC (BPR, WARP).
    learn_temperature : bool
        Bilinear cosine only: scale cosines by a learned inverse temperature.
    user_dim, item_dim : int
        Deep only: embedding dimensions.
    hidden_layers : sequence of int
        Deep only: hidden layer widths.
    dropout : float
        Deep only: dropout after each hidden layer.
    dot_factors : int
        Deep only: if positive, add the dot product of ``dot_factors``-dimensional user and
        item embeddings to the MLP's score (NeuMF-style).
    loss : {"margin", "bpr", "adaptive_hinge", "warp", "softmax"}
        ``"margin"``: ``max(0, margin - s(u, pos) + s(u, neg))`` (the notebook); ``"bpr"``:
        ``-log sigmoid(s(u, pos) - s(u, neg))``; ``"adaptive_hinge"``: the margin loss
        against the highest-scoring of ``n_negatives`` draws (hard negatives); ``"warp"``:
        the margin loss against the first violating draw, weighted by the estimated rank;
        ``"softmax"``: sampled softmax over ``n_negatives`` draws, log-q corrected. See
        :mod:`tripletrec.training.losses`.
    margin : float
        Margin of the hinge losses.
    negatives : {"uniform", "exclude_positives", "popularity", "all", "in_batch"}
        Negatives drawn uniformly from all items (the notebook), uniformly but redrawn when
        they hit one of the user's training positives, or with probability proportional to
        ``(count + 1) ** negative_alpha``; redrawn every epoch. ``"all"``: no sampling,
        every item is a negative (the full softmax, with ``loss="softmax"``; for catalogues
        whose batch x items scores fit in memory). ``"in_batch"``: the other positives of
        the batch are the negatives (``loss="softmax"``, log-q corrected for popularity).
    n_negatives : int
        Negatives drawn per positive (several for the adaptive hinge, WARP and softmax).
    negative_alpha : float
        Exponent of the popularity sampler.
    epochs, batch_size, learning_rate, l2 : number
        Adam optimisation settings; ``l2`` is Adam's weight decay.
    max_norm : float or None
        After every step, rescale embedding rows longer than this to this length (a
        max-norm constraint, an alternative or complement to ``l2``).
    lr_schedule : {"constant", "linear", "cosine"}
        Keep ``learning_rate``, or decay it to zero over training (linearly or along a
        half cosine).
    init_scale : float
        Embeddings start uniform in ``[-init_scale, init_scale]``.
    identity_dropout : float
        With side features: the share of identity embeddings left out at random in each
        training step, so that features alone must represent users and items part of the
        time, as they do for items added after training (cold start). 0 keeps them all.
    feature_weight : float
        With side features: an entity's vector is its identity embedding plus
        ``feature_weight`` times the mean of its feature embeddings. Small values let
        well-known users and items be mostly themselves, which keeps features from
        costing them quality (0.25, chosen on validation splits of both datasets); the
        ``cold-start`` preset uses 1, since items added later are their features alone.
    random_state : int or None
        Seed of initialisation, shuffling, negatives and dropout: the same seed on the same
        data gives the same model.
    device : str
        ``"cpu"`` or ``"cuda"`` (or ``"cuda:N"``).
    n_threads : int or None
        CPU threads for training; None keeps torch's setting (``torch.set_num_threads``,
        ``OMP_NUM_THREADS``). Use 1 when other busy processes share the cores.
    patience : int or None
        With a ``validation`` set passed to ``fit``: stop after this many epochs without
        improvement of ``validation_metric`` and keep the best epoch's weights. None trains
        for all ``epochs``.
    validation_metric : str
        Metric monitored on the validation set (higher is better), e.g. ``"ndcg@10"``.
    verbose : bool
        Show a progress bar with the running loss.

    Attributes
    ----------
    module_ : tripletrec.models.scorers.Scorer
        The fitted scoring network.
    history_ : list of dict
        Per-epoch training loss and time.
    fit_seconds_ : float
        Wall time of the last ``fit``.
    user_map_, item_map_, seen_, item_metadata_
        See :class:`~tripletrec.models.base.RecommenderBase`.

    Examples
    --------
    >>> import tripletrec
    >>> data = tripletrec.load_dataset("anime-tv")
    >>> train, test = tripletrec.random_split(data, test_size=0.2, random_state=42)
    >>> model = tripletrec.TripletRecommender(random_state=0).fit(train.positives(7))
    >>> tripletrec.evaluate(model, train.positives(7), test.positives(7))["auc"]  # doctest: +SKIP
    """

    def __init__(
        self,
        model: Literal["bilinear", "deep", "fm"] = "bilinear",
        *,
        similarity: Literal["cosine", "dot"] = "dot",
        n_factors: int = 128,
        item_bias: bool = True,
        ranking_bias_scale: float | Literal["auto"] = "auto",
        learn_temperature: bool = False,
        user_dim: int = 32,
        item_dim: int = 64,
        hidden_layers: Sequence[int] = (128,),
        dropout: float = 0.1,
        dot_factors: int = 0,
        loss: str = "softmax",
        margin: float = 1.0,
        negatives: str = "all",
        n_negatives: int = 1,
        negative_alpha: float = 0.75,
        epochs: int = 10,
        batch_size: int = 3072,
        learning_rate: float = 0.04,
        l2: float = 3.5e-5,
        max_norm: float | None = 2.0,
        lr_schedule: str = "linear",
        init_scale: float = 0.01,
        identity_dropout: float = 0.0,
        feature_weight: float = 0.25,
        random_state: int | None = None,
        device: str = "cpu",
        n_threads: int | None = None,
        patience: int | None = None,
        validation_metric: str = "ndcg@10",
        verbose: bool = False,
    ) -> None:
        self.model = model
        self.similarity = similarity
        self.n_factors = n_factors
        self.item_bias = item_bias
        self.ranking_bias_scale = ranking_bias_scale
        self.learn_temperature = learn_temperature
        self.user_dim = user_dim
        self.item_dim = item_dim
        self.hidden_layers = hidden_layers
        self.dropout = dropout
        self.dot_factors = dot_factors
        self.loss = loss
        self.margin = margin
        self.negatives = negatives
        self.n_negatives = n_negatives
        self.negative_alpha = negative_alpha
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.l2 = l2
        self.max_norm = max_norm
        self.lr_schedule = lr_schedule
        self.init_scale = init_scale
        self.identity_dropout = identity_dropout
        self.feature_weight = feature_weight
        self.random_state = random_state
        self.device = device
        self.n_threads = n_threads
        self.patience = patience
        self.validation_metric = validation_metric
        self.verbose = verbose

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> TripletRecommender:
        """A recommender with the hyper-parameters of preset ``name`` (see ``PRESETS``)."""
        if name not in PRESETS:
            raise ParameterError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    # ------------------------------------------------------------------ fitting
    def build_module(self, n_users: int, n_items: int, generator: torch.Generator) -> Scorer:
        """The untrained scoring network for ``n_users`` x ``n_items``.

        With side features fitted (``user_features_`` / ``item_features_``), the
        embeddings are sums of feature embeddings.
        """
        ranking_bias_scale = resolved_ranking_bias_scale(self.ranking_bias_scale, self._loss())
        features = {
            "user_features": getattr(self, "user_features_", None),
            "item_features": getattr(self, "item_features_", None),
        }
        module = build_scorer(
            self.get_params(), n_users, n_items, generator, ranking_bias_scale, **features
        )
        for side, embeddings in module.entity_embeddings().items():
            for embedding in embeddings:
                if isinstance(embedding, FeatureEmbedding):
                    encoder = getattr(self, f"{side}_encoder_")
                    embedding.first_identity = encoder.n_features  # identity columns come last
                    embedding.identity_dropout = float(self.identity_dropout)
        return module

    def _loss(self) -> Loss:
        """The training loss (:func:`~tripletrec.training.losses.resolve_loss`)."""
        n_items = self.n_items_ if hasattr(self, "item_map_") else None
        return resolve_loss(self.loss, self.margin, self.negatives, n_items)

    def fit(
        self,
        data: Interactions | sp.spmatrix,
        *,
        user_features: Features | None = None,
        item_features: Features | None = None,
        validation: Interactions | sp.spmatrix | None = None,
        on_epoch_end: EpochCallback | None = None,
    ) -> TripletRecommender:
        """Train on positive interactions (:func:`~tripletrec.training.trainer.fit_triplet_model`).

        Parameters
        ----------
        data : Interactions or scipy sparse matrix
            The training positives: every row (non-zero) is a (user, positive item) pair.
            Choose positives first, for example ``train.positives(7)``.
        user_features, item_features : Features, optional
            Side features keyed by raw id (:class:`tripletrec.data.features.Features`). Each
            user / item vector becomes its own (identity) embedding plus
            ``feature_weight`` times the mean of its feature embeddings; rows are matched
            by id, so their order does not matter.
            Items added later with :meth:`add_items`, and new users given with their
            features to :meth:`recommend_from_history`, are represented by their
            features. See :mod:`tripletrec.data.features` for missing values and unknown ids.
        validation : Interactions or scipy sparse matrix, optional
            Held-out positives carved from the training data (never the test data; see
            ``tripletrec.data.splits.validation_split``). After each epoch the model is scored on
            them (``validation_metric`` and AUC, ranking every item the user has no
            training positive for) and the values go into ``history_`` as
            ``validation_<metric>``. With ``patience``,
            training stops after that many epochs without improvement and the best
            epoch's weights are kept.
        on_epoch_end : callable, optional
            ``on_epoch_end(epoch, record)`` after each epoch; returning True stops early.

        Returns
        -------
        self
        """
        return fit_triplet_model(
            self, data, user_features=user_features, item_features=item_features,
            validation=validation, on_epoch_end=on_epoch_end,
        )  # fmt: skip

    def set_training_data(
        self,
        data: Interactions | sp.spmatrix,
        *,
        user_features: Features | None = None,
        item_features: Features | None = None,
    ) -> sp.csr_matrix:
        """The first step of :meth:`fit`: id maps, seen items and side-feature matrices
        from the training data (on every process of a data-parallel job alike).

        Returns
        -------
        scipy.sparse.csr_matrix
            The user x item matrix of training positives.
        """
        seen = self._set_training_data(data)
        _features.fit_sides(self, user_features, item_features)
        return seen

    def add_items(self, features: Features) -> TripletRecommender:
        """Add items the model has never seen, without retraining, from their features.

        New items are represented by their side features alone (no identity embedding);
        they are recommended and scored like any other item from then on. Ids the model
        already knows are left as they are.

        Parameters
        ----------
        features : Features
            Rows for the new items, with the columns the model was fitted with.

        Returns
        -------
        self
        """
        self._check_fitted()
        _features.add_items(self, features)
        return self

    @property
    def n_parameters_(self) -> int:
        """Trainable parameters of the fitted network."""
        return count_parameters(self.module_)

    # ------------------------------------------------------------------ scoring
    def _score_block(self, user_idx: np.ndarray, item_idx: np.ndarray | None) -> np.ndarray:
        with scoring(self.module_) as module:
            device = next(module.parameters()).device
            users = torch.as_tensor(user_idx, dtype=torch.int64, device=device)
            items = None if item_idx is None else torch.as_tensor(item_idx, device=device)
            return module.score_all(users, items, for_ranking=True).float().cpu().numpy()

    def _item_vectors(self) -> np.ndarray:
        with scoring(self.module_) as module:
            return module.item_vectors().float().cpu().numpy()

    def _score_histories(
        self,
        rows: np.ndarray,
        items: np.ndarray,
        n_rows: int,
        random_state: int,
        offsets: torch.Tensor | None = None,
    ) -> np.ndarray:
        # Fold-in with the loss this model was trained with; see tripletrec.models.foldin.
        vectors = fold_in(
            self.module_, rows, items, n_rows, loss=self._loss(), init_scale=self.init_scale,
            settings=FoldInSettings(random_state=random_state), offsets=offsets,
        )  # fmt: skip
        return score_user_vectors(self.module_, vectors)

    def _user_feature_vectors(self, features: Features, user_ids: list) -> torch.Tensor:
        """New users' vectors from their features alone (no identity embedding)."""
        matrix = _features.new_user_rows(self, features, user_ids)
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
        weights = {
            k[len(prefix) :]: torch.from_numpy(v) for k, v in state.items() if k.startswith(prefix)
        }
        _features.load_sides(self, state, fit_summary.get("features", {}))
        module = self.build_module(self.n_users_, self.n_items_, torch.Generator())
        module.load_state_dict(weights, strict=True)
        self.module_ = module.to(resolve_device(self.device)).eval()
        self.history_ = list(fit_summary.get("history", []))
        self.fit_seconds_ = float(fit_summary.get("fit_seconds", float("nan")))

    def _fit_summary(self) -> dict:
        summary = {
            "fit_seconds": self.fit_seconds_,
            "n_parameters": self.n_parameters_,
            "history": self.history_,
        }
        features = _features.summary_of(self)
        if features:
            summary["features"] = features
        return summary
