"""scikit-learn's hyper-parameter plumbing, shared by every estimator.

The constructor stores each hyper-parameter under its own name and does nothing else, so
``get_params`` reads them back, ``set_params`` writes them, and ``type(e)(**e.get_params())``
rebuilds an equal, unfitted estimator (what ``sklearn.base.clone`` relies on).
"""

from __future__ import annotations

import inspect
from typing import Any, TypeVar

_Estimator = TypeVar("_Estimator", bound="ParamsMixin")


class ParamsMixin:
    """``get_params`` / ``set_params`` / ``repr`` from the constructor's signature."""

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [p for p in signature.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's hyper-parameters, as passed."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self: _Estimator, **params: Any) -> _Estimator:
        """Set hyper-parameters; unknown names raise ``ValueError``."""
        valid = set(self._param_names())
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"{type(self).__name__} has no parameter {name!r}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"
