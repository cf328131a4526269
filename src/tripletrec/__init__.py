"""tripletrec: recommenders for implicit feedback trained with triplet / margin losses."""

# Every built-in estimator module is imported here, which registers its classes
# (tripletrec._registry) so that load_model finds them.
from tripletrec._version import __version__
from tripletrec.data.datasets import list_datasets, load_dataset
from tripletrec.data.interactions import IdMap, Interactions
from tripletrec.data.splits import (
    fraction_per_user_split,
    leave_last_k_out,
    random_split,
    validation_split,
)
from tripletrec.data.summary import DataSummary, describe
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
from tripletrec.models.ease import EASERecommender
from tripletrec.models.explain import Explanation
from tripletrec.models.graph_filter import GraphFilterRecommender
from tripletrec.models.hybrid import HybridRecommender
from tripletrec.models.recommender import Recommender
from tripletrec.models.rp3beta import RP3BetaRecommender
from tripletrec.models.triplet import PRESETS, TripletRecommender
from tripletrec.persistence import load_model, save_model

__all__ = [
    "PRESETS",
    "DataError",
    "DataSummary",
    "EASERecommender",
    "Explanation",
    "GraphFilterRecommender",
    "HybridRecommender",
    "IdMap",
    "Interactions",
    "ItemKNNRecommender",
    "ModelFileError",
    "NotFittedError",
    "ParameterError",
    "PopularityRecommender",
    "RP3BetaRecommender",
    "RandomRecommender",
    "Recommender",
    "TrainingDivergedError",
    "TripletRecommender",
    "TripletrecError",
    "UnknownIdError",
    "__version__",
    "describe",
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
