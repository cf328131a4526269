"""Table helpers shared by the anime readers: TSV members of a zip, column selection, and
cleaning of feedback and item tables."""

from __future__ import annotations

import html
import zipfile
from typing import IO

import numpy as np
import pandas as pd

from tripletrec.data._checks import check_columns, numeric_column
from tripletrec.exceptions import DataError


def select_renamed(df: pd.DataFrame, names: dict[str, str], source: str) -> pd.DataFrame:
    """The columns of ``df`` named by the keys of ``names``, renamed to its values."""
    check_columns(names, df.columns, source)
    return df[list(names)].rename(columns=names)


def read_tsv(handle: IO[bytes], source: str, *, text: bool = False) -> pd.DataFrame:
    """A tab-separated file with a header; ``text=True`` reads every field as text."""
    try:
        if text:
            # Read every field as text so a name such as "NA" stays a name.
            return pd.read_csv(handle, sep="\t", dtype=str, keep_default_na=False)
        return pd.read_csv(handle, sep="\t")
    except (ValueError, OSError, pd.errors.ParserError, zipfile.BadZipFile) as exc:
        raise DataError(f"{source}: cannot read as tab-separated text: {exc}") from exc


def clean_feedback(df: pd.DataFrame, columns: tuple[str, ...], source: str) -> pd.DataFrame:
    """Integer ids (and ratings), checked, as int64 in memory whatever the storage type."""
    out = {}
    for col in columns:
        values = numeric_column(df[col], col, source)
        if not np.array_equal(values, np.round(values)):
            raise DataError(f"{source}: column {col!r} must hold whole numbers")
        out[col] = values.astype(np.int64)
    return pd.DataFrame(out)


def clean_items(items: pd.DataFrame, source: str) -> pd.DataFrame:
    """Item table with typed columns and HTML entities in names decoded."""
    items = items.copy()
    items["item_id"] = numeric_column(items["item_id"], "item_id", source).astype(np.int64)
    if not items["item_id"].is_unique:
        dup = items["item_id"][items["item_id"].duplicated()].iloc[0]
        raise DataError(f"{source}: item id {dup} appears more than once")
    names = items["name"].astype(str)
    # html.unescape has no vectorised form; only the few names with an entity go through it.
    has_entity = names.str.contains("&", regex=False).to_numpy()
    names[has_entity] = names[has_entity].map(html.unescape)
    items["name"] = names
    for col in ("genre", "type"):
        if col in items.columns:
            # Empty text fields are missing values (they are read as text to protect names).
            items[col] = items[col].replace("", np.nan)
    if "episodes" in items.columns:
        # Kaggle writes "Unknown" for running series.
        items["episodes"] = pd.to_numeric(items["episodes"], errors="coerce").astype("Int32")
    if "mean_rating" in items.columns:
        items["mean_rating"] = pd.to_numeric(items["mean_rating"], errors="coerce")
    if "members" in items.columns:
        items["members"] = pd.to_numeric(items["members"], errors="coerce").astype("Int64")
    return items.reset_index(drop=True)
