"""Progress bars and --quiet on every long command: a bar on a terminal only, and --quiet
leaves the results alone."""

import argparse
import io
import sys

import numpy as np
import pandas as pd
import pytest

import tripletrec.evaluation.protocols as protocols
from tripletrec import plots
from tripletrec.cli import main
from tripletrec.cli.progress import progress_enabled
from tripletrec.data.interactions import Interactions
from tripletrec.models.baselines import PopularityRecommender

TINY = ["--estimator", "triplet", "--user-col", "u", "--item-col", "i", "--epochs", "2",
        "--batch-size", "256",
        "--n-factors", "8", "--validation-fraction", "0"]  # fmt: skip
#: What tqdm draws and plain output never has: the redraw and the bar's frame.
BAR_MARKS = ("\r", "%|", "it/s", "s/epoch", "epoch/s")


class Terminal(io.StringIO):
    """A captured stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def as_terminal(monkeypatch) -> Terminal:
    """stderr replaced by a stream that claims to be a terminal; read it with getvalue().
    Called in the test body: capsys swaps in its own stderr after the fixtures are set up."""
    stream = Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    return stream


@pytest.fixture
def trained(small_csv, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(small_csv), *TINY, "--quiet", "--out", str(out)]) == 0
    capsys.readouterr()
    return out


def _has_bar(text: str) -> bool:
    return any(mark in text for mark in BAR_MARKS)


def test_progress_needs_a_terminal_and_no_quiet(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not progress_enabled(argparse.Namespace(quiet=False))
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert progress_enabled(argparse.Namespace(quiet=False))
    assert progress_enabled(argparse.Namespace())  # a command without --quiet
    assert not progress_enabled(argparse.Namespace(quiet=True))
    closed = io.StringIO()
    closed.close()  # isatty() of a closed stream raises ValueError
    monkeypatch.setattr(sys, "stderr", closed)
    assert not progress_enabled(argparse.Namespace(quiet=False))
    monkeypatch.setattr(sys, "stderr", None)  # pythonw: no stderr at all
    assert not progress_enabled(argparse.Namespace(quiet=False))


def test_train_draws_a_bar_on_a_terminal_only(small_csv, capsys, monkeypatch):
    terminal = as_terminal(monkeypatch)
    assert main(["train", str(small_csv), *TINY]) == 0
    assert "training" in terminal.getvalue() and _has_bar(terminal.getvalue())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stderr", io.StringIO())  # captured: not a terminal
        assert main(["train", str(small_csv), *TINY]) == 0
        assert not _has_bar(sys.stderr.getvalue())
    assert "test AUC" in capsys.readouterr().out


def test_quiet_train_prints_only_the_results(small_csv, capsys, monkeypatch, tmp_path):
    terminal = as_terminal(monkeypatch)
    out = tmp_path / "run"
    assert main(["train", str(small_csv), *TINY, "--quiet", "--out", str(out)]) == 0
    assert terminal.getvalue() == ""
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(f"{small_csv}: test AUC")
    assert lines[-1] == f"saved model to {out}"
    assert all(line.startswith("  ") for line in lines[1:-1])  # one line per metric


def test_quiet_silences_notes_too(small_csv, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(plots, "pyplot", lambda: None)  # as if matplotlib were missing
    assert main(["train", str(small_csv), *TINY, "--out", str(tmp_path / "a")]) == 0
    assert capsys.readouterr().err.startswith("tripletrec: note: matplotlib is not installed")
    assert main(["train", str(small_csv), *TINY, "--quiet", "--out", str(tmp_path / "b")]) == 0
    assert capsys.readouterr().err == ""


def test_data_describe_bar_and_quiet(capsys, monkeypatch, tmp_path):
    terminal = as_terminal(monkeypatch)
    path = tmp_path / "tiny.csv"
    pd.DataFrame({"user_id": [1, 1, 2], "item_id": [1, 2, 1]}).to_csv(path, index=False)
    assert main(["data", "describe", str(path)]) == 0
    assert "describe" in terminal.getvalue() and _has_bar(terminal.getvalue())
    shown = capsys.readouterr().out
    terminal.seek(0)
    terminal.truncate()
    assert main(["data", "describe", str(path), "--quiet"]) == 0
    assert terminal.getvalue() == ""
    assert capsys.readouterr().out == shown  # the table is the result: --quiet keeps it


def test_recommend_all_bar_and_quiet(trained, capsys, monkeypatch, tmp_path):
    pytest.importorskip("pyarrow")
    terminal = as_terminal(monkeypatch)
    recs = tmp_path / "recs.parquet"
    assert main(["recommend", str(trained), "--all", "--out", str(recs), "-k", "3"]) == 0
    assert _has_bar(terminal.getvalue())
    terminal.seek(0)
    terminal.truncate()
    assert main(["recommend", str(trained), "--all", "--out", str(recs), "-k", "3",
                 "--quiet"]) == 0  # fmt: skip
    assert terminal.getvalue() == ""
    assert capsys.readouterr().out.count("wrote top 3") == 2


def test_evaluate_quiet_and_bar_over_blocks_of_users(trained, capsys, monkeypatch):
    terminal = as_terminal(monkeypatch)
    assert main(["evaluate", str(trained), "--quiet"]) == 0
    assert terminal.getvalue() == ""
    out = capsys.readouterr().out
    assert "users evaluated" in out and "auc" in out
    # A bar only where the users take more than one block.
    monkeypatch.setattr(protocols, "EVAL_CHUNK_USERS", 8)
    assert main(["evaluate", str(trained)]) == 0
    assert "evaluating" in terminal.getvalue() and _has_bar(terminal.getvalue())
    assert capsys.readouterr().out == out


def test_library_evaluate_shows_no_bar_unless_asked(capsys, monkeypatch):
    frame = pd.DataFrame({"user_id": np.arange(20) % 10, "item_id": np.arange(20) % 7})
    data = Interactions.from_dataframe(frame)
    model = PopularityRecommender().fit(data)
    monkeypatch.setattr(protocols, "EVAL_CHUNK_USERS", 3)
    protocols.evaluate(model, None, data, ["auc"])
    assert capsys.readouterr().err == ""
    protocols.evaluate(model, None, data, ["auc"], progress=True)
    assert "evaluating" in capsys.readouterr().err


def test_index_bar_and_quiet(trained, capsys, monkeypatch):
    pytest.importorskip("faiss")
    terminal = as_terminal(monkeypatch)
    assert main(["index", str(trained), "--n-lists", "2"]) == 0
    assert "index" in terminal.getvalue() and _has_bar(terminal.getvalue())
    terminal.seek(0)
    terminal.truncate()
    assert main(["index", str(trained), "--n-lists", "2", "--quiet"]) == 0
    assert terminal.getvalue() == ""
    assert capsys.readouterr().out.count("indexed") == 2


def test_tune_bar_on_a_terminal_trial_lines_in_a_log_and_quiet(small_csv, capsys, tmp_path,
                                                               monkeypatch):  # fmt: skip
    pytest.importorskip("optuna")
    terminal = as_terminal(monkeypatch)
    best = tmp_path / "best.json"
    argv = ["tune", str(small_csv), *TINY[:-2], "--trials", "2", "--out", str(best)]
    assert main(argv) == 0
    assert "tuning" in terminal.getvalue() and _has_bar(terminal.getvalue())
    assert "trial 1/2" in terminal.getvalue()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stderr", io.StringIO())
        assert main(argv) == 0
        log = sys.stderr.getvalue()
        assert "trial 1/2" in log and "trial 2/2" in log and not _has_bar(log)
        assert main([*argv, "--quiet"]) == 0
        assert sys.stderr.getvalue() == log  # nothing added
    assert capsys.readouterr().out.count("best validation") == 3
