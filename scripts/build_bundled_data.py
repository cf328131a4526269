"""Build the bundled anime-5k tables from the published ``anime-5k.zip``.

Writes ``ratings.parquet``, ``history.parquet``, ``items.parquet`` (zstd) and a
``manifest.json`` (sha256 of the source zip and of each table, row counts) into
``src/tripletrec/data_files/anime-5k/``. Rows keep the order of the ``.dat`` files, which
the seeded train/test splits depend on. Every file is written to a temporary name in the
target folder and renamed into place, so an interrupted run never leaves a half-written
table behind.

Usage::

    python scripts/build_bundled_data.py [ZIP] [--out FOLDER]

``ZIP`` defaults to ``../shared/data/anime-5k/anime-5k.zip`` relative to the repository.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ZIP = ROOT.parent / "shared" / "data" / "anime-5k" / "anime-5k.zip"
DEFAULT_OUT = ROOT / "src" / "tripletrec" / "data_files" / "anime-5k"
ORIGIN = "caserec/Datasets-for-Recommender-Systems@4180b4d, Processed Datasets/Anime/anime.zip"

try:
    from tripletrec._files import atomic_path
    from tripletrec.data.datasets import ANIME_5K_FILES, read_anime_5k_zip
    from tripletrec.exceptions import TripletrecError
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(ROOT / "src"))
    from tripletrec._files import atomic_path
    from tripletrec.data.datasets import ANIME_5K_FILES, read_anime_5k_zip
    from tripletrec.exceptions import TripletrecError

# Storage types: the narrowest that hold the data, to keep the wheel small.
STORAGE_TYPES = {
    "ratings": {"user_id": "int32", "item_id": "int32", "rating": "int32"},
    "history": {"user_id": "int32", "item_id": "int32"},
    "items": {
        "item_id": "int32",
        "episodes": "Int32",
        "mean_rating": "float64",
        "members": "Int32",
    },
}


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: Path, write) -> None:
    """Call ``write(temporary_path)`` then rename the result onto ``path``."""
    # Packaged data must be readable by all, whatever the umask of whoever builds it.
    with atomic_path(path, mode=0o644) as tmp:
        write(tmp)


def build(zip_path: Path, out: Path) -> dict:
    """Write the tables and manifest for ``zip_path`` into ``out``; return the manifest."""
    tables = read_anime_5k_zip(zip_path)._asdict()
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for key, filename in ANIME_5K_FILES.items():
        table: pd.DataFrame = tables[key].astype(STORAGE_TYPES[key])
        target = out / filename
        write_atomic(
            target,
            lambda tmp, table=table: table.to_parquet(
                tmp, index=False, compression="zstd", compression_level=19
            ),
        )
        files[filename] = {
            "rows": len(table),
            "columns": list(table.columns),
            "sha256": sha256(target),
            "bytes": target.stat().st_size,
        }
    manifest = {
        "dataset": "anime-5k",
        "description": (
            "Kaggle 'Anime Recommendations Database' (CooperUnion), 5,000-user random "
            "subsample by CaseRecommender; rows in source file order"
        ),
        "license": "CC0 1.0",
        "source": {
            "file": zip_path.name,
            "sha256": sha256(zip_path),
            "bytes": zip_path.stat().st_size,
            "origin": ORIGIN,
        },
        "built_by": "scripts/build_bundled_data.py",
        "files": files,
    }
    write_atomic(
        out / "manifest.json",
        lambda tmp: tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8"),
    )
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("zip", nargs="?", type=Path, default=DEFAULT_ZIP, help="anime-5k.zip")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    try:
        manifest = build(args.zip, args.out)
    except TripletrecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    total = sum(f["bytes"] for f in manifest["files"].values())
    for name, info in manifest["files"].items():
        print(f"{args.out / name}: {info['rows']:,} rows, {info['bytes']:,} bytes")
    print(f"total {total:,} bytes; source sha256 {manifest['source']['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
