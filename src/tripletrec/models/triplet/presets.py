"""Named hyper-parameter sets of :class:`~tripletrec.models.triplet.TripletRecommender`,
the rule behind ``ranking_bias_scale="auto"``, and the scorer a set of hyper-parameters
builds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, get_args

import scipy.sparse as sp
import torch

from tripletrec.exceptions import ParameterError
from tripletrec.models.scorers import (
    BilinearScorer,
    DeepScorer,
    FactorizationMachineScorer,
    Scorer,
)
from tripletrec.training.losses import Loss

#: The estimator's ``model``: the scorer :func:`build_scorer` builds.
Architecture = Literal["bilinear", "deep", "fm"]
ARCHITECTURES: tuple[Architecture, ...] = get_args(Architecture)

# The best configuration found: dot product with item biases, softmax over the whole
# catalogue, a max-norm bound and no weight decay (Adam's coupled L2 collapsed rarely
# updated rows on a large sparse catalogue: docs/models.md), decaying steps, and the item bias
# shrunk when ranking. negatives="auto" is the full softmax on catalogues small enough
# for it (every benchmark data set) and the in-batch softmax beyond. Chosen on validation
# splits of both datasets' training positives (benchmarks/perf/compare.py has the test figures).
_DEFAULT: dict[str, Any] = dict(
    model="bilinear", similarity="dot", n_factors=128, item_bias=True,
    ranking_bias_scale="auto", loss="softmax", negatives="auto", epochs=10, batch_size=3072,
    learning_rate=0.04, l2=0.0, init_scale=0.01, max_norm=2.0, lr_schedule="linear",
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
    # features alone (benchmarks/perf/cold_start.py).
    "cold-start": {**_DEFAULT, "identity_dropout": 0.5, "feature_weight": 1.0},
    # The notebook's models and losses with tripletrec's settings: large batches, larger
    # steps (benchmarks/perf/reproduce_notebook.py).
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


def resolved_ranking_bias_scale(value: float | str, loss: Loss) -> float:
    """``ranking_bias_scale`` with ``"auto"`` resolved: :data:`FULL_SOFTMAX_RANKING_BIAS_SCALE`
    for the full softmax, 1 for every other loss."""
    if value != "auto":
        return float(value)
    return FULL_SOFTMAX_RANKING_BIAS_SCALE if loss.kind == "full_softmax" else 1.0


def build_scorer(
    params: Mapping[str, Any],
    n_users: int,
    n_items: int,
    generator: torch.Generator,
    ranking_bias_scale: float,
    *,
    user_features: sp.csr_matrix | None = None,
    item_features: sp.csr_matrix | None = None,
) -> Scorer:
    """The untrained scorer of the estimator hyper-parameters ``params`` (``model`` picks
    the kind; see :class:`~tripletrec.models.triplet.TripletRecommender`)."""
    p = params
    features = dict(user_features=user_features, item_features=item_features)
    if p["model"] == "bilinear":
        return BilinearScorer(
            n_users, n_items, n_factors=p["n_factors"], similarity=p["similarity"],
            item_bias=p["item_bias"], init_scale=p["init_scale"], generator=generator,
            learn_temperature=p["learn_temperature"], ranking_bias_scale=ranking_bias_scale,
            **features,
        )  # fmt: skip
    if p["model"] == "deep":
        return DeepScorer(
            n_users, n_items, user_dim=p["user_dim"], item_dim=p["item_dim"],
            hidden_layers=tuple(p["hidden_layers"]), dropout=p["dropout"],
            init_scale=p["init_scale"], generator=generator, dot_factors=p["dot_factors"],
            **features,
        )  # fmt: skip
    if p["model"] == "fm":
        return FactorizationMachineScorer(
            n_users, n_items, n_factors=p["n_factors"], init_scale=p["init_scale"],
            generator=generator, ranking_bias_scale=ranking_bias_scale, **features,
        )  # fmt: skip
    choices = ", ".join(map(repr, ARCHITECTURES[:-1])) + f" or {ARCHITECTURES[-1]!r}"
    raise ParameterError(f"unknown model {p['model']!r}; choose {choices}")
