"""The estimator registry: every concrete recommender class, by class name.

:class:`~tripletrec.models.base.RecommenderBase` registers each concrete subclass when the
class is created (``__init_subclass__``), so a model file can name its estimator and
:func:`tripletrec.persistence.load_model` finds the class, built-in or third-party, without
a hand-written list. A class is known once the module that defines it has been imported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_ESTIMATORS: dict[str, type] = {}

#: Hyper-parameters added after model files were first written, per estimator, with the
#: value that gives a file saved without them the behaviour it had when saved (the
#: constructor's default may have moved since).
PARAMS_ADDED_LATER: dict[str, dict[str, Any]] = {
    "TripletRecommender": {"ranking_bias_scale": 1.0, "feature_weight": 1.0, "user_history": False},
    "HybridRecommender": {"item_item_floor": None, "user_weight_exponent": 0.0},
    "EASERecommender": {"user_weight_exponent": 0.0},
    "GraphFilterRecommender": {"degree_exponent": None, "flatness": 1.0},
}


def _is_abstract(cls: type) -> bool:
    # ABCMeta computes __abstractmethods__ only after __init_subclass__ has run, so
    # inspect.isabstract would still see the parent's; apply ABCMeta's rule here instead.
    own = any(getattr(value, "__isabstractmethod__", False) for value in vars(cls).values())
    inherited = {
        name for base in cls.__bases__ for name in getattr(base, "__abstractmethods__", ())
    }
    return own or any(
        getattr(getattr(cls, name, None), "__isabstractmethod__", False) for name in inherited
    )


def _where(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register(cls: type) -> None:
    """Register ``cls`` under its class name; abstract classes are skipped.

    Raises
    ------
    TypeError
        If another class (from another module or scope) is registered under the same name:
        a model file could not say which of the two it holds.
    """
    if _is_abstract(cls):
        return
    known = _ESTIMATORS.get(cls.__name__)
    # The same definition created again (a module reloaded, a class defined in a function
    # that runs twice) replaces the old class object.
    if known is not None and known is not cls and _where(known) != _where(cls):
        raise TypeError(
            f"an estimator named {cls.__name__!r} is already registered ({_where(known)}); "
            f"rename {_where(cls)}: saved models name their estimator by class name"
        )
    _ESTIMATORS[cls.__name__] = cls


def lookup(name: str) -> Any:
    """The registered class called ``name``, or None."""
    return _ESTIMATORS.get(name)


def registered() -> dict[str, type]:
    """A copy of the registry: class name -> class."""
    return dict(_ESTIMATORS)


def short_name(cls: type) -> str:
    """The name the command line also accepts for ``cls``: its class name, lower case,
    without the ``Recommender`` suffix (``EASERecommender`` -> ``ease``)."""
    return cls.__name__.lower().removesuffix("recommender") or cls.__name__.lower()


def resolve(name: str) -> Any:
    """The registered class that ``name`` names, or None: its class name, or its
    :func:`short_name`, in any case (``TripletRecommender``, ``tripletrecommender``,
    ``triplet``)."""
    if name in _ESTIMATORS:
        return _ESTIMATORS[name]
    wanted = name.lower()
    for cls in _ESTIMATORS.values():
        if wanted in (cls.__name__.lower(), short_name(cls)):
            return cls
    return None


def saved_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The hyper-parameters of a saved estimator called ``name``: ``params``, plus the
    :data:`PARAMS_ADDED_LATER` it was saved without (a whole model or a composite's
    part)."""
    return {**PARAMS_ADDED_LATER.get(name, {}), **params}
