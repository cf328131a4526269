"""Run configurations: which data, which split, which model — as a file that round-trips.

``tripletrec train --out DIR`` writes ``DIR/config.json``; ``tripletrec train --config
DIR/config.json`` trains the same model again, and ``tripletrec evaluate DIR`` rebuilds
the same test split from it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from tripletrec import _registry
from tripletrec._files import json_lists_to_tuples, read_json_object
from tripletrec.data.datasets import DATASETS, dataset_features, load_dataset
from tripletrec.data.features import Features
from tripletrec.data.interactions import Interactions
from tripletrec.data.splits import random_split
from tripletrec.exceptions import DataError
from tripletrec.models.base import RecommenderBase
from tripletrec.models.recommender import Recommender

#: The estimator of a run that names none: the product's default.
DEFAULT_ESTIMATOR = Recommender.__name__
#: The estimator of a config.json written before runs named theirs (they all trained it).
UNNAMED_ESTIMATOR = "TripletRecommender"


def estimator_class(name: str, where: str = "--estimator") -> type[RecommenderBase]:
    """The registered estimator class ``name`` names (see :func:`tripletrec._registry.resolve`).

    Raises
    ------
    DataError
        If no registered estimator has that name; the message lists the names.
    """
    cls = _registry.resolve(name) if isinstance(name, str) else None
    if cls is None:
        known = ", ".join(sorted(_registry.short_name(c) for c in _registry.registered().values()))
        raise DataError(f"{where}: no estimator named {name!r} (known: {known})")
    return cls


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

    ``estimator`` is the class name of a registered estimator (files written before it
    existed trained TripletRecommender; older short names such as "hybrid" still resolve);
    ``model`` holds that estimator's constructor parameters (none: its defaults).
    """

    data: DataSpec = field(default_factory=DataSpec)
    split: SplitSpec = field(default_factory=SplitSpec)
    model: dict[str, Any] = field(default_factory=dict)
    training: TrainingSpec = field(default_factory=TrainingSpec)
    estimator: str = DEFAULT_ESTIMATOR

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
        estimator_cls = estimator_class(
            payload.get("estimator", UNNAMED_ESTIMATOR), f"{source}: estimator"
        )
        model = payload.get("model", {})
        if not isinstance(model, dict):
            raise DataError(f"{source}: model: expected an object")
        check_params(estimator_cls, model, f"{source}: model")
        estimator = estimator_cls.__name__
        return cls(data, split, dict(model), training, estimator)

    @classmethod
    def read(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: no such config file")
        return cls.from_dict(read_json_object(path, DataError), str(path))

    def build_model(self) -> RecommenderBase:
        """The unfitted estimator this config describes."""
        return self.estimator_class()(**json_lists_to_tuples(self.model))

    def estimator_class(self) -> type[RecommenderBase]:
        """The class of the estimator this config trains."""
        return estimator_class(self.estimator)

    def prepare(self) -> tuple[Interactions, Interactions, Interactions]:
        """Load and split the data: ``(all interactions, train positives, test positives)``."""
        data = self.data.load()
        train, test = random_split(data, self.split.test_size, self.split.random_state)
        return data, self.data.positives(train), self.data.positives(test)


def check_params(estimator: type[RecommenderBase], params: dict[str, Any], where: str) -> None:
    """Raise :class:`DataError` for a name in ``params`` that ``estimator``'s constructor
    does not take, or in the settings of one of its parts (``estimator.part_settings``)."""
    bad = set(params) - set(estimator._param_names())
    if bad:
        raise DataError(f"{where}: unknown parameter(s) {', '.join(sorted(bad))}")
    for name, part in estimator.part_settings.items():
        settings = params.get(name)
        if settings is None:
            continue
        if not isinstance(settings, dict):
            raise DataError(f"{where}: {name}: expected an object")
        check_params(part, settings, f"{where}: {name}")


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    if not isinstance(values, dict):
        raise DataError(f"{where}: expected an object")
    names = {f.name for f in fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise DataError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    return cls(**values)
