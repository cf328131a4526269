"""The state of a fit in progress, as bare tensors and JSON: captured, restored, grown.

A fit's future depends on more than its weights: on the optimiser's per-parameter state
(Adam's moments and step counts), on where NumPy's generator (shuffles, negatives) and
torch's (dropout, identity dropout, WARP draws) stand, on the early-stopping monitor's best
value and weights, and on the epochs and schedule steps done. :class:`FitState` holds
references to all of it and turns it into ``(tensors, meta)``: a flat ``{name: tensor}``
dict for safetensors and a JSON-able dict for the rest (no pickle anywhere; torch's own
``Optimizer.state_dict`` mixes tensors with Python objects and is saved with pickle by
``torch.save``). :mod:`tripletrec.training.checkpoints` writes and reads that pair.

Optimiser state is keyed by *parameter name* (``user_embedding.weight``), not by the
optimiser's parameter order, so that it can be loaded into a network whose tables grew
(:meth:`OptimizerState.load_into` with ``grow=True``: the moments of new rows start at
zero), which is what ``fit_partial`` does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from tripletrec.exceptions import ParameterError
from tripletrec.training.checkpoints import CheckpointSettings, checkpoint_meta, write_checkpoint
from tripletrec.training.loop import EpochCallback
from tripletrec.training.monitor import ValidationMonitor
from tripletrec.training.sparse import RowSparseAdam

OPTIMIZER_PREFIX = "optimizer."
SCORER_PREFIX = "scorer."
MONITOR_PREFIX = "monitor."
TORCH_RNG = "rng.torch"
CUDA_RNG = "rng.cuda"


def optimizers_of(optimizer: Any) -> list[torch.optim.Optimizer]:
    """The torch optimisers behind a training step's ``optimizer`` (one, or the members of
    an :class:`~tripletrec.training.sparse.OptimizerGroup`)."""
    members = getattr(optimizer, "optimizers", None)
    optimizers = list(members) if members is not None else [optimizer]
    for member in optimizers:
        if not isinstance(member, torch.optim.Optimizer):
            raise ParameterError(
                f"cannot checkpoint a training step whose optimiser is a {type(member).__name__}"
            )
    return optimizers


def parameter_names(module: nn.Module) -> dict[int, str]:
    """``id(parameter) -> name`` for every parameter of ``module``."""
    return {id(parameter): name for name, parameter in module.named_parameters()}


@dataclass
class OptimizerState:
    """Per-parameter optimiser state by parameter name: tensors, and JSON for the rest.

    Attributes
    ----------
    tensors : dict of str to torch.Tensor
        ``"optimizer.<parameter>.<key>"``: Adam's ``exp_avg``, ``exp_avg_sq`` and (torch's
        Adam) ``step``.
    meta : dict
        ``types`` (the optimisers' class names, in order), ``lr`` (every parameter group's
        current step size) and ``scalars`` (``{parameter: {key: number}}``, such as
        :class:`~tripletrec.training.sparse.RowSparseAdam`'s integer step count).
    """

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    @classmethod
    def capture(
        cls, optimizers: list[torch.optim.Optimizer], names: dict[int, str]
    ) -> OptimizerState:
        """The state of ``optimizers`` now (tensors referenced, not copied)."""
        tensors: dict[str, torch.Tensor] = {}
        scalars: dict[str, dict[str, Any]] = {}
        for optimizer in optimizers:
            for parameter, state in optimizer.state.items():
                name = names[id(parameter)]
                for key, value in state.items():
                    if isinstance(value, torch.Tensor):
                        tensors[f"{OPTIMIZER_PREFIX}{name}.{key}"] = value.detach()
                    else:
                        scalars.setdefault(name, {})[key] = value
        meta = {
            "types": [type(optimizer).__name__ for optimizer in optimizers],
            "lr": [group["lr"] for optimizer in optimizers for group in optimizer.param_groups],
            "scalars": scalars,
        }
        return cls(tensors, meta)

    @classmethod
    def of_step(cls, step: Any, module: nn.Module) -> OptimizerState | None:
        """The state of a training step's torch optimisers over ``module``; None for a
        step whose optimiser is something else (a custom plan's)."""
        try:
            optimizers = optimizers_of(step.optimizer)
        except ParameterError:
            return None
        return cls.capture(optimizers, parameter_names(module))

    def _entries(self, name: str) -> dict[str, Any]:
        """The saved state of parameter ``name``, tensors and scalars, by key."""
        prefix = f"{OPTIMIZER_PREFIX}{name}."
        entries: dict[str, Any] = dict(self.meta.get("scalars", {}).get(name, {}))
        for key, tensor in self.tensors.items():
            rest = key[len(prefix) :]
            if key.startswith(prefix) and "." not in rest:
                entries[rest] = tensor
        return entries

    def load_into(
        self, optimizers: list[torch.optim.Optimizer], names: dict[int, str], *, grow: bool
    ) -> None:
        """Give ``optimizers`` this state, parameter by parameter name.

        ``grow=False`` (resuming): the optimisers must be of the same kinds, and every
        tensor of the parameter's shape, and the step sizes are restored too. ``grow=True``
        (``fit_partial``): a parameter with more rows than its saved state (a table that
        grew) gets zero moments for the new rows; step counts carry over between Adam and
        the row-wise Adam; step sizes are left to the schedule, which starts again.
        """
        types = [type(optimizer).__name__ for optimizer in optimizers]
        if not grow and types != self.meta.get("types"):
            raise ParameterError(
                f"the checkpoint's optimisers ({', '.join(self.meta.get('types', []))}) are "
                f"not this fit's ({', '.join(types)}): resume with the same training settings"
            )
        for optimizer in optimizers:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            state = {}
            for index, parameter in enumerate(params):
                entries = self._entries(names[id(parameter)])
                if entries:
                    state[index] = {
                        key: _fitted(key, value, parameter, optimizer, grow)
                        for key, value in entries.items()
                    }
            groups = optimizer.state_dict()["param_groups"]
            optimizer.load_state_dict({"state": state, "param_groups": groups})
        if not grow:
            groups = [group for optimizer in optimizers for group in optimizer.param_groups]
            for group, lr in zip(groups, self.meta.get("lr", []), strict=True):
                group["lr"] = lr


def _fitted(
    key: str, value: Any, parameter: torch.Tensor, optimizer: torch.optim.Optimizer, grow: bool
) -> Any:
    """A saved state entry made to fit ``parameter`` (and, growing, ``optimizer``'s kind)."""
    if key == "step":  # RowSparseAdam counts in a Python int, torch's Adam in a tensor
        if isinstance(optimizer, RowSparseAdam):
            return int(value.item()) if isinstance(value, torch.Tensor) else int(value)
        if not isinstance(value, torch.Tensor):
            return torch.tensor(float(value), dtype=torch.float32)
        return value.clone()
    if not isinstance(value, torch.Tensor):
        return value
    value = value.to(device=parameter.device).clone()  # never share the saved tensor
    if value.shape == parameter.shape:
        return value
    rows_grew = (
        value.dim() == parameter.dim() >= 1
        and value.shape[1:] == parameter.shape[1:]
        and value.shape[0] < parameter.shape[0]
    )
    if not (grow and rows_grew):
        raise ParameterError(
            f"the checkpoint's optimiser state {key!r} has shape {tuple(value.shape)}, the "
            f"parameter {tuple(parameter.shape)}: the checkpoint is of another model"
        )
    padding = value.new_zeros((parameter.shape[0] - value.shape[0], *value.shape[1:]))
    return torch.cat([value, padding])


@dataclass
class FitState:
    """References to what a fit in progress would need to go on.

    :meth:`capture` reads them into ``(tensors, meta)``; :meth:`restore` writes a
    checkpoint's back into them, in place (the step keeps its optimiser and parameters).
    """

    scorer: nn.Module
    optimizers: list[torch.optim.Optimizer]
    rng: np.random.Generator
    device: torch.device
    monitor: ValidationMonitor | None = None

    def capture(self, best_weights: bool = True) -> tuple[dict[str, torch.Tensor], dict]:
        """``(tensors, meta)`` of the state now; ``best_weights``: with the monitor's."""
        names = parameter_names(self.scorer)
        optimizer = OptimizerState.capture(self.optimizers, names)
        tensors = {f"{SCORER_PREFIX}{k}": v.detach() for k, v in self.scorer.state_dict().items()}
        tensors |= optimizer.tensors
        tensors[TORCH_RNG] = torch.get_rng_state()
        if self.device.type == "cuda":
            tensors[CUDA_RNG] = torch.cuda.get_rng_state(self.device)
        meta: dict[str, Any] = {
            "optimizer": optimizer.meta,
            "numpy_rng": self.rng.bit_generator.state,
            "monitor": None,
        }
        if self.monitor is not None:
            best = self.monitor.best_value
            meta["monitor"] = {
                "best_value": None if not np.isfinite(best) else float(best),
                "best_epoch": self.monitor.best_epoch,
                "has_best_state": best_weights and self.monitor.best_state is not None,
            }
            best_state = self.monitor.best_state if best_weights else None
            for key, value in (best_state or {}).items():
                tensors[f"{MONITOR_PREFIX}{key}"] = value
        return tensors, meta

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict, *, final: bool) -> None:
        """Load a checkpoint's state. ``final``: the checkpoint of a finished fit, whose
        weights are already the best epoch's (no best weights are kept to restore)."""
        scorer_state = _prefixed(tensors, SCORER_PREFIX)
        self.scorer.load_state_dict(scorer_state, strict=True)
        OptimizerState(
            _prefixed(tensors, OPTIMIZER_PREFIX, keep=True), meta["optimizer"]
        ).load_into(self.optimizers, parameter_names(self.scorer), grow=False)
        state = meta["numpy_rng"]
        if state.get("bit_generator") != type(self.rng.bit_generator).__name__:
            raise ParameterError(
                f"the checkpoint's NumPy generator is a {state.get('bit_generator')}, "
                f"this fit's a {type(self.rng.bit_generator).__name__}"
            )
        self.rng.bit_generator.state = state
        torch.set_rng_state(tensors[TORCH_RNG])
        if self.device.type == "cuda" and CUDA_RNG in tensors:
            torch.cuda.set_rng_state(tensors[CUDA_RNG], self.device)
        saved = meta.get("monitor")
        if self.monitor is not None and saved is not None:
            best = saved["best_value"]
            self.monitor.best_value = -np.inf if best is None else float(best)
            self.monitor.best_epoch = int(saved["best_epoch"])
            best_state = _prefixed(tensors, MONITOR_PREFIX)
            device = self.device
            self.monitor.best_state = (
                {k: v.to(device) for k, v in best_state.items()}
                if saved["has_best_state"] and not final
                else None
            )


def _prefixed(
    tensors: dict[str, torch.Tensor], prefix: str, keep: bool = False
) -> dict[str, torch.Tensor]:
    """The tensors whose names start with ``prefix`` (removed from the names unless
    ``keep``)."""
    return {
        (key if keep else key[len(prefix) :]): value
        for key, value in tensors.items()
        if key.startswith(prefix)
    }


class Checkpointer:
    """Writes a fit's checkpoints: every ``settings.every`` epochs, and a final one.

    Parameters
    ----------
    settings : CheckpointSettings
        Where, how often, how many to keep.
    state : FitState
        What to capture.
    fingerprint : dict
        The fit's settings and data (:func:`~tripletrec.training.checkpoints.fingerprint`).
    epochs, steps_per_epoch : int
        The schedule: no periodic checkpoint after the last epoch (the final one is it).
    history : list of dict
        The records of the epochs done before this process started (resumed), extended
        with each epoch's record.
    seconds_before : float
        Training seconds of the processes before this one.
    start : float
        ``time.perf_counter()`` when this process started training.
    """

    def __init__(
        self,
        settings: CheckpointSettings,
        state: FitState,
        *,
        fingerprint: dict,
        epochs: int,
        steps_per_epoch: int,
        history: list[dict],
        seconds_before: float,
        start: float,
    ) -> None:
        self.settings, self.state, self.fingerprint = settings, state, fingerprint
        self.epochs, self.steps_per_epoch = epochs, steps_per_epoch
        self.history = list(history)
        self.seconds_before, self.start = seconds_before, start

    def seconds(self) -> float:
        """Training seconds so far, over every process of the fit."""
        return self.seconds_before + time.perf_counter() - self.start

    def wrap(self, callback: EpochCallback | None) -> EpochCallback:
        """``callback``, then a checkpoint when one is due and training goes on. The
        callbacks (validation, early stopping) run first: their record and state are
        part of the checkpoint."""

        def on_epoch_end(epoch: int, record: dict) -> bool:
            stop = bool(callback(epoch, record)) if callback is not None else False
            self.history.append(record)
            if not stop and epoch % self.settings.every == 0 and epoch < self.epochs:
                self.write(epoch, self.history, final=False)
            return stop

        return on_epoch_end

    def write(self, epoch: int, history: list[dict], *, final: bool, kind: str = "fit") -> None:
        """Checkpoint the state after ``epoch`` (``final``: of the fitted model)."""
        tensors, state_meta = self.state.capture(best_weights=not final)
        meta = checkpoint_meta(
            kind=kind, final=final, steps_done=epoch * self.steps_per_epoch,
            epochs=self.epochs, history=history, fit_seconds=self.seconds(),
            fingerprint=self.fingerprint, state_meta=state_meta,
        )  # fmt: skip
        write_checkpoint(self.settings.directory, epoch, tensors, meta, self.settings.keep)
