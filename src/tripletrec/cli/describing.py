"""``tripletrec data describe``: the data exploration of :func:`tripletrec.describe`."""

from __future__ import annotations

import argparse

from tqdm.auto import tqdm

from tripletrec.cli.progress import note, progress_enabled
from tripletrec.cli.training import data_flags
from tripletrec.config import DataSpec
from tripletrec.data.summary import describe


def cmd_data(args: argparse.Namespace) -> int:
    """``tripletrec data ACTION``; ``describe`` is the only action so far."""
    return cmd_describe(args)


def data_spec(args: argparse.Namespace) -> DataSpec:
    """The data the flags name, read as ``tripletrec train`` reads it, with a bundled
    dataset's positive rule filled in."""
    source = {} if args.data is None else {"source": args.data}
    return DataSpec(**source, **data_flags(args)).resolved()


def cmd_describe(args: argparse.Namespace) -> int:
    spec = data_spec(args)
    steps = 3 if args.out else 2
    with tqdm(total=steps, desc="describe", unit="step", disable=not progress_enabled(args)) as bar:
        bar.set_postfix_str("loading")
        data = spec.load()
        bar.update()
        bar.set_postfix_str("summarising")
        summary = describe(data, threshold=spec.threshold, inclusive=bool(spec.inclusive))
        bar.update()
        written = []
        if args.out:
            bar.set_postfix_str("writing")
            written = summary.save(args.out)
            bar.update()
    print(f"data: {spec.source}")
    print(summary.to_text())
    if args.out:
        print(f"wrote {', '.join(path.name for path in written)} to {args.out}")
        if len(written) == 1:
            note(args, "matplotlib is not installed, so no PNGs (pip install tripletrec[plot])")
    return 0
