"""A long fuzzing run: the property-based tests with many more examples, new ones each run.

The test suite runs ``tests/test_fuzz_*.py`` with a small fixed set of examples (the
``ci`` profile in ``tests/conftest.py``: deterministic and quick). This script runs the same
tests with ``--examples`` examples per test, drawn afresh every run (the ``fuzz`` profile);
a failure prints the smallest input found and a ``@reproduce_failure`` blob to replay it.

    .venv/bin/python scripts/fuzz.py                      # 2,000 examples per test
    .venv/bin/python scripts/fuzz.py --examples 20000 -k readers
    .venv/bin/python scripts/fuzz.py --seed 1234          # replay a run's draws

Extra arguments go to pytest.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUZZ_TESTS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_fuzz_*.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=2000, help="examples per test")
    parser.add_argument("--seed", type=int, help="hypothesis seed (default: a new one)")
    args, pytest_args = parser.parse_known_args(argv)
    if args.examples < 1:
        parser.error("--examples must be at least 1")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *FUZZ_TESTS]
    command += ["--hypothesis-show-statistics"]
    if args.seed is not None:
        command.append(f"--hypothesis-seed={args.seed}")
    env = {**os.environ, "TRIPLETREC_FUZZ_EXAMPLES": str(args.examples)}
    return subprocess.call([*command, *pytest_args], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
