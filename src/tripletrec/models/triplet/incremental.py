"""``fit_partial``: more training for a fitted model, with new positives, users and items.

What :func:`fit_partial_triplet_model` does, and why:

* **Grow** the model (:mod:`tripletrec.models.triplet.growth`): id maps, seen items, side-feature
  matrices and the scorer's tables get the new users and items; known rows keep their
  fitted weights.
* **Train on the union** of the positives the model was fitted on (``seen_``) and the new
  ones, not on the new ones alone. Trained on the new positives alone, the model drifts
  towards them: every step pulls the new users and items together and no step holds the
  rest in place. On a validation split of anime-tv's training positives (a model fitted
  on 80 % of them, then given the other 20 %), epochs over the new positives alone
  improved validation AUC for one epoch and then lowered it, below the model they started
  from after a few more, while a few epochs over the union came within a small margin of
  a fit on everything (``benchmarks/perf/incremental.py`` measures both on the test split).
* **Epochs**: by default :data:`PARTIAL_EPOCH_SHARE` of the model's ``epochs`` (at least
  one), chosen on that validation split: fewer left a visible gap to the full fit, more
  cost time for little.
* **Continue the optimiser**: Adam's moments and step counts carry over (the moments of
  new rows start at zero), from ``optimizer_state_`` or a final checkpoint; the
  learning-rate schedule starts again over the epochs of this call (a warm restart),
  since a decayed schedule ended at a step size of zero.
* **Seeds**: the call's random stream is drawn from ``(random_state, n)``, ``n`` counting
  the model's partial fits, so the same model, data and seed give the same result, and a
  second call does not replay the first's draws.

It runs in one process (a data-parallel job refuses it).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import scipy.sparse as sp
import torch

from tripletrec._checks import one_of, positive_int
from tripletrec.data.features import Features
from tripletrec.data.interactions import Interactions
from tripletrec.exceptions import ParameterError
from tripletrec.models.triplet.fitted import FittedTriplet
from tripletrec.models.triplet.growth import grow
from tripletrec.models.triplet.settings import TrainingSettings
from tripletrec.models.triplet.trainer import (
    SINGLE_PROCESS,
    ParallelPlan,
    StepInputs,
    training_scope,
)
from tripletrec.training.checkpoints import (
    checkpoint_meta,
    fingerprint,
    latest_checkpoint,
    write_checkpoint,
)
from tripletrec.training.loop import train_triplets
from tripletrec.training.sampling import make_sampler
from tripletrec.training.state import (
    OPTIMIZER_PREFIX,
    SCORER_PREFIX,
    FitState,
    OptimizerState,
    optimizers_of,
    parameter_names,
)

if TYPE_CHECKING:
    from tripletrec.models.triplet.estimator import TripletRecommender

#: ``fit_partial``'s default epochs, as a share of the model's (see the module docstring).
PARTIAL_EPOCH_SHARE = 0.4


def fit_partial_triplet_model(
    model: TripletRecommender,
    data: Interactions | sp.spmatrix,
    *,
    epochs: int | None = None,
    user_features: Features | None = None,
    item_features: Features | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    plan: ParallelPlan = SINGLE_PROCESS,
    train_on: Literal["all", "new"] = "all",
) -> TripletRecommender:
    """Train fitted ``model`` further with positives ``data`` (see the module docstring
    and :meth:`TripletRecommender.fit_partial`).

    Parameters
    ----------
    train_on : {"all", "new"}
        Train on the union of ``seen_`` and ``data`` (the default, see above), or on
        ``data`` alone (as LightFM's ``fit_partial``; ``seen_`` is the union either way).

    Returns
    -------
    TripletRecommender
        ``model``, grown and trained (its new state installed as a
        :class:`~tripletrec.models.triplet.fitted.FittedTriplet`); ``history_`` gains this
        call's epochs (numbered on from the last, with ``partial_fit``: which call),
        ``fit_seconds_`` is this call's.
    """
    # The negatives and batches resolved by the first fit: "auto" is not chosen again on
    # grown data.
    settings = TrainingSettings.of(model).with_negatives(model._negatives(), model._batch_by())
    plan.check_single_process("fit_partial")
    one_of("train_on", train_on, ("all", "new"))
    if epochs is None:
        epochs = max(1, math.ceil(PARTIAL_EPOCH_SHARE * settings.schedule.epochs))
    epochs = positive_int("epochs", epochs)
    schedule = plan.per_process(dataclasses.replace(settings.schedule, epochs=epochs))
    directory = None if checkpoint_dir is None else Path(checkpoint_dir)
    optimizer_state = getattr(model, "optimizer_state_", None)
    if optimizer_state is None and directory is not None:
        optimizer_state = _saved_optimizer_state(model, directory)
    previous = list(getattr(model, "history_", []))
    n_partial = 1 + max((int(r.get("partial_fit", 0)) for r in previous), default=0)
    seed = plan.shared_seed(settings.random_state)
    rng = np.random.default_rng(None if seed is None else [seed, n_partial])
    grow_seed, torch_seed = (int(x) for x in rng.integers(2**62, size=2))
    growth = grow(
        model, data, user_features=user_features, item_features=item_features, seed=grow_seed
    )
    device = plan.device(settings.device)
    loss = settings.loss.with_n_items(len(growth.item_map))
    positives = growth.seen if train_on == "all" else growth.given
    users, items = (np.asarray(a, dtype=np.int64) for a in positives.nonzero())
    sampler = make_sampler(settings.negatives, growth.seen, settings.negative_alpha)
    log_q = None
    if sampler.log_q is not None:
        log_q = torch.as_tensor(sampler.log_q, dtype=torch.float32, device=device)
    users, items, rng = plan.shard(users, items, rng)

    start = time.perf_counter()
    with training_scope(
        model, torch_seed, device, settings.n_threads, scorer=growth.scorer
    ) as scorer:
        step = plan.training_step(StepInputs.of(scorer, loss, schedule, log_q, settings))
        optimizers, names = optimizers_of(step.optimizer), parameter_names(scorer)
        if optimizer_state is not None:
            optimizer_state.load_into(optimizers, names, grow=True)
        try:
            records = train_triplets(
                step, users, items, sampler, schedule, rng, n_negatives=settings.n_negatives,
                device=device, progress=settings.verbose and plan.is_main,
            )  # fmt: skip
        finally:
            plan.after_training(scorer)
        new_state = OptimizerState.capture(optimizers, names)
        fit_state = FitState(scorer, optimizers, rng, device)
        tensors, state_meta = fit_state.capture() if directory is not None else ({}, {})
    offset = len(previous)
    history = previous + [
        {**record, "epoch": offset + record["epoch"], "partial_fit": n_partial}
        for record in records
    ]
    growth.apply(model)
    added = {
        "n_new_users": growth.n_new_users,
        "n_new_items": growth.n_new_items,
        "n_positives": int(growth.given.nnz),
        "epochs": len(records),
    }
    fitted = FittedTriplet(
        module=scorer.eval(), negatives=settings.negatives, batch_by=settings.batch_by,
        history=history, fit_seconds=time.perf_counter() - start, optimizer_state=new_state,
        partial_fit=added,
    )  # fmt: skip
    model._install(fitted)
    if directory is not None:
        meta = checkpoint_meta(
            kind="fit_partial", final=True, steps_done=0, epochs=len(history),
            history=history, fit_seconds=model.fit_seconds_,
            fingerprint=fingerprint(model, growth.seen), state_meta=state_meta,
        )  # fmt: skip
        directory.mkdir(parents=True, exist_ok=True)
        write_checkpoint(directory, len(history), tensors, meta)
    return model


def _saved_optimizer_state(model: TripletRecommender, directory: Path) -> OptimizerState | None:
    """The optimiser state of ``directory``'s final checkpoint, which must hold ``model``'s
    weights; None when the directory has no checkpoint (Adam then starts afresh)."""
    checkpoint = latest_checkpoint(directory)
    if checkpoint is None:
        return None
    if not checkpoint.final:
        raise ParameterError(
            f"{checkpoint.directory}: the checkpoint of an unfinished fit (epoch "
            f"{checkpoint.epoch} of {checkpoint.meta.get('epochs')}); resume that fit first "
            "(fit(..., resume=True), tripletrec train --resume)"
        )
    saved = {
        key[len(SCORER_PREFIX) :]: value
        for key, value in checkpoint.tensors.items()
        if key.startswith(SCORER_PREFIX)
    }
    current = model.module_.state_dict()
    if saved.keys() != current.keys() or not all(
        torch.equal(saved[k], v.detach().cpu()) for k, v in current.items()
    ):
        raise ParameterError(
            f"{checkpoint.directory}: does not hold this model's weights (the model changed "
            "after that checkpoint, or the directory is another model's)"
        )
    optimizer_tensors = {
        key: value for key, value in checkpoint.tensors.items() if key.startswith(OPTIMIZER_PREFIX)
    }
    return OptimizerState(optimizer_tensors, checkpoint.meta["optimizer"])
