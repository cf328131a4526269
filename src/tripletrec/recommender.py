"""``TripletRecommender``: the bilinear and deep match models behind one estimator."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch

from tripletrec.base import RecommenderBase
from tripletrec.data import Interactions
from tripletrec.exceptions import TripletrecError
from tripletrec.fused import FusedBilinearStep
from tripletrec.losses import get_loss
from tripletrec.models import BilinearScorer, DeepScorer, Scorer, TripletNet, count_parameters
from tripletrec.sampling import make_sampler
from tripletrec.training import (
    EpochCallback,
    TrainingSchedule,
    TrainingStep,
    autograd_step,
    train_triplets,
)

#: Named hyper-parameter sets. "bilinear" is the default of the constructor.
PRESETS: dict[str, dict[str, Any]] = {
    # The reference notebook, as published: small batches, Adam's default step.
    "notebook-bilinear": dict(
        model="bilinear", similarity="cosine", n_factors=64, loss="margin", margin=1.0,
        negatives="uniform", epochs=10, batch_size=64, learning_rate=1e-3,
    ),
    "notebook-deep": dict(
        model="deep", user_dim=32, item_dim=64, hidden_layers=(128,), dropout=0.1,
        loss="margin", margin=0.5, negatives="uniform", epochs=20, batch_size=64,
        learning_rate=1e-3,
    ),
    # tripletrec's settings for the same models: large batches and a larger step.
    "bilinear": dict(
        model="bilinear", similarity="cosine", n_factors=64, loss="margin", margin=1.0,
        negatives="uniform", epochs=10, batch_size=4096, learning_rate=0.02,
    ),
    "deep": dict(
        model="deep", user_dim=32, item_dim=64, hidden_layers=(128,), dropout=0.1,
        loss="margin", margin=0.5, negatives="exclude_positives", epochs=8, batch_size=2048,
        learning_rate=0.005,
    ),
}  # fmt: skip


class TripletRecommender(RecommenderBase):
    """A recommender trained on (user, positive, negative) triplets.

    Parameters
    ----------
    model : {"bilinear", "deep"}
        ``"bilinear"``: score = cosine (or dot) of a user and an item embedding.
        ``"deep"``: score = MLP(concat(user embedding, item embedding)).
    similarity : {"cosine", "dot"}
        Bilinear only: how embeddings are compared.
    n_factors : int
        Bilinear only: embedding dimension.
    item_bias : bool
        Bilinear only: add a learned per-item bias.
    user_dim, item_dim : int
        Deep only: embedding dimensions.
    hidden_layers : sequence of int
        Deep only: hidden layer widths.
    dropout : float
        Deep only: dropout after each hidden layer.
    loss : {"margin", "bpr"}
        ``"margin"``: ``max(0, margin - s(u, pos) + s(u, neg))``; ``"bpr"``:
        ``-log sigmoid(s(u, pos) - s(u, neg))``.
    margin : float
        Margin of the margin loss.
    negatives : {"uniform", "exclude_positives"}
        Negatives drawn uniformly from all items (the notebook), or redrawn when they hit
        one of the user's training positives. Redrawn every epoch either way.
    epochs, batch_size, learning_rate, l2 : number
        Adam optimisation settings; ``l2`` is Adam's weight decay.
    init_scale : float
        Embeddings start uniform in ``[-init_scale, init_scale]``.
    random_state : int or None
        Seed of initialisation, shuffling, negatives and dropout: the same seed on the same
        data gives the same model.
    device : str
        ``"cpu"`` or ``"cuda"`` (or ``"cuda:N"``).
    verbose : bool
        Show a progress bar with the running loss.

    Attributes
    ----------
    module_ : tripletrec.models.Scorer
        The fitted scoring network.
    history_ : list of dict
        Per-epoch training loss and time.
    fit_seconds_ : float
        Wall time of the last ``fit``.
    user_map_, item_map_, seen_, item_metadata_
        See :class:`~tripletrec.base.RecommenderBase`.

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
        similarity: Literal["cosine", "dot"] = "cosine",
        n_factors: int = 64,
        item_bias: bool = False,
        user_dim: int = 32,
        item_dim: int = 64,
        hidden_layers: Sequence[int] = (128,),
        dropout: float = 0.1,
        loss: str = "margin",
        margin: float = 1.0,
        negatives: str = "uniform",
        epochs: int = 10,
        batch_size: int = 4096,
        learning_rate: float = 0.02,
        l2: float = 0.0,
        init_scale: float = 0.05,
        random_state: int | None = None,
        device: str = "cpu",
        verbose: bool = False,
    ) -> None:
        self.model = model
        self.similarity = similarity
        self.n_factors = n_factors
        self.item_bias = item_bias
        self.user_dim = user_dim
        self.item_dim = item_dim
        self.hidden_layers = hidden_layers
        self.dropout = dropout
        self.loss = loss
        self.margin = margin
        self.negatives = negatives
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.l2 = l2
        self.init_scale = init_scale
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> TripletRecommender:
        """A recommender with the hyper-parameters of preset ``name`` (see ``PRESETS``)."""
        if name not in PRESETS:
            raise TripletrecError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    # ------------------------------------------------------------------ fitting
    def build_module(self, n_users: int, n_items: int, generator: torch.Generator) -> Scorer:
        """The untrained scoring network for ``n_users`` x ``n_items``."""
        if self.model == "bilinear":
            return BilinearScorer(
                n_users, n_items, self.n_factors, self.similarity, self.item_bias,
                self.init_scale, generator,
            )  # fmt: skip
        if self.model == "deep":
            return DeepScorer(
                n_users, n_items, self.user_dim, self.item_dim, tuple(self.hidden_layers),
                self.dropout, self.init_scale, generator,
            )  # fmt: skip
        raise TripletrecError(f"unknown model {self.model!r}; choose 'bilinear' or 'deep'")

    def fit(
        self, data: Interactions | sp.spmatrix, *, on_epoch_end: EpochCallback | None = None
    ) -> TripletRecommender:
        """Train on positive interactions.

        Parameters
        ----------
        data : Interactions or scipy sparse matrix
            The training positives: every row (non-zero) is a (user, positive item) pair.
            Choose positives first, for example ``train.positives(7)``.
        on_epoch_end : callable, optional
            ``on_epoch_end(epoch, record)`` after each epoch; returning True stops early.

        Returns
        -------
        self
        """
        device = self._resolve_device()
        schedule = TrainingSchedule(self.epochs, self.batch_size, self.learning_rate, self.l2)
        get_loss(self.loss, self.margin)  # fail on an unknown loss before any work
        seen = self._set_training_data(data)
        users, items = (np.asarray(a, dtype=np.int64) for a in seen.nonzero())
        sampler = make_sampler(self.negatives, seen)
        rng = np.random.default_rng(self.random_state)
        torch_seed = int(rng.integers(2**62))

        start = time.perf_counter()
        # Dropout draws from torch's global generator: seed a private copy of it so that
        # fitting is reproducible without touching the caller's random state.
        fork_devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(torch_seed)
            generator = torch.Generator().manual_seed(torch_seed)
            scorer = self.build_module(self.n_users_, self.n_items_, generator).to(device)
            scorer.train()
            step = self._training_step(scorer, schedule)
            self.history_ = train_triplets(
                step, users, items, sampler, schedule, rng,
                device=device, progress=self.verbose, on_epoch_end=on_epoch_end,
            )  # fmt: skip
        self.module_ = scorer.eval()
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _training_step(self, scorer: Scorer, schedule: TrainingSchedule) -> TrainingStep:
        # The bilinear model has closed-form gradients: skip autograd's overhead.
        if isinstance(scorer, BilinearScorer) and self.loss in FusedBilinearStep.SUPPORTED_LOSSES:
            return FusedBilinearStep(scorer, self.loss, self.margin, self.learning_rate, self.l2)
        return autograd_step(TripletNet(scorer), get_loss(self.loss, self.margin), schedule)

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
        return {
            f"module.{k}": v.detach().cpu().numpy() for k, v in self.module_.state_dict().items()
        }

    def _load_model_state(self, state: dict[str, np.ndarray], fit_summary: dict) -> None:
        if self.device != "cpu" and not torch.cuda.is_available():
            self.device = "cpu"  # a model trained on a GPU still serves on a CPU-only host
        prefix = "module."
        weights = {
            k[len(prefix) :]: torch.from_numpy(v) for k, v in state.items() if k.startswith(prefix)
        }
        module = self.build_module(self.n_users_, self.n_items_, torch.Generator())
        module.load_state_dict(weights, strict=True)
        self.module_ = module.to(self._resolve_device()).eval()
        self.history_ = list(fit_summary.get("history", []))
        self.fit_seconds_ = float(fit_summary.get("fit_seconds", float("nan")))

    def _fit_summary(self) -> dict:
        return {
            "fit_seconds": self.fit_seconds_,
            "n_parameters": self.n_parameters_,
            "history": self.history_,
        }

    def save(
        self,
        path: str | Path,
        *,
        metrics: dict | None = None,
        extra_json: dict[str, Any] | None = None,
    ) -> Path:
        """Save to directory ``path`` (safetensors + JSON, no pickle); see ``tripletrec.io``."""
        from tripletrec.io import save_model

        return save_model(self, path, metrics=metrics, extra_json=extra_json)

    @classmethod
    def load(cls, path: str | Path) -> TripletRecommender:
        """Load a model saved with :meth:`save`."""
        from tripletrec.io import load_model

        model = load_model(path)
        if not isinstance(model, cls):
            raise TripletrecError(f"{path} holds a {type(model).__name__}, not a {cls.__name__}")
        return model
