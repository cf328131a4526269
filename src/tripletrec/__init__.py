"""tripletrec: recommenders for implicit feedback trained with triplet / margin losses."""

from tripletrec.data import IdMap, Interactions
from tripletrec.datasets import list_datasets, load_dataset
from tripletrec.evaluation import evaluate
from tripletrec.exceptions import (
    DataError,
    ModelFileError,
    NotFittedError,
    TripletrecError,
    UnknownIdError,
)
from tripletrec.io import load_model, save_model
from tripletrec.recommender import PRESETS, TripletRecommender
from tripletrec.splits import random_split

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "DataError",
    "IdMap",
    "Interactions",
    "ModelFileError",
    "NotFittedError",
    "TripletRecommender",
    "TripletrecError",
    "UnknownIdError",
    "__version__",
    "evaluate",
    "list_datasets",
    "load_dataset",
    "load_model",
    "random_split",
    "save_model",
]
