"""tripletrec._checks: each kind of bad argument gives one ParameterError with one message."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tripletrec._checks import (
    finite_number,
    fraction,
    is_number,
    non_negative_int,
    one_of,
    positive_int,
)
from tripletrec.exceptions import DataError, ParameterError, TripletrecError


def test_parameter_error_is_a_value_error_and_not_a_data_error():
    assert issubclass(ParameterError, ValueError)
    assert issubclass(ParameterError, TripletrecError)
    assert not issubclass(ParameterError, DataError)


def test_positive_int():
    assert positive_int("k", 3) == 3
    value = positive_int("k", np.int64(5))
    assert value == 5 and type(value) is int
    with pytest.raises(ParameterError, match=r"^k must be a positive integer, got 0$"):
        positive_int("k", 0)
    for bad in (-1, 2.0, True, "3", None, np.float64(1.0)):
        with pytest.raises(ParameterError, match="k must be a positive integer"):
            positive_int("k", bad)


def test_numpy_values_are_shown_plainly():
    with pytest.raises(ParameterError, match=r"got 0$"):
        positive_int("k", np.int64(0))


def test_non_negative_int():
    assert non_negative_int("n", 0) == 0
    with pytest.raises(ParameterError, match=r"^n must be a non-negative integer, got -1$"):
        non_negative_int("n", -1)
    with pytest.raises(ParameterError, match="non-negative integer, got False"):
        non_negative_int("n", False)


def test_finite_number_bounds():
    assert finite_number("x", 3) == 3.0 and type(finite_number("x", 3)) is float
    assert finite_number("x", 0.0, low=0.0) == 0.0
    with pytest.raises(ParameterError, match=r"^x must be > 0, got 0.0$"):
        finite_number("x", 0.0, low=0.0, low_open=True)
    with pytest.raises(ParameterError, match=r"^x must be <= 1, got 2.0$"):
        finite_number("x", 2.0, high=1.0)
    with pytest.raises(ParameterError, match=r"^x must be in \[0, 10\), got 10.0$"):
        finite_number("x", 10.0, low=0.0, high=10.0, high_open=True)
    assert finite_number("x", 9.5, low=0.0, high=10.0, high_open=True) == 9.5
    for bad in (math.nan, math.inf, -math.inf, True, "1", None):
        with pytest.raises(ParameterError, match="x must be a finite number"):
            finite_number("x", bad)


def test_fraction():
    assert fraction("p", 0) == 0.0 and fraction("p", 1) == 1.0
    with pytest.raises(ParameterError, match=r"^p must be in \(0, 1\), got 1.0$"):
        fraction("p", 1.0, low_open=True, high_open=True)
    with pytest.raises(ParameterError, match=r"^p must be in \(0, 1\], got 0.0$"):
        fraction("p", 0.0, low_open=True)
    with pytest.raises(ParameterError, match=r"^p must be in \[0, 1\], got -0.5$"):
        fraction("p", -0.5)


def test_one_of():
    assert one_of("mode", "a", ("a", "b")) == "a"
    with pytest.raises(ParameterError, match=r"^mode must be one of 'a', 'b', got 'c'$"):
        one_of("mode", "c", ("a", "b"))
    with pytest.raises(ParameterError, match="got \\[1\\]"):
        one_of("mode", [1], {"a", "b"})  # unhashable: rejected, not a TypeError


def test_is_number():
    assert is_number(1) and is_number(np.float32(0.5)) and is_number(np.int8(3))
    assert not is_number(True) and not is_number("1") and not is_number(None)
