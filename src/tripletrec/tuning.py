"""Hyper-parameter search on a validation split, with Optuna.

:func:`tune` carves a validation part out of the *training* positives of a
:class:`~tripletrec.config.RunConfig` (the test part is never read), fits one
:class:`~tripletrec.models.triplet.TripletRecommender` per trial on the rest, scores it on the
validation part and keeps the best setting. ``tripletrec tune`` writes the best setting as a
config file that ``tripletrec train --config`` trains again.

Optuna is an optional dependency: ``pip install 'tripletrec[tune]'``.

Examples
--------
>>> from tripletrec.config import RunConfig
>>> from tripletrec.tuning import tune
>>> result = tune(RunConfig(), n_trials=10, timeout_seconds=300)  # doctest: +SKIP
>>> result.best_value, result.best_params  # doctest: +SKIP
>>> result.best_config.to_dict()  # a config for ``tripletrec train --config``  # doctest: +SKIP
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from tripletrec._checks import finite_number, is_number, positive_int
from tripletrec.config import RunConfig
from tripletrec.data.splits import validation_split
from tripletrec.evaluation.metrics import metric_key, parse_metric
from tripletrec.evaluation.protocols import evaluate
from tripletrec.exceptions import ParameterError, TripletrecError
from tripletrec.models.base import RecommenderBase
from tripletrec.models.triplet.distributed import fit_data_parallel


@dataclass(frozen=True)
class FloatRange:
    """A float drawn from ``[low, high]``, uniformly or (``log=True``) log-uniformly."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        _check_range(self.low, self.high, self.log)


@dataclass(frozen=True)
class IntRange:
    """An integer drawn from ``[low, high]`` (both included)."""

    low: int
    high: int
    log: bool = False

    def __post_init__(self) -> None:
        _check_range(self.low, self.high, self.log)


@dataclass(frozen=True)
class Categorical:
    """One of ``choices`` (numbers, strings, booleans or None)."""

    choices: tuple[Any, ...]

    def __post_init__(self) -> None:
        if len(self.choices) == 0:
            raise TripletrecError("a categorical search dimension needs at least one choice")


#: A search dimension; any other value in a search space is held fixed in every trial.
Dimension = FloatRange | IntRange | Categorical


def _check_range(low: float, high: float, log: bool) -> None:
    if not low <= high:
        raise TripletrecError(f"search range needs low <= high, got [{low}, {high}]")
    if log and low <= 0:
        raise TripletrecError(f"a log-scale search range needs low > 0, got {low}")


