"""Adjacency-list files: one line per user, ``user item item ...`` (the LightGCN format).

The split files of LightGCN, NGCF, UltraGCN, SimpleX and most graph recommenders since
(Gowalla, Yelp2018, Amazon-Book) hold one line per user: the user's id, then the ids of the
user's items, separated by spaces; ids are non-negative integers.

:func:`read_adjacency_file` (behind :meth:`Interactions.from_adjacency_file
<tripletrec.data.interactions.Interactions.from_adjacency_file>`) reads one such file;
:func:`read_adjacency_files` reads the parts of one split (train / valid / test) with shared
id maps in which every raw id is its own index. The text is parsed as one byte array:
digits, token boundaries and line numbers are NumPy operations over the whole file, and the
only Python loop runs over the digit positions of the longest id (at most 18), never over
lines or interactions. A million interactions take well under a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tripletrec._checks import printable
from tripletrec.data._checks import check_duplicate_policy, check_file
from tripletrec.data.interactions import DuplicatePolicy, IdMap, Interactions
from tripletrec.exceptions import DataError, first_line

#: Digits of the longest id read: 10**18 - 1 still fits an int64.
MAX_ID_DIGITS = 18
#: Bytes that separate ids: space, tab, carriage return (Windows line ends), line feed.
_SEPARATORS = tuple(map(ord, " \t\r\n"))
_NEWLINE = ord("\n")


@dataclass(frozen=True)
class AdjacencyLists:
    """The raw ids of one adjacency-list file, in file order.

    Attributes
    ----------
    line_users : numpy.ndarray of int64
        The user of every line that is not blank, users without items included.
    users, items : numpy.ndarray of int64
        One entry per interaction: the line's user and one of its items.
    lines : numpy.ndarray of int64
        The 1-based line number of every interaction, for messages.
    source : str
        The file, for messages.
    """

    line_users: np.ndarray
    users: np.ndarray
    items: np.ndarray
    lines: np.ndarray
    source: str


def parse_adjacency_file(path: str | Path) -> AdjacencyLists:
    """The raw ids of an adjacency-list file.

    Parameters
    ----------
    path : str or Path
        A text file whose lines are ``user item item ...``: non-negative integer ids
        separated by spaces or tabs. Blank lines are skipped; a line with a user and no
        item is allowed (the user has no interaction in this file).

    Returns
    -------
    AdjacencyLists

    Raises
    ------
    DataError
        Missing or unreadable file; a token that is not a non-negative integer (naming the
        line and the token); an id of more than 18 digits; a file without any interaction.
    """
    path = check_file(path)
    source = printable(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{source}: cannot read ({first_line(exc)})") from exc
    buf = np.frombuffer(text, dtype=np.uint8)
    # uint8 arithmetic wraps below '0', so one comparison finds the digits.
    digit = (buf - np.uint8(ord("0"))) < 10
    bad = ~digit
    for separator in _SEPARATORS:  # four byte values: cheaper than np.isin's sort
        bad &= buf != separator
    if bad.any():
        raise _token_error(text, int(np.flatnonzero(bad)[0]), source)
    del bad
    edges = np.diff(digit.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1)
    lengths = np.flatnonzero(edges == -1) - starts
    del digit, edges
    if len(starts) == 0:
        raise DataError(f"{source}: no interactions (the file is empty)")
    newlines = np.flatnonzero(buf == _NEWLINE)
    # 0-based line of every token: how many line feeds come before its first digit.
    token_lines = np.searchsorted(newlines, starts)
    if lengths.max() > MAX_ID_DIGITS:
        at = int(np.argmax(lengths > MAX_ID_DIGITS))
        raise DataError(
            f"{source}: line {int(token_lines[at]) + 1}: id of {int(lengths[at])} digits is "
            f"too large (at most {MAX_ID_DIGITS} digits)"
        )
    values = np.zeros(len(starts), dtype=np.int64)
    # Horner's rule one digit position at a time, over all the tokens that long at once.
    for position in range(int(lengths.max())):
        longer = np.flatnonzero(lengths > position)
        values[longer] = values[longer] * 10 + (buf[starts[longer] + position] - ord("0"))

    first = np.ones(len(starts), dtype=bool)  # the first token of a line is its user
    first[1:] = token_lines[1:] != token_lines[:-1]
    owner = np.cumsum(first) - 1  # the line (among non-blank ones) of every token
    line_users = values[first]
    is_item = ~first
    if not is_item.any():
        raise DataError(
            f"{source}: no interactions ({len(line_users)} line(s), none with an item "
            "after its user)"
        )
    return AdjacencyLists(
        line_users=line_users,
        users=line_users[owner[is_item]],
        items=values[is_item],
        lines=token_lines[is_item].astype(np.int64) + 1,
        source=source,
    )


def _token_error(text: bytes, position: int, source: str) -> DataError:
    """The error for the token holding the bad byte at ``position``; the error path only,
    so it may look at that one line in Python."""
    start = text.rfind(b"\n", 0, position) + 1
    end = text.find(b"\n", position)
    line = text[start : len(text) if end < 0 else end]
    number = text.count(b"\n", 0, start) + 1
    offset = position - start
    # The whitespace-separated token around the bad byte.
    spaced = line.replace(b"\t", b" ").replace(b"\r", b" ")
    left = spaced.rfind(b" ", 0, offset) + 1
    token = spaced[left:].split(b" ", 1)[0].decode("utf-8", errors="replace")
    shown = repr(token if len(token) <= 40 else token[:37] + "...")
    if token.startswith("-") and token[1:].isdigit():
        return DataError(
            f"{source}: line {number}: negative id {token}; ids must be non-negative integers"
        )
    return DataError(
        f"{source}: line {number}: {shown} is not an id; ids must be non-negative integers"
    )


def _kept_rows(
    lists: AdjacencyLists, users: np.ndarray, items: np.ndarray, n_items: int, duplicates: str
) -> np.ndarray | None:
    """Rows to keep under ``duplicates`` (None: no repeated pair); ``users`` and ``items``
    are indices, ``n_items`` the size of the item index range."""
    keys = users * np.int64(n_items) + items
    order = np.argsort(keys, kind="stable")  # stable: equal keys stay in file order
    repeat = keys[order[1:]] == keys[order[:-1]]
    if not repeat.any():
        return None
    if duplicates == "error":
        row = int(order[1:][repeat].min())  # the first row that repeats an earlier one
        raise DataError(
            f"{lists.source}: line {int(lists.lines[row])} repeats the pair (user "
            f"{int(lists.users[row])}, item {int(lists.items[row])}); {int(repeat.sum())} "
            "row(s) repeat a pair; pass duplicates='first' or 'last' to keep one"
        )
    keep_sorted = np.ones(len(order), dtype=bool)
    if duplicates == "first":
        keep_sorted[1:] = ~repeat
    else:
        keep_sorted[:-1] = ~repeat
    keep = np.zeros(len(order), dtype=bool)
    keep[order[keep_sorted]] = True
    return keep


def _interactions(
    lists: AdjacencyLists, user_map: IdMap, item_map: IdMap, duplicates: str
) -> Interactions:
    users = user_map.to_index(lists.users)
    items = item_map.to_index(lists.items)
    keep = _kept_rows(lists, users, items, len(item_map), duplicates)
    if keep is not None:
        users, items = users[keep], items[keep]
    return Interactions(users, items, None, None, user_map, item_map)


def read_adjacency_file(
    path: str | Path,
    *,
    user_map: IdMap | None = None,
    item_map: IdMap | None = None,
    duplicates: DuplicatePolicy = "error",
) -> Interactions:
    """Interactions from an adjacency-list file (``user item item ...`` lines).

    Parameters
    ----------
    path : str or Path
        The file (see :func:`parse_adjacency_file` for the format).
    user_map, item_map : IdMap, optional
        Existing maps to reuse; ids outside them raise
        :class:`~tripletrec.exceptions.UnknownIdError`. By default the maps are built from
        the file in order of first appearance; the user map includes users whose line has
        no item.
    duplicates : {"error", "first", "last"}, default "error"
        What to do with a repeated (user, item) pair, as in :meth:`Interactions.from_dataframe
        <tripletrec.data.interactions.Interactions.from_dataframe>`: raise (naming the line),
        or keep the first or the last occurrence (the same pair either way, without ratings:
        only the row order differs).

    Returns
    -------
    Interactions
        One row per (user, item) pair in file order, no ratings, no timestamps.

    Raises
    ------
    DataError
        As :func:`parse_adjacency_file`, and for repeated pairs with ``duplicates="error"``.
    """
    check_duplicate_policy(duplicates)
    lists = parse_adjacency_file(path)
    if user_map is None:
        user_map = IdMap(pd.unique(lists.line_users), "user")
    if item_map is None:
        item_map = IdMap(pd.unique(lists.items), "item")
    return _interactions(lists, user_map, item_map, duplicates)


def read_adjacency_files(
    paths: Sequence[str | Path], *, duplicates: DuplicatePolicy = "error"
) -> tuple[Interactions, ...]:
    """The parts of one split (for example train, valid, test), sharing one user map and
    one item map.

    The maps hold the ids ``0 .. max id`` over all the files, so every raw id is its own
    index, as in LightGCN's code (``n_items = max item id + 1``): an item seen only in the
    test file still has a row in the scores, and scores line up between the parts.

    Parameters
    ----------
    paths : sequence of str or Path
        The adjacency-list files, one per part.
    duplicates : {"error", "first", "last"}, default "error"
        Repeated pairs within one file, as in :func:`read_adjacency_file`. Pairs repeated
        between files are kept: whether parts overlap is the caller's question.

    Returns
    -------
    tuple of Interactions
        One per file, in order.
    """
    check_duplicate_policy(duplicates)
    if len(paths) == 0:
        raise DataError("no adjacency-list file given")
    parts = [parse_adjacency_file(path) for path in paths]
    n_users = _dense_size([p.line_users for p in parts], "user", paths)
    n_items = _dense_size([p.items for p in parts], "item", paths)
    user_map = IdMap(np.arange(n_users, dtype=np.int64), "user")
    item_map = IdMap(np.arange(n_items, dtype=np.int64), "item")
    return tuple(_interactions(p, user_map, item_map, duplicates) for p in parts)


def _dense_size(ids: list[np.ndarray], name: str, paths: Sequence[str | Path]) -> int:
    """``max id + 1`` over ``ids``; :class:`DataError` when most of ``0 .. max id`` is
    unused, since a map of every id up to, say, 10**12 would not fit in memory: such files
    hold ids of another numbering, for :func:`read_adjacency_file` alone."""
    largest = max(int(part.max()) for part in ids)
    distinct = len(pd.unique(np.concatenate(ids)))
    if largest + 1 > 2 * distinct + 1024:
        raise DataError(
            f"{', '.join(printable(p) for p in paths)}: {name} ids are not numbered 0 .. n - 1 "
            f"({distinct:,} distinct, the largest {largest:,}); read each file with "
            "read_adjacency_file, which maps any ids"
        )
    return largest + 1
