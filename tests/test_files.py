"""tripletrec._files: atomic writes give files the umask's mode and leave nothing behind."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from tripletrec._files import (
    atomic_path,
    directory_mode,
    file_mode,
    json_lists_to_tuples,
    read_json_object,
    replace_directory,
    staging_directory,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)
from tripletrec.exceptions import DataError


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    """Run the test under this umask (restored afterwards)."""
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_modes_follow_the_umask(umask):
    assert file_mode() == 0o666 & ~umask
    assert directory_mode() == 0o777 & ~umask
    assert os.umask(umask) == umask  # reading the umask left it as it was


@pytest.mark.parametrize(
    "write",
    [
        lambda path: write_text_atomic(path, "text\n"),
        lambda path: write_bytes_atomic(path, b"\x00\x01"),
        lambda path: write_json_atomic(path, {"a": 1}),
    ],
)
def test_writes_get_the_mode_open_would_give(tmp_path, umask, write):
    # mkstemp creates 0600 files; the written file must not stay owner-only.
    target = tmp_path / "sub" / "out.txt"  # the parent is created
    write(target)
    assert _mode(target) == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_atomic_path_replaces_the_file_on_success(tmp_path):
    target = tmp_path / "out.bin"
    target.write_text("old")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_text("new")
        assert target.read_text() == "old"  # not visible before the block ends
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_an_error_leaves_no_temporary_file_and_the_old_file_intact(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="writer failed"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_json_failure_leaves_nothing(tmp_path):
    with pytest.raises(TypeError, match="cannot write object as JSON"):
        write_json_atomic(tmp_path / "x.json", {"bad": object()})
    assert list(tmp_path.iterdir()) == []


def test_json_default_writes_numpy_tuples_sets_and_paths(tmp_path):
    payload = {
        "scalar": np.float32(0.5),
        "integer": np.int64(3),
        "array": np.arange(3),
        "tuple": (1, 2),
        "set": {4},
        "path": Path("a/b"),
    }
    write_json_atomic(tmp_path / "x.json", payload)
    text = (tmp_path / "x.json").read_text()
    assert text.endswith("}\n")
    assert json.loads(text) == {
        "scalar": 0.5,
        "integer": 3,
        "array": [0, 1, 2],
        "tuple": [1, 2],
        "set": [4],
        "path": "a/b",
    }


def test_read_json_object(tmp_path):
    good = tmp_path / "good.json"
    good.write_text('{"a": [1]}')
    assert read_json_object(good, DataError) == {"a": [1]}
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{oops")
    with pytest.raises(DataError, match="corrupt JSON"):
        read_json_object(corrupt, DataError)
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(DataError, match="expected a JSON object"):
        read_json_object(listed, DataError)


def test_replace_directory_swaps_and_cleans_up(tmp_path, umask):
    target = tmp_path / "model"
    for content in ("first", "second"):
        staging = staging_directory(target)
        assert _mode(staging) == 0o777 & ~umask  # mkdtemp alone would give 0700
        (staging / "file.txt").write_text(content)
        replace_directory(staging, target)
        assert (target / "file.txt").read_text() == content
        assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_json_lists_to_tuples():
    assert json_lists_to_tuples({"a": [1, 2], "b": 3, "c": "x"}) == {"a": (1, 2), "b": 3, "c": "x"}


# ---------------------------------------------------------------------- the writers that use it
def test_parquet_export_follows_the_umask(tmp_path):
    # write_all_recommendations once kept mkstemp's 0600: recs were readable by the owner only.
    import pandas as pd
    import scipy.sparse as sp

    from tripletrec.models.baselines import PopularityRecommender
    from tripletrec.serving.export import write_all_recommendations

    matrix = sp.random(40, 15, density=0.3, format="csr", random_state=0, dtype=np.float32)
    model = PopularityRecommender().fit(matrix)
    previous = os.umask(0o022)
    try:
        stats = write_all_recommendations(model, tmp_path / "recs.parquet", k=3, progress=False)
    finally:
        os.umask(previous)
    assert _mode(tmp_path / "recs.parquet") == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["recs.parquet"]
    table = pd.read_parquet(tmp_path / "recs.parquet")
    assert len(table) == stats["n_rows"] and set(table["rank"]) <= {1, 2, 3}


def test_a_failed_export_leaves_no_file(tmp_path):
    import scipy.sparse as sp

    from tripletrec.exceptions import ParameterError
    from tripletrec.models.baselines import PopularityRecommender
    from tripletrec.serving.export import write_all_recommendations

    model = PopularityRecommender().fit(sp.eye(5, format="csr", dtype=np.float32))

    def broken(*args, **kwargs):
        raise RuntimeError("scoring failed")

    model.recommend = broken
    with pytest.raises(RuntimeError, match="scoring failed"):
        write_all_recommendations(model, tmp_path / "recs.parquet", progress=False)
    with pytest.raises(ParameterError, match="chunk_users must be a positive integer"):
        write_all_recommendations(model, tmp_path / "recs.parquet", chunk_users=0)
    assert list(tmp_path.iterdir()) == []


def test_synthetic_parquet_follows_the_umask(tmp_path, umask):
    from tripletrec.data.synthetic import write_synthetic_parquet

    write_synthetic_parquet(tmp_path / "s.parquet", 20, 10, 60, random_state=0)
    assert _mode(tmp_path / "s.parquet") == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["s.parquet"]


def test_figures_follow_the_umask(tmp_path, umask):
    pytest.importorskip("matplotlib")
    from tripletrec.plots import plot_learning_curve

    history = [{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.5}]
    path = plot_learning_curve(history, tmp_path / "curve.png")
    assert path == tmp_path / "curve.png"
    assert path.read_bytes().startswith(b"\x89PNG")
    assert _mode(path) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["curve.png"]


def test_the_ann_index_folder_follows_the_umask(tmp_path, umask):
    pytest.importorskip("faiss")
    from tripletrec.serving.retrieval import INDEX_DIR, ANNIndex, IndexSettings

    items = np.random.default_rng(0).standard_normal((200, 8)).astype(np.float32)
    index = ANNIndex.build(items, IndexSettings(n_lists=2, train_size=200))
    for _ in range(2):  # the second save replaces the first
        folder = index.save(tmp_path, "sha")
    assert folder == tmp_path / INDEX_DIR
    assert _mode(folder) == 0o777 & ~umask  # not mkdtemp's 0700
    assert sorted(p.name for p in tmp_path.iterdir()) == [INDEX_DIR]
    assert ANNIndex.load(tmp_path, items, "sha").max_norm == index.max_norm


def test_atomic_path_with_a_fixed_mode(tmp_path, umask):
    # Packaged data (scripts/build_bundled_data.py) is 0644 whatever the umask.
    with atomic_path(tmp_path / "data.bin", mode=0o644) as tmp:
        tmp.write_bytes(b"x")
    assert _mode(tmp_path / "data.bin") == 0o644
