"""Errors raised on bad input.

Every error that a user can cause derives from :class:`TripletrecError`, so the command line
(and any caller) can turn it into a one-line message instead of a traceback.
"""

from __future__ import annotations


class TripletrecError(Exception):
    """Base class of every error tripletrec raises on bad input."""


class DataError(TripletrecError, ValueError):
    """The interaction data or a data file is missing, malformed or unusable."""


class UnknownIdError(TripletrecError, KeyError):
    """A user or item id that the data or the fitted model does not know."""

    def __str__(self) -> str:
        # KeyError would print the message with quotes around it.
        return str(self.args[0]) if self.args else ""


class NotFittedError(TripletrecError, AttributeError):
    """A method that needs a fitted model was called before ``fit``."""


class ModelFileError(TripletrecError, OSError):
    """A saved model directory is missing, corrupt, truncated or of an unknown format."""


class ParameterError(TripletrecError, ValueError):
    """A hyper-parameter or argument has a value outside what it accepts."""


class TrainingDivergedError(TripletrecError, FloatingPointError):
    """Training produced a non-finite loss (usually: the learning rate is too high)."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none): what
    a one-line error report quotes of an error from a library underneath."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
