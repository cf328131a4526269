"""``TripletRecommender`` and everything that is its alone: its training, presets, side
features, growth and scoring hooks (as LensKit keeps FlexMF's training in ``flexmf/``).

``training/`` holds what any trained model could use (losses, samplers, the epoch loop,
checkpoints, validation); this package builds TripletRecommender's fit from those pieces.

* :mod:`~tripletrec.models.triplet.estimator`: the estimator (hyper-parameters, fit,
  fit_partial, add_items).
* :mod:`~tripletrec.models.triplet.presets`: named hyper-parameter sets and
  ``build_scorer``.
* :mod:`~tripletrec.models.triplet.trainer`: ``fit_triplet_model``, the one fit pipeline,
  and ``ParallelPlan``.
* :mod:`~tripletrec.models.triplet.fitted`: what a fit produces (``FittedTriplet``), the one
  place it is installed, and how a refit starts clean.
* :mod:`~tripletrec.models.triplet.fused`: the closed-form bilinear training step.
* :mod:`~tripletrec.models.triplet.incremental` and
  :mod:`~tripletrec.models.triplet.growth`: ``fit_partial``.
* :mod:`~tripletrec.models.triplet.distributed`: data-parallel fits (``DataParallelPlan``,
  ``fit_data_parallel``).
* :mod:`~tripletrec.models.triplet._features`: side-feature matrices.
* :mod:`~tripletrec.models.triplet._scorer_hooks`: scoring and persistence hooks.
"""

from tripletrec.models.triplet.estimator import TripletRecommender
from tripletrec.models.triplet.presets import FULL_SOFTMAX_RANKING_BIAS_SCALE, PRESETS

__all__ = ["FULL_SOFTMAX_RANKING_BIAS_SCALE", "PRESETS", "TripletRecommender"]
