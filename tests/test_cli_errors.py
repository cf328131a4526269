"""How the command line fails: one line for bad input (exit 2), one line for a bug (exit 1,
``--debug`` for the traceback), a clear refusal for a second training into the same
directory, and output files that follow the umask."""

import os
import stat
import subprocess
import sys
import textwrap

import pytest

import tripletrec.cli.querying
import tripletrec.cli.training
from tripletrec.cli import main
from tripletrec.cli.outlock import lock_path, output_lock
from tripletrec.exceptions import TrainingDivergedError

TINY = ["--estimator", "triplet", "--user-col", "u", "--item-col", "i", "--epochs", "1",
        "--batch-size", "256",
        "--n-factors", "8", "--quiet"]  # fmt: skip


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _boom(*_args, **_kwargs):
    raise ValueError("an internal bug\nwith a second line")


def test_an_unexpected_error_is_one_line_exit_1(monkeypatch, capsys):
    # A ValueError that is not a TripletrecError is a bug, not bad input.
    monkeypatch.setattr(tripletrec.cli.querying, "list_datasets", _boom)
    assert main(["datasets"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert line == (
        "tripletrec: internal error: ValueError: an internal bug "
        "(run with --debug for the traceback)"
    )


@pytest.mark.parametrize("argv", [["--debug", "datasets"], ["datasets", "--debug"]])
def test_debug_shows_the_traceback(monkeypatch, argv):
    monkeypatch.setattr(tripletrec.cli.querying, "list_datasets", _boom)
    with pytest.raises(ValueError, match="an internal bug"):
        main(argv)


def test_debug_does_not_change_how_bad_input_is_reported(tmp_path, capsys):
    assert main(["--debug", "recommend", str(tmp_path / "nope"), "--user", "1"]) == 2
    assert _one_line(capsys.readouterr().err).startswith("tripletrec: error: ")


def test_a_diverging_training_is_one_line_exit_2(monkeypatch, small_csv, capsys):
    def diverge(self, *_args, **_kwargs):
        raise TrainingDivergedError("the training loss became nan at epoch 1; lower the rate")

    monkeypatch.setattr(tripletrec.TripletRecommender, "fit", diverge)
    assert main(["train", str(small_csv), *TINY]) == 2
    assert "became nan" in _one_line(capsys.readouterr().err)


def test_a_real_diverging_training_is_one_line_exit_2(small_csv, capsys):
    # Adam's steps are about the learning rate whatever the gradient, and max-norm bounds
    # the embeddings: a rate this large with no bound overflows float32 in the first epoch.
    argv = ["train", str(small_csv), *TINY, "--learning-rate", "1e30", "--max-norm", "none"]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert _one_line(err).startswith("tripletrec: error: training diverged")


def _save_first_model(small_csv, out):
    assert main(["train", str(small_csv), *TINY, "--out", str(out)]) == 0
    return {p.name: p.read_bytes() for p in out.iterdir()}


def test_a_second_training_into_a_locked_directory_fails_and_leaves_the_first(
    small_csv, tmp_path, capsys
):
    out = tmp_path / "run"
    before = _save_first_model(small_csv, out)
    assert not lock_path(out).exists()  # released (and removed) after the first training
    with output_lock(out):
        assert main(["train", str(small_csv), *TINY, "--out", str(out)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert str(out) in line and "another training" in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert main(["train", str(small_csv), *TINY, "--out", str(out)]) == 0  # free again


def test_the_lock_of_a_killed_process_is_released(small_csv, tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from tripletrec.cli.outlock import output_lock
            with output_lock({str(out)!r}):
                print("locked", flush=True)
                time.sleep(120)
        """)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["train", str(small_csv), *TINY, "--out", str(out)]) == 2
        assert "another training" in _one_line(capsys.readouterr().err)
        assert not out.exists()
    finally:
        holder.kill()  # SIGKILL: no clean-up code runs, the kernel drops the lock
        holder.wait()
    assert lock_path(out).exists()  # left behind by the killed holder...
    assert main(["train", str(small_csv), *TINY, "--out", str(out)]) == 0  # ...but not held
    assert not lock_path(out).exists()


@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def _modes(root):
    return {
        str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]
    }


def test_output_files_follow_the_umask(small_csv, tmp_path, umask_027, capsys):
    pytest.importorskip("faiss")
    out = tmp_path / "run"
    assert main(["train", str(small_csv), *TINY, "--out", str(out)]) == 0
    assert main(["evaluate", str(out), "--metrics", "auc", "--json", str(tmp_path / "e.json")]) == 0
    assert main(["index", str(out), "--n-lists", "2"]) == 0
    best = tmp_path / "best.json"
    assert main(["tune", str(small_csv), *TINY, "--trials", "1", "--out", str(best)]) == 0
    recs = tmp_path / "recs.parquet"
    assert main(["recommend", str(out), "--all", "--out", str(recs), "-k", "3", "--quiet"]) == 0
    capsys.readouterr()
    modes = _modes(out)
    assert "learning_curve.png" in modes and "ann-index" in modes
    for name, mode in modes.items():
        expected = 0o750 if (out / name).is_dir() else 0o640
        assert mode == expected, (name, oct(mode))
    for path in (tmp_path / "e.json", best, tmp_path / "tuning.json", recs):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
