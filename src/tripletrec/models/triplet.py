"""``TripletRecommender``: the bilinear and deep match models behind one estimator."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from tripletrec.data.features import FeatureEncoder, Features, with_identity
from tripletrec.data.interactions import IdMap, Interactions
from tripletrec.evaluation.metrics import metric_key, parse_metric
from tripletrec.exceptions import DataError, TripletrecError
from tripletrec.models.base import RecommenderBase
from tripletrec.models.scorers import (
    BilinearScorer,
    DeepScorer,
    FactorizationMachineScorer,
    FeatureEmbedding,
    Scorer,
    TripletNet,
    count_parameters,
    embedding_tables,
)
from tripletrec.training.fused import FusedBilinearStep
from tripletrec.training.loop import (
    EpochCallback,
    TrainingSchedule,
    TrainingStep,
    autograd_step,
    torch_threads,
    train_triplets,
    with_max_norm,
)
from tripletrec.training.losses import get_loss
from tripletrec.training.sampling import IMPLICIT_NEGATIVES, make_sampler

# The best configuration found: dot product with item biases, softmax over the whole
# catalogue, small weight decay with a max-norm bound, decaying steps, and the item bias
# shrunk when ranking. Chosen on validation splits of both datasets' training positives
# (benchmarks/compare.py has the test figures).
_DEFAULT: dict[str, Any] = dict(
    model="bilinear", similarity="dot", n_factors=128, item_bias=True,
    ranking_bias_scale="auto", loss="softmax", negatives="all", epochs=10, batch_size=3072,
    learning_rate=0.04, l2=3.5e-5, init_scale=0.01, max_norm=2.0, lr_schedule="linear",
    feature_weight=0.25,
)  # fmt: skip

#: What ``ranking_bias_scale="auto"`` means for the full softmax (chosen on validation
#: splits of anime-tv and MovieLens-100k; see ``docs/models.md``).
FULL_SOFTMAX_RANKING_BIAS_SCALE = 0.75

#: Named hyper-parameter sets; ``TripletRecommender()`` has the ones of "default". Each
#: preset names every setting that differs from the constructor's defaults.
PRESETS: dict[str, dict[str, Any]] = {
    "default": _DEFAULT,
    # The reference notebook, as published: small batches, Adam's default step.
    "notebook-bilinear": dict(
        model="bilinear", similarity="cosine", n_factors=64, item_bias=False, loss="margin",
        margin=1.0, negatives="uniform", epochs=10, batch_size=64, learning_rate=1e-3, l2=0.0,
        init_scale=0.05, max_norm=None, lr_schedule="constant",
    ),
    "notebook-deep": dict(
        model="deep", user_dim=32, item_dim=64, hidden_layers=(128,), dropout=0.1,
        dot_factors=0, loss="margin", margin=0.5, negatives="uniform", epochs=20,
        batch_size=64, learning_rate=1e-3, l2=0.0,
        init_scale=0.05, max_norm=None, lr_schedule="constant",
    ),
    # The deep model with a dot product beside the MLP (NeuMF-style), sampled softmax.
    "deep-neumf": dict(
        model="deep", user_dim=32, item_dim=64, hidden_layers=(128,), dropout=0.1,
        dot_factors=64, loss="softmax", negatives="uniform", n_negatives=5, epochs=8,
        batch_size=1024, learning_rate=0.005, l2=2e-5,
        init_scale=0.05, max_norm=None, lr_schedule="constant",
    ),
    # The default with identity dropout and full-weight features: for training with side
    # features when items (or users) will be added after training and must be ranked from
    # features alone (benchmarks/cold_start.py).
    "cold-start": {**_DEFAULT, "identity_dropout": 0.5, "feature_weight": 1.0},
    # The notebook's models and losses with tripletrec's settings: large batches, larger
    # steps (benchmarks/reproduce_notebook.py).
    "bilinear": dict(
        model="bilinear", similarity="cosine", n_factors=64, item_bias=False, loss="margin",
        margin=1.0, negatives="uniform", epochs=10, batch_size=4096, learning_rate=0.02,
        l2=0.0,
        init_scale=0.05, max_norm=None, lr_schedule="constant",
    ),
    "deep": dict(
        model="deep", user_dim=32, item_dim=64, hidden_layers=(128,), dropout=0.1,
        dot_factors=0, loss="margin", margin=0.5, negatives="exclude_positives", epochs=8,
        batch_size=2048, learning_rate=0.005, l2=0.0,
        init_scale=0.05, max_norm=None, lr_schedule="constant",
    ),
}  # fmt: skip


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
        (:meth:`~tripletrec.models.scorers.BilinearScorer._ranking_bias`). ``"auto"``: 0.75 for
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
        model: Literal["bilinear", "deep"] = "bilinear",
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
            raise TripletrecError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    # ------------------------------------------------------------------ fitting
    def build_module(self, n_users: int, n_items: int, generator: torch.Generator) -> Scorer:
        """The untrained scoring network for ``n_users`` x ``n_items``.

        With side features fitted (``user_features_`` / ``item_features_``), the
        embeddings are sums of feature embeddings.
        """
        module = self._build_scorer(n_users, n_items, generator)
        for name, child in module.named_children():
            if isinstance(child, FeatureEmbedding):
                encoder = getattr(self, f"{name.split('_')[0]}_encoder_")
                child.first_identity = encoder.n_features  # identity columns come last
                child.identity_dropout = float(self.identity_dropout)
        return module

    def _build_scorer(self, n_users: int, n_items: int, generator: torch.Generator) -> Scorer:
        features = dict(
            user_features=getattr(self, "user_features_", None),
            item_features=getattr(self, "item_features_", None),
        )
        if self.model == "bilinear":
            return BilinearScorer(
                n_users, n_items, self.n_factors, self.similarity, self.item_bias,
                self.init_scale, generator, self.learn_temperature, **features,
                ranking_bias_scale=self._ranking_bias_scale(),
            )  # fmt: skip
        if self.model == "deep":
            return DeepScorer(
                n_users, n_items, self.user_dim, self.item_dim, tuple(self.hidden_layers),
                self.dropout, self.init_scale, generator, self.dot_factors, **features,
            )  # fmt: skip
        if self.model == "fm":
            return FactorizationMachineScorer(
                n_users, n_items, self.n_factors, self.init_scale, generator, **features,
                ranking_bias_scale=self._ranking_bias_scale(),
            )  # fmt: skip
        raise TripletrecError(f"unknown model {self.model!r}; choose 'bilinear', 'deep' or 'fm'")

    def fit(
        self,
        data: Interactions | sp.spmatrix,
        *,
        user_features: Features | None = None,
        item_features: Features | None = None,
        validation: Interactions | sp.spmatrix | None = None,
        on_epoch_end: EpochCallback | None = None,
    ) -> TripletRecommender:
        """Train on positive interactions.

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
        device = self._resolve_device()
        schedule = TrainingSchedule(
            self.epochs, self.batch_size, self.learning_rate, self.l2, self.lr_schedule
        )
        self._check_training_settings()
        seen = self._set_training_data(data)
        self._fit_features(user_features, item_features)
        users, items = (np.asarray(a, dtype=np.int64) for a in seen.nonzero())
        sampler = make_sampler(self.negatives, seen, self.negative_alpha)
        rng = np.random.default_rng(self.random_state)
        torch_seed = int(rng.integers(2**62))

        start = time.perf_counter()
        with self._training_scope(torch_seed, device) as scorer:
            step = self._training_step(scorer, schedule, sampler.log_q, device)
            self.module_ = scorer  # scoring during training (validation) goes through it
            monitor = None if validation is None else _ValidationMonitor(self, validation)
            self.history_ = train_triplets(
                step, users, items, sampler, schedule, rng, n_negatives=int(self.n_negatives),
                device=device, progress=self.verbose,
                on_epoch_end=_chain(monitor, on_epoch_end),
            )  # fmt: skip
            if monitor is not None:
                monitor.restore_best()
        self.module_ = scorer.eval()
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _check_training_settings(self) -> None:
        """Fail on inconsistent hyper-parameters before any work."""
        get_loss(self.loss, self.margin)
        if not 0.0 <= float(self.identity_dropout) < 1.0:
            raise TripletrecError(
                f"identity_dropout must be in [0, 1), got {self.identity_dropout}"
            )
        scale, weight = self.ranking_bias_scale, self.feature_weight
        if scale != "auto" and not (_is_finite_number(scale) and scale >= 0):
            raise TripletrecError(
                f"ranking_bias_scale must be 'auto' or a finite number >= 0, got {scale!r}"
            )
        if not (_is_finite_number(weight) and weight > 0):
            raise TripletrecError(f"feature_weight must be a finite number > 0, got {weight!r}")
        if int(self.n_negatives) < 1:
            raise TripletrecError(f"n_negatives must be at least 1, got {self.n_negatives}")
        if self.negatives in IMPLICIT_NEGATIVES and self.loss != "softmax":
            raise TripletrecError(f"negatives={self.negatives!r} needs loss='softmax'")

    def _fit_features(self, user_features: Features | None, item_features: Features | None) -> None:
        """Learn the feature vocabularies and build the matrices (identity included)."""
        for side, features, id_map in (
            ("user", user_features, self.user_map_),
            ("item", item_features, self.item_map_),
        ):
            if features is not None and not isinstance(features, Features):
                raise DataError(
                    f"{side}_features must be a tripletrec.data.features.Features, "
                    f"got {type(features).__name__}"
                )
            encoder = matrix = None
            if features is not None:
                # The vocabulary comes from the entities trained on: a value only unseen
                # entities have would get an embedding that nothing ever trains.
                encoder = FeatureEncoder().fit(features.for_ids(id_map.ids))
                matrix = with_identity(self._feature_rows(encoder, features, id_map), len(id_map))
            setattr(self, f"{side}_encoder_", encoder)
            setattr(self, f"{side}_features_", matrix)

    def _ranking_bias_scale(self) -> float:
        """``ranking_bias_scale`` with ``"auto"`` resolved for this loss and negatives."""
        if self.ranking_bias_scale != "auto":
            return float(self.ranking_bias_scale)
        full_softmax = self.loss == "softmax" and self.negatives == "all"
        return FULL_SOFTMAX_RANKING_BIAS_SCALE if full_softmax else 1.0

    def _feature_rows(
        self, encoder: FeatureEncoder, features: Features, id_map: IdMap
    ) -> sp.csr_matrix:
        """Feature rows of ``features`` aligned to ``id_map``, each summing to
        ``feature_weight`` (identity columns not included)."""
        return encoder.transform(features, id_map) * np.float32(self.feature_weight)

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
        encoder = getattr(self, "item_encoder_", None)
        if encoder is None:
            raise TripletrecError(
                "this model was fitted without item features: new items need a model "
                "trained with fit(..., item_features=...)"
            )
        new_ids = features.ids[~features.ids.isin(pd.Index(self.item_map_.ids))]
        if len(new_ids) == 0:
            return self
        n_known = self.n_items_
        item_map = IdMap(np.concatenate([self.item_map_.ids, new_ids.to_numpy()]), "item")
        new_rows = self._feature_rows(encoder, features.for_ids(new_ids), item_map)[n_known:]
        known_rows = self.item_features_
        padding = sp.csr_matrix((len(new_ids), known_rows.shape[1] - new_rows.shape[1]))
        self.item_features_ = sp.vstack(
            [known_rows, sp.hstack([new_rows, padding])], format="csr", dtype=np.float32
        )
        self.item_map_ = item_map
        self.seen_ = sp.csr_matrix(
            (self.seen_.data, self.seen_.indices, self.seen_.indptr),
            shape=(self.n_users_, len(item_map)),
        )
        if self.item_metadata_ is not None:
            self.item_metadata_ = self.item_metadata_.reindex(item_map.ids)
        for name, module in self.module_.named_children():
            if name.startswith("item") and isinstance(module, FeatureEmbedding):
                module.set_matrix(self.item_features_)
        self.module_.n_items = len(item_map)
        return self

    @contextmanager
    def _training_scope(self, torch_seed: int, device: torch.device) -> Iterator[Scorer]:
        """A fresh scorer in training mode, under a private seeded copy of torch's RNG and
        this model's thread count (for ``fit`` and data-parallel fitting alike)."""
        # Dropout draws from torch's global generator: seed a private copy of it so that
        # fitting is reproducible without touching the caller's random state.
        fork_devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=fork_devices), torch_threads(self.n_threads):
            torch.manual_seed(torch_seed)
            generator = torch.Generator().manual_seed(torch_seed)
            scorer = self.build_module(self.n_users_, self.n_items_, generator).to(device)
            scorer.train()
            yield scorer

    def _training_step(
        self,
        scorer: Scorer,
        schedule: TrainingSchedule,
        log_q: np.ndarray | None,
        device: torch.device,
    ) -> TrainingStep:
        return self._constrained(self._unconstrained_step(scorer, schedule, log_q, device), scorer)

    def _constrained(self, step: TrainingStep, scorer: Scorer) -> TrainingStep:
        """``step`` followed by the max-norm constraint, when there is one."""
        if self.max_norm is None:
            return step
        return with_max_norm(step, embedding_tables(scorer), self.max_norm)

    def _unconstrained_step(
        self,
        scorer: Scorer,
        schedule: TrainingSchedule,
        log_q: np.ndarray | None,
        device: torch.device,
    ) -> TrainingStep:
        # The bilinear model with one negative, or the full softmax, has closed-form
        # gradients: skip autograd.
        one_negative = self.loss in ("margin", "bpr") and self.n_negatives == 1
        full_softmax = self.loss == "softmax" and self.negatives == "all"
        fusable = isinstance(scorer, BilinearScorer) and scorer.fusable
        if fusable and (one_negative or full_softmax):
            return FusedBilinearStep(scorer, self.loss, self.margin, self.learning_rate, self.l2)
        loss_fn = get_loss(self.loss, self.margin, n_items=self.n_items_)
        correction = None
        if self.loss == "softmax" and log_q is not None:
            correction = torch.as_tensor(log_q, dtype=torch.float32, device=device)
        return autograd_step(
            TripletNet(scorer), loss_fn, schedule, correction, in_batch=self.negatives == "in_batch"
        )

    def _resolve_device(self) -> torch.device:
        try:
            device = torch.device(self.device)
        except RuntimeError as exc:
            raise TripletrecError(f"invalid device {self.device!r}") from exc
        if device.type == "cuda" and not torch.cuda.is_available():
            raise TripletrecError("device 'cuda' requested but no CUDA device is available")
        if device.type not in ("cpu", "cuda"):
            raise TripletrecError(f"device must be 'cpu' or 'cuda', not {self.device!r}")
        return device

    @property
    def n_parameters_(self) -> int:
        """Trainable parameters of the fitted network."""
        return count_parameters(self.module_)

    # ------------------------------------------------------------------ scoring
    def _score_block(self, user_idx: np.ndarray, item_idx: np.ndarray | None) -> np.ndarray:
        device = next(self.module_.parameters()).device
        users = torch.as_tensor(user_idx, dtype=torch.int64, device=device)
        items = None if item_idx is None else torch.as_tensor(item_idx, device=device)
        self.module_.eval()
        with torch.no_grad():
            return self.module_.score_all(users, items).float().cpu().numpy()

    def _item_vectors(self) -> np.ndarray:
        with torch.no_grad():
            return self.module_.item_vectors().float().cpu().numpy()

    # ------------------------------------------------------------------ persistence
    def _model_state(self) -> dict[str, np.ndarray]:
        state = {
            f"module.{k}": v.detach().cpu().numpy() for k, v in self.module_.state_dict().items()
        }
        for side in ("user", "item"):
            matrix = getattr(self, f"{side}_features_", None)
            if matrix is not None:
                state[f"features.{side}.indptr"] = matrix.indptr.astype(np.int64)
                state[f"features.{side}.indices"] = matrix.indices.astype(np.int64)
                state[f"features.{side}.values"] = matrix.data.astype(np.float32)
        return state

    def _load_model_state(self, state: dict[str, np.ndarray], fit_summary: dict) -> None:
        if self.device != "cpu" and not torch.cuda.is_available():
            self.device = "cpu"  # a model trained on a GPU still serves on a CPU-only host
        prefix = "module."
        weights = {
            k[len(prefix) :]: torch.from_numpy(v) for k, v in state.items() if k.startswith(prefix)
        }
        encoders = fit_summary.get("features", {})
        for side, n_rows in (("user", self.n_users_), ("item", self.n_items_)):
            encoder = matrix = None
            if side in encoders:
                encoder = FeatureEncoder.from_dict(encoders[side]["encoder"])
                n_columns = encoder.n_features + int(encoders[side]["n_identity"])
                matrix = sp.csr_matrix(
                    (
                        state[f"features.{side}.values"],
                        state[f"features.{side}.indices"],
                        state[f"features.{side}.indptr"],
                    ),
                    shape=(n_rows, n_columns),
                )
            setattr(self, f"{side}_encoder_", encoder)
            setattr(self, f"{side}_features_", matrix)
        module = self.build_module(self.n_users_, self.n_items_, torch.Generator())
        module.load_state_dict(weights, strict=True)
        self.module_ = module.to(self._resolve_device()).eval()
        self.history_ = list(fit_summary.get("history", []))
        self.fit_seconds_ = float(fit_summary.get("fit_seconds", float("nan")))

    def _fit_summary(self) -> dict:
        summary = {
            "fit_seconds": self.fit_seconds_,
            "n_parameters": self.n_parameters_,
            "history": self.history_,
        }
        features = {}
        for side in ("user", "item"):
            encoder = getattr(self, f"{side}_encoder_", None)
            if encoder is not None:
                matrix = getattr(self, f"{side}_features_")
                features[side] = {
                    "encoder": encoder.to_dict(),
                    "n_identity": int(matrix.shape[1] - encoder.n_features),
                }
        if features:
            summary["features"] = features
        return summary

    def _score_histories(
        self,
        rows: np.ndarray,
        items: np.ndarray,
        n_rows: int,
        random_state: int,
        offsets: torch.Tensor | None = None,
    ) -> np.ndarray:
        # Fold-in with the loss this model was trained with; see tripletrec.models.foldin.
        from tripletrec.models.foldin import FoldInSettings, fold_in, score_user_vectors

        settings = FoldInSettings(random_state=random_state)
        vectors = fold_in(
            self.module_, rows, items, n_rows, loss=self.loss, margin=self.margin,
            init_scale=self.init_scale, settings=settings, offsets=offsets,
        )  # fmt: skip
        return score_user_vectors(self.module_, vectors)

    def _user_feature_vectors(self, features: Features, user_ids: list) -> torch.Tensor:
        """New users' vectors from their features alone (no identity embedding)."""
        encoder = getattr(self, "user_encoder_", None)
        if encoder is None:
            raise TripletrecError(
                "this model was fitted without user features: fit(..., user_features=...) "
                "to fold in new users from theirs"
            )
        matrix = self._feature_rows(encoder, features, IdMap(user_ids, "new user"))
        n_identity = self.user_features_.shape[1] - encoder.n_features
        matrix = sp.hstack([matrix, sp.csr_matrix((len(user_ids), n_identity))], format="csr")
        # The fold-in's user vector: the deep model's concatenates its two user embeddings.
        parts = [self.module_.user_embedding, getattr(self.module_, "user_dot", None)]
        with torch.no_grad():
            return torch.cat([p.vectors_of(matrix) for p in parts if p is not None], dim=1)


