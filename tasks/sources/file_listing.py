"""The data files under an input path, and what each is from its name.

A data file is CSV (``.csv``, ``.tsv``) or Parquet (``.parquet``, ``.pq``), optionally
gzip'd (``.gz``). In a folder, hidden and partially written files, other names and
symlinks out of the folder are listed as skipped, not read.
"""

from __future__ import annotations

from pathlib import Path

from tasks.config import FilesConfig
from tasks.errors import DataError

CSV_SUFFIXES = (".csv", ".tsv")  # not .txt: READMEs and notes land in folders too
PARQUET_SUFFIXES = (".parquet", ".pq")
# Writers put these next to a file while it is being written: never read them.
PARTIAL_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".filepart")


def file_kind(path: Path) -> str | None:
    """ "csv", "parquet" or None, from the name (a trailing ".gz" is allowed)."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


def delimiter_for(name: str, config: FilesConfig) -> str:
    """The configured delimiter, else a tab for .tsv files and a comma for the rest."""
    if config.delimiter:
        return config.delimiter
    return "\t" if name.lower().removesuffix(".gz").endswith(".tsv") else ","


def list_data_files(path: Path) -> tuple[list[Path], list[str]]:
    """``(files to read, "name: why it was skipped" lines)`` for a file or a folder.

    In a folder, a symlink is followed only when its target is inside the folder (a link
    out of it could read anything the process may read); others are listed as skipped."""
    if not path.exists():
        raise DataError(
            f"input path {path} does not exist; expected a CSV/Parquet file or a folder of "
            "them; check ingest.files.path (--path)"
        )
    if path.is_file():
        if file_kind(path) is None:
            raise DataError(
                f"{path.name}: not a CSV or Parquet file name; expected .csv, .tsv, "
                ".parquet or .pq, optionally ending in .gz; rename the file"
            )
        return [path], []
    files, skipped = [], []
    inside = path.resolve()
    for candidate in sorted(p for p in path.rglob("*") if p.is_file()):
        name = candidate.relative_to(path).as_posix()
        if not candidate.resolve().is_relative_to(inside):
            skipped.append(f"{name}: a symlink to outside the folder, not read")
        elif candidate.name.startswith((".", "_", "~")) or candidate.name.endswith(
            PARTIAL_SUFFIXES
        ):
            skipped.append(f"{name}: hidden or partially written file, not read")
        elif file_kind(candidate) is None:
            skipped.append(f"{name}: not a CSV or Parquet file name, not read")
        else:
            files.append(candidate)
    return files, skipped
