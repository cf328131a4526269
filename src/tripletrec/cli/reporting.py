"""``tripletrec report RUN_DIR [RUN_DIR ...]``: the HTML report of a run, or runs side by
side (:mod:`tripletrec.report`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tripletrec.report import write_comparison_report, write_run_report

#: Where several runs side by side go without ``--out``.
COMPARISON_FILE = "comparison.html"


def cmd_report(args: argparse.Namespace) -> int:
    run_dirs = [Path(d) for d in args.run_dirs]
    if len(run_dirs) == 1:
        path = write_run_report(run_dirs[0], out=args.out)
    else:
        path = write_comparison_report(run_dirs, args.out or COMPARISON_FILE)
    print(f"wrote {path}")
    return 0