def default_search_space(model: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The search space :func:`tune` uses when none is given.

    ================== ============================= ===============================
    parameter          range                         models
    ================== ============================= ===============================
    learning_rate      log-uniform [1e-3, 5e-2]      all
    l2                 log-uniform [1e-6, 1e-3]      all
    epochs             integer [5, 30]               all
    batch_size         512, 1024, 2048 or 4096       all
    n_factors          32, 64 or 128                 bilinear
    ranking_bias_scale uniform [0.5, 1.0]            bilinear with item biases, fm
    ================== ============================= ===============================

    The loss, the negatives and every other parameter stay as the config's model has them:
    they change what is optimised rather than how well, so they are a choice, not a knob.

    Parameters
    ----------
    model : mapping, optional
        The config's model parameters; ``n_factors`` is searched only when its ``model``
        is ``"bilinear"`` (the default), ``ranking_bias_scale`` only when the model has
        item biases.

    Returns
    -------
    dict
        Parameter name -> :class:`FloatRange`, :class:`IntRange` or :class:`Categorical`.
    """
    space: dict[str, Any] = {
        "learning_rate": FloatRange(1e-3, 5e-2, log=True),
        "l2": FloatRange(1e-6, 1e-3, log=True),
        "epochs": IntRange(5, 30),
        "batch_size": Categorical((512, 1024, 2048, 4096)),
    }
    model = model or {}
    kind = model.get("model", "bilinear")
    if kind == "bilinear":
        space["n_factors"] = Categorical((32, 64, 128))
    if kind == "fm" or (kind == "bilinear" and model.get("item_bias", True)):
        space["ranking_bias_scale"] = FloatRange(0.5, 1.0)
    return space


@dataclass
class TuningResult:
    """What :func:`tune` found.

    Attributes
    ----------
    best_params : dict
        The parameters of the best trial that differ from trial to trial or were fixed by
        the search space (sampled and fixed values alike).
    best_value : float
        The best trial's validation score.
    trials : list of dict
        One entry per trial, in order: ``number``, ``state`` (``"COMPLETE"``, ``"FAIL"``),
        ``value``, ``params`` and ``seconds``.
    metric : str
        The canonical name of the metric maximised, e.g. ``"ndcg@10"``.
    best_config : RunConfig
        The input config with ``best_params`` (and the model seed used) merged into its
        model: ``tripletrec train --config`` on it trains the best trial's model again.
    n_fit, n_validation : int
        Positives fitted on and validated on in every trial.
    seconds : float
        Wall time of the whole search.
    """

    best_params: dict[str, Any]
    best_value: float
    trials: list[dict[str, Any]]
    metric: str = "ndcg@10"
    best_config: RunConfig = field(default_factory=RunConfig)
    n_fit: int = 0
    n_validation: int = 0
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """A JSON-ready log of the search: the best trial, then every trial."""
        return {
            "metric": self.metric,
            "best_value": self.best_value,
            "best_params": self.best_params,
            "n_trials": len(self.trials),
            "n_fit_positives": self.n_fit,
            "n_validation_positives": self.n_validation,
            "seconds": self.seconds,
            "trials": self.trials,
        }


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:
        raise TripletrecError(
            "tuning needs Optuna: pip install 'tripletrec[tune]' (or pip install optuna)"
        ) from exc
    return optuna


def _suggest(trial: Any, space: Mapping[str, Any]) -> dict[str, Any]:
    """One trial's parameters: a draw for each dimension, fixed values as given."""
    params: dict[str, Any] = {}
    for name, spec in space.items():
        if isinstance(spec, FloatRange):
            params[name] = trial.suggest_float(name, spec.low, spec.high, log=spec.log)
        elif isinstance(spec, IntRange):
            params[name] = trial.suggest_int(name, spec.low, spec.high, log=spec.log)
        elif isinstance(spec, Categorical):
            params[name] = trial.suggest_categorical(name, list(spec.choices))
        else:
            params[name] = spec
    return params


def _check_arguments(
    estimator: type[RecommenderBase],
    space: Mapping[str, Any],
    n_trials: int,
    timeout_seconds: float | None,
    metric: str,
) -> str:
    unknown = set(space) - set(estimator._param_names())
    if unknown:
        raise ParameterError(
            f"search space names unknown model parameter(s) {', '.join(sorted(unknown))}"
        )
    positive_int("n_trials", n_trials)
    if timeout_seconds is not None:
        finite_number("timeout_seconds", timeout_seconds, low=0.0, low_open=True)
    return metric_key(*parse_metric(metric))  # a ParameterError names a bad metric


def tune(
    config: RunConfig,
    *,
    n_trials: int = 20,
    timeout_seconds: float | None = None,
    metric: str = "ndcg@10",
    validation_fraction: float = 0.1,
    random_state: int | None = 0,
    search_space: Mapping[str, Any] | None = None,
    verbose: bool = False,
    progress: bool = False,
) -> TuningResult:
    """Search the model's hyper-parameters on a validation split of the training positives.

    The data are loaded and split as ``config`` says (:meth:`RunConfig.prepare`); a
    validation part is carved out of the training positives with
    :func:`~tripletrec.data.splits.validation_split`, and the test part is never looked at, so
    test metrics of the tuned model stay an honest estimate. Each trial fits
    ``TripletRecommender(**{**config.model, **sampled})`` on the rest of the training
    positives and scores it with :func:`~tripletrec.evaluation.protocols.evaluate` (validation rows
    ranked among every item except the fitted ones). The first trial is the config's own
    model (its values of the searched parameters, where they lie in the search space), so
    the best trial is never worse on validation than the starting point; Optuna's TPE
    sampler proposes the rest.

    Parameters
    ----------
    config : RunConfig
        Data, split and the starting model; parameters not in the search space stay as
        its model has them.
    n_trials : int, default 20
        At most this many trials.
    timeout_seconds : float, optional
        Start no new trial after this many seconds; a running trial is finished, so the
        search can overrun by one trial's time, and the first trial always runs. The
        search stops at whichever budget runs out first.
    metric : str, default "ndcg@10"
        Validation metric to maximise (any name :func:`~tripletrec.evaluation.protocols.evaluate`
        knows; every one of them is higher-is-better).
    validation_fraction : float, default 0.1
        Share of the training positives held out for validation, in (0, 1).
    random_state : int or None, default 0
        Seeds the validation carve and the sampler, and the model when ``config.model``
        names no ``random_state``: the same seed on the same data gives the same trials,
        so the same best parameters.
    search_space : mapping, optional
        Parameter name -> :class:`FloatRange`, :class:`IntRange`, :class:`Categorical`,
        or a plain value held fixed in every trial; default
        :func:`default_search_space` of the config's model.
    verbose : bool, default False
        Print one line per trial (value, best so far, parameters) to stderr.
    progress : bool, default False
        Show a progress bar over the trials (tqdm, on stderr), with the best value so far.

    Returns
    -------
    TuningResult

    Raises
    ------
    TripletrecError
        When Optuna is not installed, the metric is unknown, the budgets are not positive,
        the search space names an unknown parameter, or no trial completes.
    """
    estimator = config.estimator_class()
    config.build_model().require("tuning", "tune")
    space = default_search_space(config.model) if search_space is None else dict(search_space)
    metric_name = _check_arguments(estimator, space, n_trials, timeout_seconds, metric)
    optuna = _import_optuna()

    # Resolved as `tripletrec train` resolves it: a bundled dataset's positive rule filled in.
    config = RunConfig(
        config.data.resolved(), config.split, dict(config.model), config.training, config.estimator
    )
    data, train, _ = config.prepare()  # the test part is dropped here, unread
    fit_part, validation = validation_split(train, validation_fraction, random_state)
    features = config.data.side_features(data)
    base_model = dict(config.model)
    if base_model.get("random_state") is None:
        # A fixed model seed: otherwise trials differ by initialisation noise as well as by
        # their parameters, and the best trial could not be trained again.
        base_model["random_state"] = random_state
    base_model["verbose"] = False  # one line per trial is the progress report

    def objective(trial: Any) -> float:
        params = _suggest(trial, space)
        trial.set_user_attr("params", params)
        trial_config = RunConfig(
            config.data, config.split, {**base_model, **params}, config.training, config.estimator
        )
        model = trial_config.build_model()
        # Each trial trains as `tripletrec train --config` will train the best one.
        if config.training.sparse_gradients:
            fit_data_parallel(model, fit_part, sparse_gradients=True, **features)
        else:
            model.fit(fit_part, **features)
        return float(evaluate(model, fit_part, validation, [metric_name])[metric_name])

    bar = tqdm(total=n_trials, desc="tuning", unit="trial", disable=not progress)

    def report(study: Any, trial: Any) -> None:
        try:
            best = f"{study.best_value:.4f}"
        except ValueError:  # no trial has completed yet
            best = "-"
        bar.set_postfix_str(f"best {metric_name} {best}", refresh=False)
        bar.update()
        if not verbose:
            return
        value = "failed" if trial.value is None else f"{trial.value:.4f}"
        params = ", ".join(f"{k}={_short(v)}" for k, v in trial.user_attrs["params"].items())
        seconds = _seconds(trial)
        # tqdm.write: the line goes above the bar instead of through it.
        tqdm.write(
            f"trial {trial.number + 1}/{n_trials}  {metric_name} {value}  (best {best})  "
            f"{seconds:.1f} s  {params}",
            file=sys.stderr,
        )

    previous = optuna.logging.get_verbosity()
    # Optuna logs every trial at INFO; the report callback says the same thing, shorter.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.perf_counter()
    try:
        study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=random_state)
        )
        start_params = _starting_point(estimator, space, base_model)
        if start_params:
            # Trial 0 is the config's own model: the search never reports a setting worse
            # on validation than the one it started from (TPE's first ten are random).
            study.enqueue_trial(start_params)
        # The first trial runs whatever the time budget, so there is always a best config
        # to write; Optuna itself would start none when the budget is shorter than its
        # own start-up.
        study.optimize(objective, n_trials=1, callbacks=[report])
        left = None if timeout_seconds is None else timeout_seconds - (time.perf_counter() - start)
        if n_trials > 1 and (left is None or left > 0):
            study.optimize(objective, n_trials=n_trials - 1, timeout=left, callbacks=[report])
    finally:
        bar.close()
        optuna.logging.set_verbosity(previous)
    seconds = time.perf_counter() - start

    trials = [
        {
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "params": t.user_attrs.get("params", {}),
            "seconds": _seconds(t),
        }
        for t in study.trials
    ]
    completed = [t for t in study.trials if t.state.name == "COMPLETE"]
    if not completed:
        # Optuna marks a trial whose score is NaN as failed rather than raising.
        raise TripletrecError(f"no trial completed ({len(trials)} failed); see the trial log")
    best = study.best_trial
    best_params = dict(best.user_attrs["params"])
    best_config = RunConfig(
        config.data,
        config.split,
        {**config.model, "random_state": base_model["random_state"], **best_params},
        config.training,
        config.estimator,
    )
    return TuningResult(
        best_params=best_params,
        best_value=float(best.value),
        trials=trials,
        metric=metric_name,
        best_config=best_config,
        n_fit=len(fit_part),
        n_validation=len(validation),
        seconds=seconds,
    )


def _starting_point(
    estimator: type[RecommenderBase], space: Mapping[str, Any], model: Mapping[str, Any]
) -> dict[str, Any]:
    """The config model's value of each search dimension, where it lies in the dimension."""
    defaults = estimator().get_params()
    point: dict[str, Any] = {}
    for name, spec in space.items():
        value = model.get(name, defaults.get(name))
        if isinstance(spec, Categorical):
            if value in spec.choices:
                point[name] = value
        elif isinstance(spec, (FloatRange, IntRange)):
            if not is_number(value):
                continue
            if isinstance(spec, IntRange) and not float(value).is_integer():
                continue
            if spec.low <= value <= spec.high:
                point[name] = int(value) if isinstance(spec, IntRange) else float(value)
    return point


def _seconds(trial: Any) -> float:
    if trial.datetime_start is None or trial.datetime_complete is None:
        return 0.0
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def _short(value: Any) -> str:
    """A parameter value for a one-line report: floats to 3 significant digits."""
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return ",".join(str(v) for v in value)
    return str(value)
