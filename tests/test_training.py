"""The epoch loop: learning-rate schedules and bad settings."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tripletrec.exceptions import ParameterError
from tripletrec.models.scorers import BilinearScorer
from tripletrec.models.triplet.fused import FusedBilinearStep
from tripletrec.training.loop import TrainingSchedule, train_triplets
from tripletrec.training.losses import resolve_loss
from tripletrec.training.sampling import make_sampler


def test_lr_factor_follows_each_schedule():
    linear = TrainingSchedule(1, 1, 0.1, lr_schedule="linear")
    cosine = TrainingSchedule(1, 1, 0.1, lr_schedule="cosine")
    constant = TrainingSchedule(1, 1, 0.1)
    assert [linear.lr_factor(s, 4) for s in range(4)] == [1.0, 0.75, 0.5, 0.25]
    # half cosine: (1 + cos(pi t)) / 2 at t = 0, 1/2
    assert cosine.lr_factor(0, 10) == pytest.approx(1.0)
    assert cosine.lr_factor(5, 10) == pytest.approx(0.5)
    assert constant.lr_factor(7, 10) == 1.0


def test_training_applies_the_schedule_to_the_optimiser():
    positives = sp.random(30, 12, 0.3, random_state=0, format="csr", dtype=np.float32)
    users, items = positives.nonzero()
    schedule = TrainingSchedule(epochs=3, batch_size=16, learning_rate=0.1, lr_schedule="linear")
    step = FusedBilinearStep(BilinearScorer(30, 12, 4), resolve_loss("margin"), 0.1, 0.0)
    train_triplets(
        step, users, items, make_sampler("uniform", positives), schedule, np.random.default_rng(0)
    )
    total = 3 * int(np.ceil(len(users) / 16))
    # the last step ran with the factor of step total - 1
    assert step.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 / total)


def test_bad_schedule_settings_are_rejected():
    # ParameterError is a ValueError: callers that caught ValueError still do.
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        TrainingSchedule(1, 1, 0.1, lr_schedule="step")
    with pytest.raises(ParameterError, match="epochs must be a positive integer, got 0"):
        TrainingSchedule(0, 1, 0.1)
    with pytest.raises(ParameterError, match=r"learning_rate must be > 0, got 0\.0"):
        TrainingSchedule(1, 1, 0.0)
    with pytest.raises(ParameterError, match="l2 must be >= 0"):
        TrainingSchedule(1, 1, 0.1, l2=-1e-3)
    with pytest.raises(ParameterError, match="batch_size must be a positive integer"):
        TrainingSchedule(1, 2.5, 0.1)


def test_a_diverging_loss_raises_training_diverged():
    from tripletrec.exceptions import TrainingDivergedError

    positives = sp.random(30, 12, 0.3, random_state=0, format="csr", dtype=np.float32)
    users, items = positives.nonzero()

    def step(users, positives, negatives):
        return torch.tensor(float("nan"))

    step.optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    schedule = TrainingSchedule(epochs=2, batch_size=16, learning_rate=0.1)
    sampler = make_sampler("uniform", positives)
    with pytest.raises(TrainingDivergedError, match="diverged at epoch 1"):
        train_triplets(step, users, items, sampler, schedule, np.random.default_rng(0))
    assert issubclass(TrainingDivergedError, FloatingPointError)
