"""Run configurations: which data, which split, which model — as a file that round-trips.

``tripletrec train --out DIR`` writes ``DIR/config.json``; ``tripletrec train --config
DIR/config.json`` trains the same model again, and ``tripletrec evaluate DIR`` rebuilds
the same test split from it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from tripletrec._files import json_lists_to_tuples, read_json_object
from tripletrec.data.datasets import DATASETS, dataset_features, load_dataset
from tripletrec.data.features import Features
from tripletrec.data.interactions import Interactions
from tripletrec.data.splits import random_split
from tripletrec.exceptions import DataError
from tripletrec.models.base import RecommenderBase
from tripletrec.models.hybrid import HybridRecommender
from tripletrec.models.triplet import PRESETS, TripletRecommender

#: The estimators a run can train, by the name that ``--estimator`` and config.json use.
#: ``model`` holds the estimator's constructor parameters; a hybrid's ``factor`` holds its
#: factor model's (TripletRecommender's).
RUN_ESTIMATORS: dict[str, type[RecommenderBase]] = {
    "triplet": TripletRecommender,
    "hybrid": HybridRecommender,
}


@dataclass
class DataSpec:
    """Where the interactions come from and which of them are positives.

    Attributes
    ----------
    source : str
        A bundled dataset name (see ``tripletrec datasets``) or a CSV / Parquet file.
    path : str, optional
        Folder of a dataset that cannot be bundled (MovieLens).
    user_col, item_col, rating_col : str
        Column names, for files.
    threshold : float, optional
        Positives are ratings above it; None keeps every row (implicit data) or, for a
        bundled dataset, uses the dataset's own rule.
    inclusive : bool, optional
        ``rating >= threshold`` instead of ``>``.
    features : bool
        Train with the dataset's built-in side features
        (:func:`tripletrec.data.datasets.dataset_features`; bundled and MovieLens data only).
    """

    source: str = "anime-tv"
    path: str | None = None
    user_col: str = "user_id"
    item_col: str = "item_id"
    rating_col: str | None = None
    threshold: float | None = None
    inclusive: bool | None = None
    features: bool = False

    def resolved(self) -> DataSpec:
        """A copy with the positive rule of a bundled dataset filled in."""
        spec = DataSpec(**asdict(self))
        known = DATASETS.get(self.source)
        if known is not None and known.positive_threshold is not None:
            if spec.threshold is None:
                spec.threshold = known.positive_threshold
            if spec.inclusive is None:
                spec.inclusive = known.inclusive
        if spec.inclusive is None:
            spec.inclusive = False
        return spec

    def load(self) -> Interactions:
        """The interactions this spec names."""
        if self.source in DATASETS:
            return load_dataset(self.source, path=self.path)
        path = Path(self.source)
        if not path.exists():
            raise DataError(
                f"{self.source!r} is neither a bundled dataset ({', '.join(DATASETS)}) "
                "nor an existing file"
            )
        return Interactions.from_file(
            path, user_col=self.user_col, item_col=self.item_col, rating_col=self.rating_col
        )

    def side_features(self, interactions: Interactions) -> dict[str, Features | None]:
        """``fit`` keyword arguments for the side features this spec asks for (maybe none)."""
        if not self.features:
            return {}
        if self.source not in DATASETS:
            raise DataError(
                f"built-in features exist for the named datasets ({', '.join(DATASETS)}), "
                f"not for {self.source!r}; pass Features to fit() in Python for your own data"
            )
        users, items = dataset_features(self.source, interactions, path=self.path)
        return {"user_features": users, "item_features": items}

    def positives(self, interactions: Interactions) -> Interactions:
        """The positive rows of ``interactions`` by this spec's rule."""
        if self.threshold is None:
            return interactions
        return interactions.positives(self.threshold, inclusive=bool(self.inclusive))