def _is_finite_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


class _ValidationMonitor:
    """Scores the model on validation positives after each epoch; tracks the best epoch."""

    def __init__(self, model: TripletRecommender, validation: Interactions | sp.spmatrix) -> None:
        from tripletrec.evaluation.protocols import interactions_matrix

        self.model = model
        self.relevant = interactions_matrix(model, validation)
        self.metric = metric_key(*parse_metric(model.validation_metric))
        self.patience = model.patience
        self.best_value = -np.inf
        self.best_epoch = 0
        self.best_state: dict[str, torch.Tensor] | None = None

    def __call__(self, epoch: int, record: dict) -> bool:
        from tripletrec.evaluation.protocols import evaluate

        scorer = self.model.module_
        training = scorer.training
        names = list(dict.fromkeys(["auc", self.metric]))  # AUC is always recorded too
        results = evaluate(self.model, self.model.seen_, self.relevant, names)
        scorer.train(training)
        for name in names:
            record[f"validation_{name}"] = results[name]
        value = results[self.metric]
        if value > self.best_value:
            self.best_value, self.best_epoch = value, epoch
            if self.patience is not None:
                self.best_state = {k: v.detach().clone() for k, v in scorer.state_dict().items()}
        return self.patience is not None and epoch - self.best_epoch >= self.patience

    def restore_best(self) -> None:
        if self.best_state is not None:
            self.model.module_.load_state_dict(self.best_state)
            self.model.best_epoch_ = self.best_epoch


def _chain(*callbacks: EpochCallback | None) -> EpochCallback | None:
    """One callback calling each of ``callbacks``; stops when any asks to."""
    present = [c for c in callbacks if c is not None]
    if not present:
        return None

    def call_all(epoch: int, record: dict) -> bool:
        return any([bool(callback(epoch, record)) for callback in present])

    return call_all
