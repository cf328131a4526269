"""One rule for progress output and ``--quiet`` across the long commands.

``train``, ``tune``, ``evaluate``, ``recommend --all``, ``index`` and ``data describe`` show
a progress bar (tqdm, on stderr) only when stderr is a terminal: a log file or a pipe gets
no carriage-return garbage. ``--quiet`` leaves only the results (stdout) and errors: no bar,
no per-trial lines, no notes. The library functions take a plain ``progress`` flag; the
commands decide it here.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

#: The ``--quiet`` help of every long command.
QUIET_HELP = "print only the results and errors: no progress bar, no notes"


def add_quiet_flag(parser: argparse.ArgumentParser, also: str = "") -> None:
    """``--quiet`` on ``parser``; ``also`` names more that it silences (``"no line per
    trial"``)."""
    help_text = QUIET_HELP + (f", {also}" if also else "")
    parser.add_argument("--quiet", action="store_true", help=help_text)


def is_quiet(args: argparse.Namespace) -> bool:
    """Whether the command was given ``--quiet``."""
    return bool(getattr(args, "quiet", False))


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is an open terminal."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_enabled(args: argparse.Namespace) -> bool:
    """Whether the command shows progress bars: not ``--quiet``, and stderr (where tqdm
    draws) is a terminal."""
    return not is_quiet(args) and is_terminal(sys.stderr)


def note(args: argparse.Namespace, message: str) -> None:
    """``tripletrec: note: message`` on stderr, unless ``--quiet``."""
    if not is_quiet(args):
        print(f"tripletrec: note: {message}", file=sys.stderr)
