"""One CSV or Parquet file (gzip allowed) read as it is, whole or in batches of rows.

CSV columns are read as text (blank -> null); Parquet keeps its own types. The file's
bytes are checked first (tasks/sources/file_checks.py). What cannot be read at all (an
empty file, bytes that are not the configured encoding, a ragged line, a corrupt gzip or
Parquet file) raises ``DataError`` saying what was expected, what was found and what to
do; a file gone between listing and reading raises ``SourceFileVanished``.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd

from tasks.config import FilesConfig
from tasks.errors import DataError
from tasks.sources.file_checks import check_bounds, check_header, first_bad_byte
from tasks.sources.file_listing import delimiter_for, file_kind


class SourceFileVanished(DataError):
    """A listed file was gone when it was read (moved or deleted by its writer meanwhile)."""


def read_table(path: Path, config: FilesConfig, name: str | None = None) -> pd.DataFrame:
    """The file as read: CSV as text columns (blank -> null), Parquet with its own types."""
    return next(iter_table(path, config, name))


def iter_table(
    path: Path, config: FilesConfig, name: str | None = None, batch_rows: int | None = None
) -> Iterator[pd.DataFrame]:
    """The file in batches of ``batch_rows`` rows (None: one batch), as :func:`read_table`
    reads it; at least one batch, empty for a file without rows."""
    name = name or path.name
    try:
        if path.stat().st_size == 0:
            raise DataError(
                f"{name}: the file is empty (0 bytes); expected a header line naming the "
                "columns and one line per event; re-export it, or remove it"
            )
        if file_kind(path) == "parquet":
            check_bounds(path, name, lines=False)
            yield from _parquet_batches(path, name, batch_rows)
        else:
            check_bounds(path, name, lines=True)
            check_header(path, config, name)
            yield from _csv_batches(path, config, name, batch_rows)
    except FileNotFoundError as exc:
        raise SourceFileVanished(
            f"{name}: the file disappeared between listing and reading; expected it to stay "
            "until ingest finishes; it is not marked as ingested and will be read on the next "
            "run if it comes back"
        ) from exc


def _parquet_batches(path: Path, name: str, batch_rows: int | None) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as handle:
                frame = pd.read_parquet(handle)
            yield from _slices(frame, batch_rows)
            return
        parquet = pq.ParquetFile(path)
        if batch_rows is None or parquet.metadata.num_rows <= batch_rows:
            batches: Iterable[pd.DataFrame] = [pd.read_parquet(path)]
        else:
            batches = (
                pa.Table.from_batches([b]).to_pandas()
                for b in parquet.iter_batches(batch_size=batch_rows)
            )
        yield from batches
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"{name}: not a readable Parquet file ({exc}); expected a complete Parquet file; "
            "re-export it (a file still being written shows as this too)"
        ) from exc


def _slices(frame: pd.DataFrame, batch_rows: int | None) -> Iterator[pd.DataFrame]:
    if batch_rows is None or len(frame) <= batch_rows:
        yield frame
        return
    for lo in range(0, len(frame), batch_rows):
        yield frame.iloc[lo : lo + batch_rows].reset_index(drop=True)


def _csv_batches(
    path: Path, config: FilesConfig, name: str, batch_rows: int | None
) -> Iterator[pd.DataFrame]:
    options = {
        "sep": delimiter_for(name, config),
        "dtype": "str",
        "encoding": config.encoding,
        "compression": "infer",
        "skip_blank_lines": True,
    }
    try:
        if batch_rows is None:
            yield pd.read_csv(path, **options)
            return
        empty = True
        with pd.read_csv(path, chunksize=batch_rows, **options) as reader:
            for chunk in reader:
                empty = False
                yield chunk.reset_index(drop=True)
        if empty:  # a header and no rows: one empty batch, as one read gives
            yield pd.read_csv(path, nrows=0, **options)
    except UnicodeDecodeError as exc:
        where = first_bad_byte(path, config.encoding)
        raise DataError(
            f"{name}: {where} is not valid {config.encoding} text; expected "
            f"{config.encoding}-encoded CSV; re-export the file as UTF-8, or set "
            "ingest.files.encoding (--encoding, e.g. latin-1) to the file's encoding"
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(
            f"{name}: no header line (the file holds only blank lines); expected a header "
            "naming the columns; re-export it, or remove it"
        ) from exc
    except pd.errors.ParserError as exc:
        raise DataError(
            f"{name}: cannot be parsed as {delimiter_for(name, config)!r}-delimited CSV: "
            f"{str(exc).strip()}; expected every line to have the header's fields; check "
            "the delimiter (--delimiter) and that text with delimiters is quoted"
        ) from exc
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataError(
            f"{name}: the gzip data is corrupt or cut short ({exc}); expected a complete "
            ".gz file; copy it again from the source"
        ) from exc
