"""Checks of a data file's bytes, each one streamed pass in bounded memory.

Before a file is parsed: a gzip member that inflates beyond ``MAX_DECOMPRESSED_BYTES``
and a line longer than ``MAX_LINE_BYTES`` are refused, and so is a CSV header naming a
column twice. When a file cannot be decoded: where its first bad byte is. After a CSV is
read: whether its last line was cut short (a file copied while still being written).
"""

from __future__ import annotations

import csv
import gzip
import zlib
from pathlib import Path

from tasks.config import FilesConfig
from tasks.errors import DataError
from tasks.sources.file_listing import delimiter_for

# Memory bounds, checked by streaming before a file is parsed: a gzip member that inflates
# beyond this (a "gzip bomb", or a dump far larger than a night's drop) and a line longer
# than this (no newline for gigabytes: a wrong file or a broken export) are refused.
MAX_DECOMPRESSED_BYTES = 64 << 30
MAX_LINE_BYTES = 16 << 20


def check_bounds(path: Path, name: str, lines: bool) -> None:
    """Stream the file once (bounded memory): refuse a gzip that inflates beyond
    ``MAX_DECOMPRESSED_BYTES`` and, with ``lines``, a line longer than ``MAX_LINE_BYTES``."""
    zipped = path.name.lower().endswith(".gz")
    if not zipped and not lines:
        return
    total = run = newlines = 0
    try:
        with (gzip.open if zipped else open)(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                total += len(chunk)
                if zipped and total > MAX_DECOMPRESSED_BYTES:
                    raise DataError(
                        f"{name}: the gzip data inflates to more than {MAX_DECOMPRESSED_BYTES:,} "
                        "bytes (the cap), so it is not read; expected a night's drop; split "
                        "the export into smaller files (or check it is the right file)"
                    )
                if not lines:
                    continue
                parts = chunk.split(b"\n")
                lengths = [run + len(parts[0]), *map(len, parts[1:])]
                longest = max(lengths)
                if longest > MAX_LINE_BYTES:
                    line = newlines + lengths.index(longest) + 1
                    raise DataError(
                        f"{name}: line {line} is longer than {MAX_LINE_BYTES:,} bytes (the "
                        "cap), so the file is not read; expected one event per line; check "
                        "the line endings and the quoting of the export"
                    )
                newlines += len(parts) - 1
                run = lengths[-1]
    except (gzip.BadGzipFile, EOFError, zlib.error):
        return  # reported by the reader with its own message


def check_header(path: Path, config: FilesConfig, name: str) -> None:
    """Refuse a CSV whose header names a column twice: which copy holds the data is a guess."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            first = handle.readline(1 << 20)
    except (gzip.BadGzipFile, EOFError, zlib.error):
        return  # reported by the reader with its own message
    line = first.decode(config.encoding, errors="replace").lstrip("\ufeff").rstrip("\r\n")
    columns = [
        c.strip() for c in next(csv.reader([line], delimiter=delimiter_for(name, config)), [])
    ]
    seen: set[str] = set()
    for column in columns:
        if column in seen:
            raise DataError(
                f"{name}: column {column!r} appears more than once in the header {columns}; "
                "expected each column name once; rename or remove the extra column"
            )
        seen.add(column)


def first_bad_byte(path: Path, encoding: str) -> str:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        data = handle.read()
    try:
        data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return f"byte {data[exc.start : exc.start + 1]!r} on line {line} (offset {exc.start})"
    return "a byte"


def truncated_last_line(path: Path, config: FilesConfig, n_fields: int) -> str | None:
    """A sentence when the file ends without a newline in a line shorter than the header."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        tail = b""
        while chunk := handle.read(1 << 20):
            tail = (tail + chunk)[-(1 << 16) :]
    if not tail or tail.endswith((b"\n", b"\r")):
        return None
    last = tail.rsplit(b"\n", 1)[-1].decode(config.encoding, errors="replace")
    fields = next(csv.reader([last], delimiter=delimiter_for(path.name, config)), [])
    if len(fields) >= n_fields:
        return None
    return (
        f"last line truncated: {len(fields)} of {n_fields} fields and no newline at the end "
        "of the file (was it copied while still being written?)"
    )