@dataclass
class SplitSpec:
    """The random row split (scikit-learn's ``train_test_split``), and the share of the
    training positives held out to follow validation metrics during training."""

    test_size: float = 0.2
    random_state: int = 42
    validation_fraction: float = 0.1


@dataclass
class TrainingSpec:
    """How the training runs, beyond the model's hyper-parameters.

    ``sparse_gradients``: sparse embedding gradients with a row-wise lazy Adam
    (:mod:`tripletrec.training.distributed`); it trains a different model than dense Adam, so a
    config that replays a run must say which.
    """

    sparse_gradients: bool = False


@dataclass
class RunConfig:
    """Data, split, training, estimator and model hyper-parameters of one training run.

    ``estimator`` names a :data:`RUN_ESTIMATORS` entry (files written before it existed
    trained TripletRecommender); ``model`` holds that estimator's parameters.
    """

    data: DataSpec = field(default_factory=DataSpec)
    split: SplitSpec = field(default_factory=SplitSpec)
    model: dict[str, Any] = field(default_factory=lambda: dict(PRESETS["default"]))
    training: TrainingSpec = field(default_factory=TrainingSpec)
    estimator: str = "triplet"

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": asdict(self.data),
            "split": asdict(self.split),
            "training": asdict(self.training),
            "estimator": self.estimator,
            "model": dict(self.model),
        }

    @classmethod
    def from_dict(cls, payload: dict[str, Any], source: str = "config") -> RunConfig:
        unknown = set(payload) - {"data", "split", "training", "estimator", "model"}
        if unknown:
            raise DataError(f"{source}: unknown section(s) {', '.join(sorted(unknown))}")
        data = _build(DataSpec, payload.get("data", {}), f"{source}: data")
        split = _build(SplitSpec, payload.get("split", {}), f"{source}: split")
        training = _build(TrainingSpec, payload.get("training", {}), f"{source}: training")
        estimator = payload.get("estimator", "triplet")
        if estimator not in RUN_ESTIMATORS:
            raise DataError(
                f"{source}: estimator must be one of {', '.join(RUN_ESTIMATORS)}, not {estimator!r}"
            )
        model = payload.get("model", default_model(estimator))
        if not isinstance(model, dict):
            raise DataError(f"{source}: model: expected an object")
        _check_names(RUN_ESTIMATORS[estimator], model, f"{source}: unknown model parameter")
        factor = model.get("factor")
        if estimator == "hybrid" and factor is not None:
            if not isinstance(factor, dict):
                raise DataError(f"{source}: model: factor: expected an object")
            _check_names(TripletRecommender, factor, f"{source}: unknown factor parameter")
        return cls(data, split, dict(model), training, estimator)

    @classmethod
    def read(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: no such config file")
        return cls.from_dict(read_json_object(path, DataError), str(path))

    def build_model(self) -> RecommenderBase:
        """The unfitted estimator this config describes."""
        return RUN_ESTIMATORS[self.estimator](**json_lists_to_tuples(self.model))

    def prepare(self) -> tuple[Interactions, Interactions, Interactions]:
        """Load and split the data: ``(all interactions, train positives, test positives)``."""
        data = self.data.load()
        train, test = random_split(data, self.split.test_size, self.split.random_state)
        return data, self.data.positives(train), self.data.positives(test)


def default_model(estimator: str) -> dict[str, Any]:
    """The ``model`` section of a run of ``estimator`` that names no parameters: the
    'default' preset for TripletRecommender, the constructor's defaults otherwise."""
    return dict(PRESETS["default"]) if estimator == "triplet" else {}


def _check_names(estimator: type[RecommenderBase], params: dict[str, Any], what: str) -> None:
    bad = set(params) - set(estimator._param_names())
    if bad:
        raise DataError(f"{what}(s) {', '.join(sorted(bad))}")


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    if not isinstance(values, dict):
        raise DataError(f"{where}: expected an object")
    names = {f.name for f in fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise DataError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    return cls(**values)
