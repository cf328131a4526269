"""tripletrec: recommenders for implicit feedback trained with triplet / margin losses."""

from tripletrec.data.datasets import list_datasets, load_dataset
from tripletrec.data.interactions import IdMap, Interactions
from tripletrec.data.splits import (
    fraction_per_user_split,
    leave_last_k_out,
    random_split,
    validation_split,
)
from tripletrec.evaluation.protocols import evaluate, evaluate_sampled
from tripletrec.exceptions import (
    DataError,
    ModelFileError,
    NotFittedError,
    ParameterError,
    TrainingDivergedError,
    TripletrecError,
    UnknownIdError,
)
from tripletrec.models.baselines import ItemKNNRecommender, PopularityRecommender, RandomRecommender
from tripletrec.models.triplet import PRESETS, TripletRecommender
from tripletrec.persistence import load_model, save_model

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "DataError",
    "IdMap",
    "Interactions",
    "ItemKNNRecommender",
    "ModelFileError",
    "NotFittedError",
    "ParameterError",
    "PopularityRecommender",
    "RandomRecommender",
    "TrainingDivergedError",
    "TripletRecommender",
    "TripletrecError",
    "UnknownIdError",
    "__version__",
    "evaluate",
    "evaluate_sampled",
    "fraction_per_user_split",
    "leave_last_k_out",
    "list_datasets",
    "load_dataset",
    "load_model",
    "random_split",
    "save_model",
    "validation_split",
]
