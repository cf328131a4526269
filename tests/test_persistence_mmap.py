"""Memory-mapped loading (issue 24): the safetensors header is checked strictly, the large
arrays of a loaded model are read-only views of one map of the file, a save that replaces
the directory leaves a mapped model working, and ``GET /health`` reports the memory."""

from __future__ import annotations

import json
import mmap
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

import tripletrec as tr
from tripletrec._files import sha256_of_file
from tripletrec._safetensors_mmap import map_safetensors
from tripletrec._system import memory_usage
from tripletrec.exceptions import ModelFileError
from tripletrec.persistence import MODEL_FILE, WEIGHTS_FILE, load_model
from tripletrec.testing import block_data


def _file(path: Path, header: object, data: bytes = b"", *, raw: bytes | None = None) -> Path:
    """A safetensors file with this header (a JSON value, or ``raw`` bytes) and data."""
    text = raw if raw is not None else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


def _one_line_error(path: Path) -> str:
    with pytest.raises(ModelFileError) as refused:
        map_safetensors(path)
    message = str(refused.value)
    assert "\n" not in message and message.startswith(str(path)), message
    return message


def _base_buffer(array: np.ndarray) -> object:
    """The object at the end of ``array``'s chain of bases (the memory it views)."""
    base = array
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    return base.obj if isinstance(base, memoryview) else base


F32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


def test_a_well_formed_file_maps_as_read_only_views(tmp_path):
    arrays = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3),
        "b": np.array([1, -2], dtype=np.int64),
        "empty": np.zeros((0, 4), np.float64),
        "flags": np.array([True, False]),
    }
    save_file(arrays, str(tmp_path / "w.safetensors"), metadata={"note": "x"})
    mapped = map_safetensors(tmp_path / "w.safetensors")
    assert set(mapped) == set(arrays)
    for name, array in arrays.items():
        assert mapped[name].dtype == array.dtype and mapped[name].shape == array.shape
        np.testing.assert_array_equal(mapped[name], array)
        assert not mapped[name].flags.writeable
    assert isinstance(_base_buffer(mapped["a"]), mmap.mmap)
    with pytest.raises(ValueError, match="read-only"):
        mapped["a"][0, 0] = 1.0


@pytest.mark.parametrize(
    ("header", "data", "expected"),
    [
        ({"a": {**F32, "data_offsets": [0, 12]}}, bytes(8), "past the end"),
        ({"a": {**F32, "data_offsets": [4, 12]}}, bytes(8), "past the end"),
        ({"a": {**F32, "shape": [3]}}, bytes(8), "needs 12 bytes"),
        ({"a": {**F32, "dtype": "BF16"}}, bytes(8), "unsupported dtype"),
        ({"a": {**F32, "dtype": 4}}, bytes(8), "unsupported dtype"),
        ({"a": {**F32, "shape": [-2]}}, bytes(8), "not a list of counts"),
        ({"a": {**F32, "shape": [True, 2]}}, bytes(8), "not a list of counts"),
        ({"a": {**F32, "data_offsets": [8, 0]}}, bytes(8), "are not [begin, end]"),
        ({"a": {**F32, "data_offsets": [0]}}, bytes(8), "are not [begin, end]"),
        ({"a": {"dtype": "F32", "shape": [2]}}, bytes(8), "entry must have exactly"),
        ({"a": [1, 2]}, bytes(8), "entry must have exactly"),
        ({"a": F32, "b": F32}, bytes(8), "overlaps"),
        ({"a": {**F32, "data_offsets": [4, 12]}}, bytes(12), "leaves a gap"),
        ({"a": F32}, bytes(12), "trailing bytes"),
        ({"a": F32, "__metadata__": {"n": 1}}, bytes(8), "object of strings"),
        ([1, 2], b"", "not a JSON object"),
    ],
)
def test_an_inconsistent_header_is_one_model_file_error_line(tmp_path, header, data, expected):
    path = _file(tmp_path / "bad.safetensors", header, data)
    assert expected in _one_line_error(path)


def test_truncated_or_garbled_files_are_refused(tmp_path):
    (tmp_path / "a").write_bytes(b"")
    assert "shorter than the 8-byte" in _one_line_error(tmp_path / "a")
    assert "not JSON" in _one_line_error(_file(tmp_path / "empty-header", None, raw=b""))
    (tmp_path / "b").write_bytes(b"\x01\x02")
    assert "shorter than the 8-byte" in _one_line_error(tmp_path / "b")
    (tmp_path / "c").write_bytes(struct.pack("<Q", 1000) + b"{}")
    assert "header length 1000 does not fit" in _one_line_error(tmp_path / "c")
    (tmp_path / "d").write_bytes(struct.pack("<Q", 2**63) + b"{}")
    assert "does not fit" in _one_line_error(tmp_path / "d")
    assert "not JSON" in _one_line_error(_file(tmp_path / "e", None, raw=b"{nope"))
    assert "not JSON" in _one_line_error(_file(tmp_path / "f", None, raw=b"\xff\xfe"))
    # A good file cut short: its last tensor now ends past the file's end.
    save_file({"a": np.ones(8, np.float32)}, str(tmp_path / "g"))
    (tmp_path / "g").write_bytes((tmp_path / "g").read_bytes()[:-4])
    assert "past the end" in _one_line_error(tmp_path / "g")
    assert "cannot read" in _one_line_error(tmp_path / "missing")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """An EASE model and a graph filter fitted on the block data, saved."""
    data = block_data().interactions
    root = tmp_path_factory.mktemp("mmap")
    ease = tr.EASERecommender(l2=10.0).fit(data)
    graph = tr.GraphFilterRecommender(n_components=4, random_state=0).fit(data)
    return {"ease": (ease, ease.save(root / "ease")), "graph": (graph, graph.save(root / "graph"))}


