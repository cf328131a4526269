"""The ``tripletrec`` command line: datasets -> train -> evaluate -> recommend -> serve.

Every error that tripletrec raises on bad input (a :class:`~tripletrec.exceptions.
TripletrecError`: missing file or column, NaN ids, unknown user, a diverging training, ...)
ends with one line ``tripletrec: error: ...`` on stderr and exit status 2. Anything else is
a bug, not bad input: one line ``tripletrec: internal error: ...`` and exit status 1, and
``--debug`` shows its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from tripletrec.exceptions import TripletrecError, first_line

__all__ = ["main"]


def _commands() -> dict[str, Callable[[argparse.Namespace], int]]:
    from tripletrec.cli import describing, querying, reporting, training

    return {
        "datasets": querying.cmd_datasets,
        "data": describing.cmd_data,
        "train": training.cmd_train,
        "tune": training.cmd_tune,
        "evaluate": querying.cmd_evaluate,
        "recommend": querying.cmd_recommend,
        "serve": querying.cmd_serve,
        "index": querying.cmd_index,
        "report": reporting.cmd_report,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tripletrec`` command; returns its exit status."""
    from tripletrec.cli.parser import build_parser, estimator_of

    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(estimator_of(argv)).parse_args(argv)
    try:
        return _commands()[args.command](args)
    except TripletrecError as exc:
        print(f"tripletrec: error: {first_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        # The environment, not tripletrec: a file that cannot be written, a full disk, a
        # port in use. The user can act on it, so it is an error line like bad input.
        print(f"tripletrec: error: {first_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tripletrec: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"tripletrec: internal error: {type(exc).__name__}: {first_line(exc)} "
            "(run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1
