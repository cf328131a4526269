"""Argument checks: one rule and one message per kind of value, and one exception type.

Every function takes the argument's ``name`` first, returns the value converted to a plain
Python type, and raises :class:`~tripletrec.exceptions.ParameterError` (a ``ValueError``
and a ``TripletrecError``) with a one-line message such as
``"k must be a positive integer, got 0"``. Bad *data* (a malformed file, a missing column)
raises :class:`~tripletrec.exceptions.DataError` instead, from the data modules.

Booleans are rejected where a number is expected: ``True`` is an ``int`` to Python, but a
flag passed as ``k`` or ``n_trials`` is a mistake, not a request for 1.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import numpy as np

from tripletrec.exceptions import ParameterError


def is_integer(value: Any) -> bool:
    """Whether ``value`` is a Python or numpy integer (and not a bool)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value: Any) -> bool:
    """Whether ``value`` is a real number: an integer or a float, Python or numpy, not a bool."""
    return is_integer(value) or isinstance(value, (float, np.floating))


def _shown(value: Any) -> str:
    # numpy 2 writes np.int64(0) for repr(); the message should say 0.
    return repr(value.item() if isinstance(value, np.generic) else value)


def printable(text: object) -> str:
    """``str(text)`` when it is one line of printable characters, else its ``repr``: how
    paths, column names and other text of the caller's appear inside a one-line message
    (a file name may hold a newline)."""
    shown = str(text)
    return shown if shown.isprintable() else repr(shown)


def positive_int(name: str, value: Any) -> int:
    """``value`` as an ``int``; it must be an integer >= 1."""
    if not is_integer(value) or value < 1:
        raise ParameterError(f"{name} must be a positive integer, got {_shown(value)}")
    return int(value)


def non_negative_int(name: str, value: Any) -> int:
    """``value`` as an ``int``; it must be an integer >= 0."""
    if not is_integer(value) or value < 0:
        raise ParameterError(f"{name} must be a non-negative integer, got {_shown(value)}")
    return int(value)


def random_seed(name: str, value: Any) -> int | None:
    """``value`` as an ``int``, or None; it must be an integer in [0, 2**32 - 1], the seeds
    ``numpy.random.RandomState`` accepts (None: a fresh, unseeded draw)."""
    if value is None:
        return None
    if not is_integer(value) or not 0 <= value < 2**32:
        raise ParameterError(
            f"{name} must be None or an integer in [0, 2**32 - 1], got {_shown(value)}"
        )
    return int(value)


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    return f"{'<' if high_open else '<='} {high:g}"


def finite_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a ``float``; it must be a finite number within the given bounds.

    Parameters
    ----------
    name : str
        The argument's name, for the message.
    value : object
        The value to check.
    low, high : float, optional
        Bounds; None leaves that side unbounded.
    low_open, high_open : bool, default False
        Whether the bound itself is excluded (``low_open=True``: ``value > low``).
    """
    if not is_number(value) or not math.isfinite(value):
        raise ParameterError(f"{name} must be a finite number, got {_shown(value)}")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        interval = _interval(low, high, low_open, high_open)
        word = "in " if low is not None and high is not None else ""
        raise ParameterError(f"{name} must be {word}{interval}, got {_shown(value)}")
    return value


def fraction(name: str, value: Any, *, low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a ``float`` in [0, 1]; ``low_open``/``high_open`` exclude 0 or 1."""
    return finite_number(name, value, low=0.0, high=1.0, low_open=low_open, high_open=high_open)


def one_of(name: str, value: Any, choices: Collection[Any]) -> Any:
    """``value`` itself; it must be one of ``choices``."""
    try:
        known = bool(value in choices)
    except (TypeError, ValueError):  # unhashable (in a set), or an array (== gives an array)
        known = False
    if not known:
        listed = ", ".join(repr(choice) for choice in choices)
        raise ParameterError(f"{name} must be one of {listed}, got {_shown(value)}")
    return value
