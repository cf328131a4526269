"""Gowalla as split by LightGCN: the field's standard large, sparse benchmark (not bundled).

The folder holds ``train.txt``, ``valid.txt`` and ``test.txt``, each line ``user item item
...`` with 0-based ids (LightGCN++'s split of LightGCN's files: ``train.txt`` + ``valid.txt``
is LightGCN's ``train.txt`` as a set of pairs, ``test.txt`` is LightGCN's). 29,858 users,
40,981 items; 719,081 / 91,047 / 217,242 interactions. Check-ins from SNAP (Cho, Myers and
Leskovec, KDD 2011), free for research use; the terms ask to cite the source, so the files
are read from the caller's folder and never shipped.

The published tables fit on train + valid (:attr:`GowallaSplit.train_valid`) and score on
test with ``recall@20`` and ``ndcg@20`` (see ``docs/protocols.md``); choose settings by
fitting on ``train`` and scoring ``valid``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tripletrec._checks import printable
from tripletrec.data.adjacency import read_adjacency_files
from tripletrec.data.interactions import Interactions
from tripletrec.exceptions import DataError

#: The files of the split, in the order of :class:`GowallaSplit`'s parts.
GOWALLA_FILES = ("train.txt", "valid.txt", "test.txt")


@dataclass(frozen=True)
class GowallaSplit:
    """The three parts of Gowalla, sharing one user map and one item map.

    Every raw id is its own index (the maps hold ``0 .. 29,857`` and ``0 .. 40,980``), so
    a model fitted on any part scores every item, including the two items that appear in
    valid or test only.

    Attributes
    ----------
    train, valid, test : Interactions
        The rows of ``train.txt``, ``valid.txt`` and ``test.txt``, in file order.
    """

    train: Interactions
    valid: Interactions
    test: Interactions

    @property
    def train_valid(self) -> Interactions:
        """Train and valid together: the training set of the published tables (810,128
        pairs), for the final fit before scoring ``test``."""
        return union(self.train, self.valid)

    @property
    def all(self) -> Interactions:
        """Every interaction of the three parts (1,027,370 pairs)."""
        return union(self.train, self.valid, self.test)


def union(*parts: Interactions) -> Interactions:
    """The rows of ``parts`` (which must share their id maps) one after the other, a pair
    repeated in a later part dropped.

    Parameters
    ----------
    *parts : Interactions
        Parts of one split (their maps are the same objects or equal).

    Returns
    -------
    Interactions
        No ratings or timestamps: the adjacency-list files have none.
    """
    first = parts[0]
    for part in parts[1:]:
        if part.user_map != first.user_map or part.item_map != first.item_map:
            raise DataError("union: the parts do not share their id maps")
    users = np.concatenate([p.users for p in parts])
    items = np.concatenate([p.items for p in parts])
    # np.unique keeps the first row of every key: the earlier part wins, file order stays.
    _, rows = np.unique(users * np.int64(first.n_items) + items, return_index=True)
    rows.sort()
    return Interactions(users[rows], items[rows], None, None, first.user_map, first.item_map)


def gowalla_folder(path: str | Path) -> Path:
    """The folder holding the three files; ``path`` may also name one of the files."""
    folder = Path(path)
    if folder.is_file() and folder.name in GOWALLA_FILES:
        folder = folder.parent
    if not folder.is_dir():
        raise DataError(
            f"{printable(folder)}: no such folder; Gowalla needs the folder holding "
            f"{', '.join(GOWALLA_FILES)} (LightGCN's split, as in ../shared/data/gowalla)"
        )
    missing = [name for name in GOWALLA_FILES if not (folder / name).is_file()]
    if missing:
        hint = ""
        if missing == ["valid.txt"]:
            hint = (
                "; LightGCN's own folder has train.txt and test.txt only: the split with a "
                "validation part is LightGCN++'s (geon0325/LightGCNpp, data/gowalla)"
            )
        raise DataError(f"{printable(folder)}: missing {', '.join(missing)}{hint}")
    return folder


def load_gowalla(path: str | Path) -> GowallaSplit:
    """Read Gowalla's train, valid and test parts from ``path``.

    Parameters
    ----------
    path : str or Path
        The folder holding ``train.txt``, ``valid.txt`` and ``test.txt`` (or one of them).

    Returns
    -------
    GowallaSplit
        The three parts with shared maps in which every raw id is its own index.

    Raises
    ------
    DataError
        A missing folder or file, a malformed line (named), or a pair repeated within a
        file.
    """
    folder = gowalla_folder(path)
    train, valid, test = read_adjacency_files([folder / name for name in GOWALLA_FILES])
    return GowallaSplit(train, valid, test)