def test_load_refuses_a_truncated_file_and_a_header_past_the_end(saved, tmp_path):
    _, path = saved["ease"]
    truncated = Path(shutil.copytree(path, tmp_path / "truncated"))
    weights = truncated / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-7])
    for mapped in (True, False):
        with pytest.raises(ModelFileError, match="checksum mismatch") as refused:
            load_model(truncated, mmap=mapped)
        assert "\n" not in str(refused.value)
    # A header that points past the end, with a checksum that matches it: the header
    # check, not the checksum, must refuse it.
    past = Path(shutil.copytree(path, tmp_path / "past"))
    _file(past / WEIGHTS_FILE, {"weights": {**F32, "data_offsets": [0, 4096]}}, bytes(8))
    manifest = json.loads((past / MODEL_FILE).read_text())
    manifest["weights_sha256"] = sha256_of_file(past / WEIGHTS_FILE)
    (past / MODEL_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="past the end") as refused:
        load_model(past)
    assert "\n" not in str(refused.value) and str(past / WEIGHTS_FILE) in str(refused.value)


def test_the_large_arrays_of_a_loaded_model_are_read_only_views_of_the_map(saved):
    ease = load_model(saved["ease"][1])
    graph = load_model(saved["graph"][1])
    for array in (ease.weights_, graph.components_, graph.normalized_.data):
        assert not array.flags.writeable
        assert isinstance(_base_buffer(array), mmap.mmap)
    copied = load_model(saved["ease"][1], mmap=False)
    assert copied.weights_.flags.writeable and not isinstance(
        _base_buffer(copied.weights_), mmap.mmap
    )
    np.testing.assert_array_equal(copied.weights_, ease.weights_)


def test_a_mapped_model_survives_its_directory_being_replaced(saved, tmp_path):
    ease, _ = saved["ease"]
    graph, _ = saved["graph"]
    path = ease.save(tmp_path / "model")
    users = ease.user_map_.ids[:5]
    mapped = load_model(path)
    before, old_inode = mapped.score(users), (path / WEIGHTS_FILE).stat().st_ino
    graph.save(path)  # the atomic rename: a new directory and file in the same place
    # The old file is deleted but still mapped, so its inode cannot have been reused.
    assert (path / WEIGHTS_FILE).stat().st_ino != old_inode
    np.testing.assert_array_equal(mapped.score(users), before)  # the old file, still mapped
    np.testing.assert_array_equal(load_model(path).score(users), graph.score(users))


def test_reload_after_a_replacing_save_serves_the_new_model(saved, tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx2")
    from fastapi.testclient import TestClient

    from tripletrec.serving.app import create_app

    ease, _ = saved["ease"]
    graph, _ = saved["graph"]
    path = ease.save(tmp_path / "served")
    user = str(ease.user_map_.ids[2])
    admin = {"Authorization": "Bearer token"}
    with TestClient(create_app(path, token="token", cache_entries=0)) as client:
        first = client.get("/recommend", params={"user": user, "k": 5}).json()["items"]
        assert [r["item_id"] for r in first] == ease.recommend([int(user)], 5)[0][0].tolist()
        graph.save(path)
        # The old mapping keeps answering until the reload swaps the new model in.
        again = client.get("/recommend", params={"user": user, "k": 5}).json()["items"]
        assert again == first
        response = client.post("/reload", headers=admin)
        assert response.status_code == 200, response.text
        assert client.get("/model").json()["estimator"] == "GraphFilterRecommender"
        fresh = client.get("/recommend", params={"user": user, "k": 5}).json()["items"]
        assert [r["item_id"] for r in fresh] == graph.recommend([int(user)], 5)[0][0].tolist()


def test_health_reports_this_workers_memory(saved):
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx2")
    import os

    from fastapi.testclient import TestClient

    from tripletrec.serving.app import create_app

    with TestClient(create_app(saved["ease"][1])) as client:
        body = client.get("/health").json()
    assert body["status"] == "ok" and body["pid"] == os.getpid()
    for key in ("rss_bytes", "pss_bytes", "shared_bytes"):
        assert key in body
        if Path("/proc/self/smaps_rollup").exists():
            assert isinstance(body[key], int) and body[key] >= 0
    if body["rss_bytes"] is not None:
        assert 0 < body["pss_bytes"] <= body["rss_bytes"]


def test_memory_usage_parses_smaps_rollup_and_tolerates_its_absence(tmp_path):
    rollup = tmp_path / "smaps_rollup"
    rollup.write_text(
        "555d5ed11000-7ffd6e08c000 ---p 00000000 00:00 0      [rollup]\n"
        "Rss:                1764 kB\n"
        "Pss:                 414 kB\n"
        "Pss_Dirty:           116 kB\n"
        "Shared_Clean:       1608 kB\n"
        "Shared_Dirty:          2 kB\n"
        "Private_Clean:        40 kB\n"
    )
    usage = memory_usage(rollup)
    assert usage["rss_bytes"] == 1764 * 1024 and usage["pss_bytes"] == 414 * 1024
    assert usage["shared_bytes"] == 1610 * 1024 and isinstance(usage["pid"], int)
    missing = memory_usage(tmp_path / "nope")
    assert missing["rss_bytes"] is missing["pss_bytes"] is missing["shared_bytes"] is None
    rollup.write_text("Rss: 10 kB\n")  # a kernel without the other lines
    partial = memory_usage(rollup)
    assert partial["rss_bytes"] == 10240 and partial["pss_bytes"] is None
    assert partial["shared_bytes"] is None
