"""``TripletRecommender``: the bilinear, deep and FM match models behind one estimator.

The estimator holds the hyper-parameters and the fitted state; training itself is
:func:`~tripletrec.models.triplet.trainer.fit_triplet_model` (and, for ``fit_partial``,
:mod:`~tripletrec.models.triplet.incremental`), the presets are in
:mod:`~tripletrec.models.triplet.presets`, the side-feature matrices in
:mod:`~tripletrec.models.triplet._features`, scoring and persistence in
:mod:`~tripletrec.models.triplet._scorer_hooks`, and where each fitted attribute is written
(a fit's results are installed in one place) in :mod:`~tripletrec.models.triplet.fitted`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

import pandas as pd
import scipy.sparse as sp
import torch

from tripletrec.data.features import Features
from tripletrec.data.interactions import Interactions
from tripletrec.exceptions import ParameterError
from tripletrec.models.base import RecommenderBase
from tripletrec.models.scorers import Scorer, Similarity
from tripletrec.models.triplet import _features
from tripletrec.models.triplet._scorer_hooks import ScorerHooks
from tripletrec.models.triplet.fitted import TripletState
from tripletrec.models.triplet.incremental import fit_partial_triplet_model
from tripletrec.models.triplet.presets import (
    FULL_SOFTMAX_RANKING_BIAS_SCALE,
    PRESETS,
    Architecture,
    build_scorer,
    resolved_ranking_bias_scale,
)
from tripletrec.models.triplet.trainer import fit_triplet_model
from tripletrec.training.checkpoints import CheckpointSettings
from tripletrec.training.loop import BatchBy, EpochCallback, LRSchedule
from tripletrec.training.losses import LossName
from tripletrec.training.sampling import SamplerName

__all__ = ["FULL_SOFTMAX_RANKING_BIAS_SCALE", "PRESETS", "TripletRecommender"]


class TripletRecommender(TripletState, ScorerHooks, RecommenderBase):
    """A recommender trained on (user, positive, negative) triplets.

    The defaults are the ``"default"`` preset, the best configuration measured on the
    bundled data and MovieLens-100k; ``from_preset("notebook-bilinear")`` and
    ``from_preset("notebook-deep")`` give the reference notebook's models and settings.

    Parameters
    ----------
    model : {"bilinear", "deep", "fm"}
        ``"bilinear"``: score = cosine (or dot) of a user and an item embedding.
        ``"deep"``: score = MLP(concat(user embedding, item embedding)).
        ``"fm"``: a factorization machine over the user's and the item's features (``n_factors``
        factors; see :class:`~tripletrec.models.scorers.FactorizationMachineScorer`).
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
        the full softmax, 1 otherwise (chosen on validation splits, ``docs/models.md``).
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
    negatives : {"auto", "uniform", "exclude_positives", "popularity", "all", "in_batch"}
        ``"auto"`` (the default) is chosen once per fit from the data's shape and kept as
        ``negatives_``: with ``loss="softmax"``, ``"all"`` while the score pairs of one
        epoch (positives x items, or about users x items with per-user batches; see
        ``batch_by``) are at most :data:`~tripletrec.training.losses.FULL_SOFTMAX_PAIR_BUDGET`,
        else ``"in_batch"``; ``"uniform"`` with the other losses. Otherwise: drawn
        uniformly (the notebook), uniformly but never a training positive, or in proportion
        to ``(count + 1) ** negative_alpha``, redrawn every epoch; ``"all"``: every item
        (the full softmax); ``"in_batch"``: the batch's other positives (log-q corrected).
    n_negatives : int
        Negatives drawn per positive (several for the adaptive hinge, WARP and softmax).
    negative_alpha : float
        Exponent of the popularity sampler.
    epochs, batch_size, learning_rate, l2 : number
        Adam optimisation settings; ``l2`` is Adam's weight decay.
    batch_by : {"auto", "positive", "user"}
        What each epoch shuffles into batches of ``batch_size`` positives: the positives
        one by one, or the users, each user's positives staying together. The full
        softmax scores every item once per distinct user of a batch, so grouping by user
        cuts its epoch from positives x items scores to about users x items.
        ``"auto"`` (the default) is chosen once per fit and kept as ``batch_by_``:
        ``"user"`` for the full softmax when training positives x items exceeds
        :data:`~tripletrec.training.losses.PER_POSITIVE_PAIR_BUDGET`, else
        ``"positive"`` (which ranks slightly better where it is affordable). ``"user"``
        cannot train ``negatives="in_batch"``.
    max_norm : float or None
        After every step, rescale embedding rows longer than this to this length (a
        max-norm constraint, an alternative or complement to ``l2``).
    gradients : {"auto", "dense", "sparse"}
        ``"dense"``: Adam updates every row of every table at each step. ``"sparse"``: a
        row-wise Adam updates, decays and bounds only the rows a batch reads, in the tables
        only looked up by index (:func:`~tripletrec.training.sparse.sparse_embeddings`).
        ``"auto"``: sparse with in-batch negatives, else dense (``docs/scaling.md``).
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
    user_history : bool or "auto"
        Add to each user's vector the mean of their training history's item embeddings
        (asymmetric MF / FISM), at full weight; the histories are then the user features,
        so True excludes ``user_features``. ``"auto"``: True when batches group positives by
        user (``batch_by_``) and no user features are given, where a user's own embedding
        gets one step per epoch; kept as ``user_history_`` (``docs/models.md``).
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
    negatives_ : str
        The negatives the fit used: ``negatives``, or what ``"auto"`` resolved to.
    batch_by_ : str
        What the fit's batches grouped: ``batch_by``, or what ``"auto"`` resolved to.
    user_history_ : bool
        Whether user vectors include their history's mean: ``user_history``, or what
        ``"auto"`` resolved to.
    history_ : list of dict
        Per-epoch training loss and time.
    fit_seconds_ : float
        Wall time of the last ``fit`` (over every process of a resumed one) or
        ``fit_partial``.
    optimizer_state_ : tripletrec.training.state.OptimizerState
        Adam's moments and step counts at the end of the last fit, which ``fit_partial``
        continues from (kept in memory; not saved with the model).
    resumed_epoch_ : int
        Epochs the last ``fit`` restored from a checkpoint (0: none).
    best_epoch_ : int
        With ``validation`` and ``patience``: the epoch whose weights were kept.
    partial_fit_ : dict
        After ``fit_partial``: the new users, items and positives, and its epochs.
    data_parallel_ : dict
        After ``fit_data_parallel``: the job (world size, backend, gradients).
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
        model: Architecture = "bilinear",
        *,
        similarity: Similarity = "dot",
        n_factors: int = 128,
        item_bias: bool = True,
        ranking_bias_scale: float | Literal["auto"] = "auto",
        learn_temperature: bool = False,
        user_dim: int = 32,
        item_dim: int = 64,
        hidden_layers: Sequence[int] = (128,),
        dropout: float = 0.1,
        dot_factors: int = 0,
        loss: LossName = "softmax",
        margin: float = 1.0,
        negatives: Literal["auto", SamplerName] = "auto",
        n_negatives: int = 1,
        negative_alpha: float = 0.75,
        epochs: int = 10,
        batch_size: int = 3072,
        learning_rate: float = 0.04,
        l2: float = 0.0,
        batch_by: Literal["auto", BatchBy] = "auto",
        max_norm: float | None = 2.0,
        gradients: Literal["auto", "dense", "sparse"] = "auto",
        lr_schedule: LRSchedule = "linear",
        init_scale: float = 0.01,
        identity_dropout: float = 0.0,
        feature_weight: float = 0.25,
        user_history: bool | Literal["auto"] = "auto",
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
        self.batch_by = batch_by
        self.max_norm = max_norm
        self.gradients = gradients
        self.lr_schedule = lr_schedule
        self.init_scale = init_scale
        self.identity_dropout = identity_dropout
        self.feature_weight = feature_weight
        self.user_history = user_history
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
    def build_module(
        self,
        n_users: int,
        n_items: int,
        generator: torch.Generator,
        *,
        user_features: sp.csr_matrix | None = None,
        item_features: sp.csr_matrix | None = None,
    ) -> Scorer:
        """The untrained scoring network for ``n_users`` x ``n_items``.

        With side features fitted (``user_features_`` / ``item_features_``, or the
        matrices given instead: ``fit_partial``'s grown ones), the embeddings are sums of
        feature embeddings.
        """
        ranking_bias_scale = resolved_ranking_bias_scale(self.ranking_bias_scale, self._loss())
        features = _features.scorer_matrices(self, user_features, item_features)
        module = build_scorer(
            self.get_params(), n_users, n_items, generator, ranking_bias_scale, **features
        )
        _features.configure_embeddings(self, module)
        return module

    def fit(
        self,
        data: Interactions | sp.spmatrix,
        *,
        user_features: Features | None = None,
        item_features: Features | None = None,
        validation: Interactions | sp.spmatrix | None = None,
        on_epoch_end: EpochCallback | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int | None = None,
        resume: bool = False,
    ) -> TripletRecommender:
        """Train on positive interactions (:mod:`~tripletrec.models.triplet.trainer`).

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
        checkpoint_dir : str or path, optional
            Write a checkpoint there every ``checkpoint_every`` epochs (default 1) and
            when the fit ends (:mod:`tripletrec.training.checkpoints`; the last two kept).
        checkpoint_every : int, optional
            Epochs between checkpoints.
        resume : bool
            Continue from the latest checkpoint in ``checkpoint_dir`` (from the first epoch
            when it has none; ``resumed_epoch_`` says which): the same model as an
            uninterrupted fit with the same seed. The settings and data must be the
            checkpoint's. Not in a data-parallel job.

        Returns
        -------
        self
        """
        return fit_triplet_model(
            self, data, user_features=user_features, item_features=item_features,
            validation=validation, on_epoch_end=on_epoch_end,
            checkpoints=CheckpointSettings.of(checkpoint_dir, checkpoint_every, resume),
        )  # fmt: skip

    def fit_partial(
        self,
        data: Interactions | sp.spmatrix,
        *,
        epochs: int | None = None,
        user_features: Features | None = None,
        item_features: Features | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
    ) -> TripletRecommender:
        """Go on training a fitted model with more positives (new users and items welcome).

        New ids extend the id maps; their rows start from their side features, else new
        users by fold-in and new items as a fresh fit starts them. Training continues from
        the current weights and optimiser state (``optimizer_state_``, or a loaded
        model's final checkpoint in ``checkpoint_dir``) on the union of ``seen_`` and
        ``data``, the learning-rate schedule started again; ``partial_fit_`` counts what
        was added. See :mod:`tripletrec.models.triplet.incremental` and ``docs/training.md``.

        Parameters
        ----------
        data : Interactions or scipy sparse matrix
            The new positives, by raw id (a matrix: indices, for a model fitted on one).
        epochs : int, optional
            Epochs over the union (default: 40 % of ``epochs``, at least one).
        user_features, item_features : Features, optional
            Side features of the new users / items, for a model fitted with them.
        checkpoint_dir : str or path, optional
            Read the optimiser state from this directory's final checkpoint (when the model
            has none in memory) and write the new final checkpoint there.

        Returns
        -------
        self
        """
        self._check_fitted()
        return fit_partial_triplet_model(
            self, data, epochs=epochs, user_features=user_features,
            item_features=item_features, checkpoint_dir=checkpoint_dir,
        )  # fmt: skip

    def set_training_data(
        self,
        data: Interactions | sp.spmatrix,
        *,
        user_features: Features | None = None,
        item_features: Features | None = None,
    ) -> sp.csr_matrix:
        """The first step of :meth:`fit` (on every process of a data-parallel job): id maps,
        seen items, ``user_history_`` and the side-feature matrices.

        Returns
        -------
        scipy.sparse.csr_matrix
            The user x item matrix of training positives.
        """
        seen = self._set_training_data(data)
        self.user_history_ = _features.resolved_user_history(self, seen, user_features)
        _features.fit_sides(self, user_features, item_features, seen)
        return seen

    def add_items(
        self, features: Features, item_metadata: pd.DataFrame | None = None
    ) -> TripletRecommender:
        """Add items the model has never seen, without retraining, from their features.

        New items are represented by their side features alone (no identity embedding);
        they are recommended and scored like any other item from then on. Ids the model
        already knows are left as they are.

        Parameters
        ----------
        features : Features
            Rows for the new items, with the columns the model was fitted with.
        item_metadata : pandas.DataFrame, optional
            Metadata of the new items, indexed by raw item id (a ``name`` column gives
            :meth:`item_names`); without it their metadata is missing (NaN).

        Returns
        -------
        self
        """
        self._check_fitted()
        _features.add_items(self, features, item_metadata)
        return self
