"""Adjacency-list files (``user item item ...``, LightGCN's format) and the Gowalla split."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from _fuzz import result_or_error
from hypothesis import given
from hypothesis import strategies as st

import tripletrec as tr
from tripletrec.data.adjacency import (
    parse_adjacency_file,
    read_adjacency_file,
    read_adjacency_files,
)
from tripletrec.data.datasets import DATASETS, GowallaSplit, load_gowalla
from tripletrec.data.datasets.gowalla import union
from tripletrec.exceptions import DataError, ParameterError, UnknownIdError


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    return path


def pairs(data: tr.Interactions) -> list[tuple[int, int]]:
    users = data.user_map.to_raw(data.users).tolist()
    return list(zip(users, data.item_map.to_raw(data.items).tolist()))


# ---------------------------------------------------------------------- one file
def test_reads_rows_in_file_order(tmp_path: Path) -> None:
    # A user without items (7), a blank line, a tab, CRLF line ends, a trailing space and
    # no line end at the end of the file.
    path = write(tmp_path, "a.txt", "3 10 12\r\n7\n\n0 12\t5 \n3 4")
    data = tr.Interactions.from_adjacency_file(path)
    assert pairs(data) == [(3, 10), (3, 12), (0, 12), (0, 5), (3, 4)]
    assert data.user_map.to_list() == [3, 7, 0]  # first appearance, 7 without items kept
    assert data.item_map.to_list() == [10, 12, 5, 4]
    assert data.ratings is None and data.timestamps is None
    lists = parse_adjacency_file(path)
    assert lists.lines.tolist() == [1, 1, 4, 4, 5]
    assert lists.line_users.tolist() == [3, 7, 0, 3]


def test_matches_a_plain_python_parse(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lines = []
    for user in rng.permutation(300):
        items = rng.choice(10**7, size=rng.integers(0, 40), replace=False)
        lines.append(" ".join(map(str, [user, *items])))
    path = write(tmp_path, "big.txt", "\n".join(lines) + "\n")
    expected = [(int(f[0]), int(i)) for f in map(str.split, lines) for i in f[1:]]
    assert pairs(read_adjacency_file(path)) == expected


def test_reuses_given_maps(tmp_path: Path) -> None:
    path = write(tmp_path, "a.txt", "1 2\n0 1 2\n")
    user_map, item_map = tr.IdMap([0, 1, 2], "user"), tr.IdMap([2, 1, 0], "item")
    data = read_adjacency_file(path, user_map=user_map, item_map=item_map)
    assert data.users.tolist() == [1, 0, 0] and data.items.tolist() == [0, 1, 0]
    assert data.user_map is user_map
    with pytest.raises(UnknownIdError, match="unknown item id"):
        read_adjacency_file(path, item_map=tr.IdMap([1], "item"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 1 2\n1 x 3\n", r"line 2: 'x' is not an id; ids must be non-negative integers"),
        ("0 1\n\n1 2 1.5\n", r"line 3: '1.5' is not an id"),
        ("0 1\n1 -2 3\n", r"line 2: negative id -2; ids must be non-negative integers"),
        ("-1 5\n", r"line 1: negative id -1"),
        ("0 1e3\n", r"line 1: '1e3' is not an id"),
        ("\ufeff0 1\n", r"line 1: '\\ufeff0' is not an id"),  # a byte-order mark
        ("0 1,2\n", r"line 1: '1,2' is not an id"),
        ("0 " + "9" * 19 + "\n", r"line 1: id of 19 digits is too large"),
        ("", r"no interactions \(the file is empty\)"),
        (" \n\n", r"no interactions \(the file is empty\)"),
        ("0\n1\n", r"no interactions \(2 line\(s\), none with an item after its user\)"),
    ],
)
def test_bad_files_name_the_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "bad.txt", text.encode("utf-8"))
    with pytest.raises(DataError, match=f"bad.txt: {message}"):
        read_adjacency_file(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_adjacency_file(tmp_path / "absent.txt")


def test_repeated_pairs_follow_the_duplicates_policy(tmp_path: Path) -> None:
    # (0, 5) twice on line 1, (1, 2) on lines 2 and 3.
    path = write(tmp_path, "dup.txt", "0 5 6 5\n1 2\n1 3 2\n")
    message = r"dup.txt: line 1 repeats the pair \(user 0, item 5\); 2 row\(s\) repeat a pair"
    with pytest.raises(DataError, match=message + "; pass duplicates='first' or 'last'"):
        read_adjacency_file(path)
    first = read_adjacency_file(path, duplicates="first")
    assert pairs(first) == [(0, 5), (0, 6), (1, 2), (1, 3)]
    last = read_adjacency_file(path, duplicates="last")
    assert pairs(last) == [(0, 6), (0, 5), (1, 3), (1, 2)]
    with pytest.raises(ParameterError, match="duplicates"):
        read_adjacency_file(path, duplicates="drop")


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    # Module-scoped: hypothesis runs many examples per test (tmp_path is per test).
    with tempfile.TemporaryDirectory(prefix="tripletrec-adjacency-") as folder:
        yield Path(folder)


tokens = st.one_of(
    st.integers(0, 10**18).map(str),
    st.sampled_from(["-1", "1.0", "x", "", "\ufeff", "\x00", "1e3", "０", "٣", "+1", "9" * 19]),
)
line_texts = st.lists(tokens, max_size=6).map(" ".join)


@given(lines=st.lists(line_texts, max_size=6), tail=st.binary(max_size=6))
def test_any_text_gives_interactions_or_a_one_line_error(scratch, lines, tail) -> None:
    path = scratch / "any.txt"
    path.write_bytes("\n".join(lines).encode("utf-8") + tail)
    result = result_or_error(lambda: read_adjacency_file(path, duplicates="first"))
    if isinstance(result, tr.Interactions):
        # Python's own reading of a well-formed file gives the same pairs.
        fields = [line.split() for line in path.read_text().splitlines()]
        expected = {(int(f[0]), int(i)) for f in fields if f for i in f[1:]}
        assert set(pairs(result)) == expected and len(result) == len(expected)


# ---------------------------------------------------------------------- one split
def test_parts_share_maps_where_every_id_is_its_index(tmp_path: Path) -> None:
    train = write(tmp_path, "train.txt", "0 0 1\n2 1\n")
    test = write(tmp_path, "test.txt", "0 4\n1 1\n3\n")  # item 4 and users 1, 3 only here
    a, b = read_adjacency_files([train, test])
    assert a.user_map is b.user_map and a.item_map is b.item_map
    assert a.user_map.to_list() == [0, 1, 2, 3] and a.item_map.to_list() == [0, 1, 2, 3, 4]
    assert a.users.tolist() == [0, 0, 2] and b.items.tolist() == [4, 1]
    assert b.to_csr().shape == (4, 5)


def test_parts_refuse_sparse_ids(tmp_path: Path) -> None:
    path = write(tmp_path, "ids.txt", "0 1\n1 123456789012\n")
    with pytest.raises(DataError, match=r"item ids are not numbered 0 \.\. n - 1 \(2 distinct"):
        read_adjacency_files([path])
    assert len(read_adjacency_file(path)) == 2  # a single file maps any ids


def gowalla_like(folder: Path) -> Path:
    write(folder, "train.txt", "0 0 1\n1 1 2\n2 0\n")
    write(folder, "valid.txt", "0 2\n1 0\n2\n")
    # Item 3 appears in test only; (2, 0) is in train too.
    write(folder, "test.txt", "0 3\n1 3\n2 2 0\n")
    return folder


def test_load_gowalla_parts_and_union(tmp_path: Path) -> None:
    split = load_gowalla(gowalla_like(tmp_path))
    assert isinstance(split, GowallaSplit)
    assert split.train.item_map is split.test.item_map and split.test.n_items == 4
    assert pairs(split.train_valid) == [(0, 0), (0, 1), (1, 1), (1, 2), (2, 0), (0, 2), (1, 0)]
    assert len(split.all) == 10  # 11 rows, (2, 0) kept once
    assert load_gowalla(tmp_path / "test.txt").test.items.tolist() == [3, 3, 2, 0]
    assert len(tr.load_dataset("gowalla", path=tmp_path)) == 10
    # A pair in two parts is kept once, from the earlier part.
    assert pairs(union(split.train, split.train)) == pairs(split.train)
    with pytest.raises(DataError, match="do not share their id maps"):
        union(split.train, read_adjacency_file(tmp_path / "test.txt"))


def test_load_gowalla_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="gowalla is not bundled; pass path="):
        tr.load_dataset("gowalla")
    with pytest.raises(DataError, match="no such folder; Gowalla needs the folder holding"):
        load_gowalla(tmp_path / "absent")
    write(tmp_path, "train.txt", "0 1\n")
    write(tmp_path, "test.txt", "0 2\n")
    with pytest.raises(DataError, match=r"missing valid\.txt; LightGCN's own folder has"):
        load_gowalla(tmp_path)
    (tmp_path / "test.txt").unlink()
    with pytest.raises(DataError, match=r"missing valid\.txt, test\.txt$"):
        load_gowalla(tmp_path)


# ---------------------------------------------------------------------- the real files
def test_gowalla_counts(gowalla_dir: Path) -> None:
    split = load_gowalla(gowalla_dir)
    assert (len(split.train), len(split.valid), len(split.test)) == (719_081, 91_047, 217_242)
    assert split.train.shape == (29_858, 40_981)
    # Raw ids are the file's ids and their own indices, for all three parts.
    np.testing.assert_array_equal(split.train.user_map.ids, np.arange(29_858))
    np.testing.assert_array_equal(split.test.item_map.ids, np.arange(40_981))
    assert len(np.unique(split.train.items)) == 40_979  # two items are not in train
    train_valid = split.train_valid
    assert len(train_valid) == 810_128 == len(split.train) + len(split.valid)
    assert train_valid.to_csr().multiply(split.test.to_csr()).nnz == 0  # test is disjoint
    assert len(np.unique(split.test.users)) == 29_858  # every user has a test item
    info = DATASETS["gowalla"]
    assert (info.n_rows, info.n_users, info.n_items) == (len(split.all), 29_858, 40_981)
