"""Strategies and the one assertion shared by the property-based tests (``test_fuzz_*.py``).

Every fuzz test calls the library through :func:`result_or_error`: a call either returns,
or raises a :class:`~tripletrec.exceptions.TripletrecError` whose message is one non-empty
line. Any other exception escapes and fails the test with its traceback, which is the bug.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from hypothesis import event
from hypothesis import strategies as st

from tripletrec.exceptions import TripletrecError

T = TypeVar("T")


def assert_one_line(exc: BaseException) -> None:
    """``exc`` is a TripletrecError with a non-empty message of one line."""
    assert isinstance(exc, TripletrecError), f"{type(exc).__name__} is not a TripletrecError"
    message = str(exc)
    assert message.strip(), f"{type(exc).__name__} has an empty message"
    # splitlines: every line break Python knows (\x85, \u2028 ...), not only \n.
    assert len(message.splitlines()) == 1, (
        f"{type(exc).__name__} message is not one line: {message!r}"
    )


#: True one draw in ten. Its simplest value (the one hypothesis starts from and shrinks
#: to) is False, so that examples near the simplest one are the usual, valid kind.
rarely = st.sampled_from([False] * 9 + [True])


def mostly(valid: st.SearchStrategy[T], wrong: st.SearchStrategy[Any]) -> st.SearchStrategy:
    """``valid`` three draws in four, ``wrong`` otherwise: enough valid inputs that results
    get checked too. (``st.one_of`` drops repeated branches, so it cannot weight them.)"""
    return st.sampled_from([valid, valid, valid, wrong]).flatmap(lambda strategy: strategy)


def result_or_error(call: Callable[[], T]) -> T | TripletrecError:
    """``call()``'s result, or the TripletrecError it raised (checked by
    :func:`assert_one_line`); any other exception propagates."""
    try:
        result = call()
    except TripletrecError as exc:
        assert_one_line(exc)
        event(f"raised {type(exc).__name__}")  # --hypothesis-show-statistics lists these
        return exc
    event("returned")
    return result


# Ids as users write them, and as they should not: every scalar type a column can hold,
# values at and past the int64 limits, text with separators, quotes and newlines.
huge_ints = st.sampled_from([2**63, 2**63 - 1, -(2**63), -(2**63) - 1, 2**64, -(2**70), 10**30])
scalar_ids = st.one_of(
    st.integers(-3, 8),
    huge_ints,
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from(["", " ", "nan", "NaN", "None", "null", "0", "1", ",", '"', "\n", "é", "🎌"]),
    st.text(max_size=4),
    st.booleans(),
    st.none(),
)
odd_ids = st.one_of(
    st.binary(max_size=3),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.text(max_size=1), st.integers(0, 2), max_size=1),
    st.frozensets(st.integers(0, 2), max_size=2),
    st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2100, 1, 1)),
    st.just(np.nan),
    st.just(np.int64(3)),
    st.just(np.float32(1.5)),
    st.just(object()),
)
any_id = st.one_of(scalar_ids, scalar_ids, odd_ids)

#: Values for any argument: the right kind and every wrong one.
anything = st.recursive(
    st.one_of(any_id, st.just(np.array([0, 1])), st.just(np.array([[0, 1]]))),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.tuples(children),
        st.dictionaries(st.one_of(st.text(max_size=2), st.integers(0, 3)), children, max_size=2),
    ),
    max_leaves=6,
)

#: Things passed as ``k``: valid counts (mostly) and the rest.
any_k = mostly(
    st.one_of(st.integers(1, 12), st.just(np.int64(3)), st.just(2**63)),
    st.one_of(
        st.integers(-(2**70), 2**70),
        st.sampled_from([0, -1, 2**31, 10**30, True, False, 1.0, 2.5, np.inf, np.nan]),
        st.just(np.int8(-1)),
        st.sampled_from(["3", "", None, [3], (3,), {"k": 3}]),
    ),
)

#: Seeds: valid ones (mostly) and the values numpy's generators refuse.
any_seed = mostly(
    st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([None, np.int64(7), np.uint32(5)])),
    st.one_of(st.integers(-(2**70), 2**70), st.sampled_from([True, 1.5, "0", [1, 2], np.nan])),
)


def jsonable(max_leaves: int = 8) -> st.SearchStrategy[Any]:
    """Any JSON value (with NaN and huge numbers, which Python's json writes).

    Integers are small or far too large, never in between: a hyper-parameter such as
    ``n_factors`` set to a billion would make a loader allocate gigabytes before anything
    can tell it is wrong, while 2**31 and up fail the allocation at once.
    """
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**4), 10**4),
        st.sampled_from([2**31, 2**53 + 1, 2**63, 2**64, 2**70, -(2**63) - 1]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=6),
    )
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=3),
            st.dictionaries(st.text(max_size=4), children, max_size=3),
        ),
        max_leaves=max_leaves,
    )
