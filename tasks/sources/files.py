"""The user's own data: CSV or Parquet files (gzip allowed), or a folder of them.

A file's columns are mapped onto the contract with ``FilesConfig`` (``user_col``,
``item_col``, ``timestamp_col``, ``value_col``, ``event_type_col``); columns not mapped
are dropped and listed in the stats. What cannot be read at all (empty file, missing
column, wrong delimiter, bytes that are not the configured encoding, a corrupt gzip or
Parquet file) raises ``DataError`` saying what was expected, what was found and what to
do. Problems of single rows are written into the row's ``ingest_issue`` column and
quarantined by validation (see ``tasks/sources/columns.py`` for the policies).
"""

from __future__ import annotations

import csv
import gzip
import json
import shutil
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.config import FilesConfig
from tasks.errors import DataError
from tasks.sources.columns import (
    ISSUE,
    add_issue,
    most_common_form,
    new_issues,
    normalize_ids,
    parse_timestamps,
    parse_values,
    unify_ids,
)

CSV_SUFFIXES = (".csv", ".tsv")  # not .txt: READMEs and notes land in folders too
PARQUET_SUFFIXES = (".parquet", ".pq")
# Writers put these next to a file while it is being written: never read them.
PARTIAL_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".filepart")
SOURCE_FILE = "source_file"
# Provenance of each row: its record number in its file (1 = the first row after the
# header; for Parquet the row's position in the file) and, for a row with a problem found
# at ingest, the original text of its mapped fields as a JSON object (null otherwise).
# Quarantined rows keep both; accepted rows drop them.
SOURCE_ROW = "source_row"
SOURCE_TEXT = "source_text"
PROVENANCE = (SOURCE_ROW, SOURCE_TEXT)
BATCH_ROWS = 1_000_000  # rows converted at a time when a source is written in batches
_DELIMITERS = (",", ";", "\t", "|")
# Memory bounds, checked by streaming before a file is parsed: a gzip member that inflates
# beyond this (a "gzip bomb", or a dump far larger than a night's drop) and a line longer
# than this (no newline for gigabytes: a wrong file or a broken export) are refused.
MAX_DECOMPRESSED_BYTES = 64 << 30
MAX_LINE_BYTES = 16 << 20


class SourceFileVanished(DataError):
    """A listed file was gone when it was read (moved or deleted by its writer meanwhile)."""


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
            _check_bounds(path, name, lines=False)
            yield from _parquet_batches(path, name, batch_rows)
        else:
            _check_bounds(path, name, lines=True)
            _check_header(path, config, name)
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
            batches = [pd.read_parquet(path)]
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
        where = _first_bad_byte(path, config.encoding)
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


def _check_bounds(path: Path, name: str, lines: bool) -> None:
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


def _check_header(path: Path, config: FilesConfig, name: str) -> None:
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


def _first_bad_byte(path: Path, encoding: str) -> str:
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


def to_contract(
    raw: pd.DataFrame, config: FilesConfig, name: str, decided: dict | None = None
) -> tuple[pd.DataFrame, dict]:
    """Map ``raw``'s columns onto the interactions contract (plus ``ingest_issue``).

    ``decided``: the whole file's decisions (:func:`file_decisions`) when ``raw`` is one
    batch of it; None decides from ``raw``. The stats' ``decisions`` are those applied.
    """
    decided = decided or {}
    mapping = column_mapping(raw, config)
    _check_columns(raw, mapping, config, name)
    _check_flat(raw, mapping, name)
    issues = new_issues(raw.index)
    raw_users, user_unified = unify_ids(raw[mapping["user_id"]])
    raw_items, item_unified = unify_ids(raw[mapping["item_id"]])
    users, user_stats = normalize_ids(raw_users, "user_id", issues, decided.get("user_id"))
    items, item_stats = normalize_ids(raw_items, "item_id", issues, decided.get("item_id"))
    timestamps, ts_stats = parse_timestamps(
        raw[mapping["timestamp"]],
        config.timestamp_unit,
        "timestamp",
        issues,
        decided.get("timestamp"),
    )
    frame = pd.DataFrame({"user_id": users, "item_id": items, "timestamp": timestamps})
    if "value" in mapping:
        frame["value"] = parse_values(raw[mapping["value"]], "value", issues)
    if "event_type" in mapping:
        frame["event_type"] = raw[mapping["event_type"]].astype("str").str.strip()
    frame[ISSUE] = issues.astype("str")
    frame[SOURCE_TEXT] = source_text(raw, list(mapping.values()), issues.notna())
    stats = {
        "rows": len(frame),
        **ts_stats,
        "ids_whitespace_stripped": user_stats["stripped"] + item_stats["stripped"],
        "ids_float_suffix_removed": (
            user_stats["float_suffix_removed"] + item_stats["float_suffix_removed"]
        ),
        "ids_unicode_normalized": user_unified + item_unified,
        "columns_ignored": [c for c in raw.columns if c not in mapping.values()],
        "votes": {"user_id": user_stats["float_vote"], "item_id": item_stats["float_vote"]},
        "decisions": {
            "user_id": user_stats["float_suffix"],
            "item_id": item_stats["float_suffix"],
            "timestamp": ts_stats["timestamp_unit"] if "timestamp_forms" in ts_stats else None,
        },
    }
    return frame.reset_index(drop=True), stats


def column_mapping(raw: pd.DataFrame, config: FilesConfig) -> dict[str, str]:
    """Contract column -> the file's column holding it (value / event_type when present)."""
    mapping = {"user_id": config.user_col, "item_id": config.item_col}
    mapping["timestamp"] = config.timestamp_col
    for target, chosen in (("value", config.value_col), ("event_type", config.event_type_col)):
        if chosen is not None or target in raw.columns:
            mapping[target] = chosen or target
    return mapping


def source_text(raw: pd.DataFrame, columns: list[str], mask: np.ndarray | pd.Series) -> pd.Series:
    """The original text of ``columns`` as a JSON object where ``mask`` holds, else null:
    what the file said before any parsing, for the rows quarantined because of it."""
    out = pd.Series(pd.NA, index=raw.index, dtype="str")
    rows = np.flatnonzero(np.asarray(mask, dtype=bool))
    if not len(rows):
        return out
    columns = list(dict.fromkeys(columns))
    picked = raw.iloc[rows][columns].astype(object)
    out.iloc[rows] = [
        json.dumps(
            {c: None if pd.isna(v) else str(v) for c, v in zip(columns, values)}, ensure_ascii=False
        )
        for values in picked.itertuples(index=False, name=None)
    ]
    return out


def _check_columns(raw: pd.DataFrame, mapping: dict, config: FilesConfig, name: str) -> None:
    options = {"user_id": "--user-col", "item_id": "--item-col", "timestamp": "--timestamp-col"}
    options |= {"value": "--value-col", "event_type": "--event-type-col"}
    missing = [(t, c) for t, c in mapping.items() if c not in raw.columns]
    if not missing:
        return
    target, column = missing[0]
    found = [str(c) for c in raw.columns]
    hint = f"map it with {options[target]}"
    if len(found) == 1:
        used = delimiter_for(name, config)
        other = [d for d in _DELIMITERS if d != used and d in found[0]]
        if other:
            hint = (
                f"the header looks {other[0]!r}-delimited, not {used!r}: "
                f"set --delimiter {other[0]!r}"
            )
    raise DataError(f"{name}: column {column!r} ({target}) missing; found {found}; {hint}")


def _check_flat(raw: pd.DataFrame, mapping: dict, name: str) -> None:
    """Refuse nested (list / struct / map) values in a mapped column: no id or time is in them."""
    for target, column in mapping.items():
        values = raw[column]
        if not pd.api.types.is_object_dtype(values.dtype):
            continue
        nested = values.map(lambda v: isinstance(v, (list, tuple, dict, np.ndarray)))
        if nested.any():
            first = values[nested].iloc[0]
            kind = "a struct/map" if isinstance(first, dict) else "a list"
            raise DataError(
                f"{name}: column {column!r} ({target}) holds nested values ({kind}, e.g. "
                f"{_short(first)}); expected one plain value per row; flatten it upstream "
                "(one row per element, or pick the field) and re-export"
            )


def _short(value: object) -> str:
    text = repr(value.tolist() if isinstance(value, np.ndarray) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def read_interactions(
    path: Path, config: FilesConfig, name: str, batch_rows: int | None = None
) -> tuple[pd.DataFrame, dict]:
    """One file as contract columns, with ``source_file`` = ``name``, in memory."""
    frames: list[pd.DataFrame] = []
    stats = convert_interactions(path, config, name, frames.append, frames.clear, batch_rows)
    return pd.concat(frames, ignore_index=True), stats


def convert_interactions(
    path: Path,
    config: FilesConfig,
    name: str,
    put: Callable[[pd.DataFrame], object],
    restart: Callable[[], object],
    batch_rows: int | None = None,
) -> dict:
    """One file as contract columns, ``put`` a batch of ``batch_rows`` rows at a time
    (None: the whole file at once); the file's stats.

    A few policies depend on the whole file: the timestamp form most values have, and
    whether ids written as "<int>.0" lose the ".0". Each batch decides for itself first;
    in the rare file whose batches decide differently from the whole, ``restart()`` is
    called and the file is converted again with the whole file's decisions.
    """
    stats = _convert(path, config, name, put, batch_rows, None)
    decided = file_decisions(config, stats)
    if stats["batch_decisions"] != [decided]:
        restart()
        stats = _convert(path, config, name, put, batch_rows, decided)
    for internal in ("batch_decisions", "decisions", "votes"):
        stats.pop(internal)
    return stats


def file_decisions(config: FilesConfig, stats: dict) -> dict:
    """The whole file's decisions from its batches' votes."""
    decided: dict = {}
    for column in ("user_id", "item_id"):
        votes = [v for v in stats["votes"][column] if v is not None]
        decided[column] = all(v[0] for v in votes) and any(v[1] for v in votes) if votes else None
    forms = stats.get("timestamp_forms")
    decided["timestamp"] = None
    if forms is not None:
        decided["timestamp"] = (
            most_common_form(forms) if config.timestamp_unit == "auto" else config.timestamp_unit
        )
    return decided


def _convert(
    path: Path,
    config: FilesConfig,
    name: str,
    put: Callable[[pd.DataFrame], object],
    batch_rows: int | None,
    decided: dict | None,
) -> dict:
    stats: dict = {}
    rows_before = 0
    # The last batch waits for the tail check, with its raw last row and field count.
    pending: tuple[pd.DataFrame, pd.DataFrame, int] | None = None
    for raw in iter_table(path, config, name, batch_rows):
        if pending is not None:
            put(pending[0])
        frame, batch = to_contract(raw, config, name, decided)
        frame[SOURCE_FILE] = pd.array([name] * len(frame), dtype="str")
        frame[SOURCE_ROW] = np.arange(rows_before + 1, rows_before + len(frame) + 1, dtype=np.int64)
        frame[SOURCE_TEXT] = frame.pop(SOURCE_TEXT)  # provenance columns last
        rows_before += len(frame)
        _add_batch(stats, batch)
        pending = (frame, raw.iloc[-1:], len(raw.columns))
    frame, last_raw, n_fields = pending
    if file_kind(path) == "csv" and len(frame):
        problem = truncated_last_line(path, config, n_fields)
        if problem:
            issues = frame[ISSUE].astype(object)
            add_issue(issues, frame.index == frame.index[-1], problem)
            frame[ISSUE] = issues.astype("str")
            columns = [c for c in column_mapping(last_raw, config).values() if c in last_raw]
            frame.loc[frame.index[-1], SOURCE_TEXT] = source_text(last_raw, columns, [True]).iloc[0]
        stats["truncated_last_line"] = bool(problem)
    put(frame)
    return stats


def _add_batch(stats: dict, batch: dict) -> None:
    """Fold one batch's stats into the file's."""
    if not stats:
        stats.update(batch, votes={k: [] for k in batch["votes"]}, batch_decisions=[])
        stats["rows"] = 0
        stats["ids_whitespace_stripped"] = stats["ids_float_suffix_removed"] = 0
        stats["ids_unicode_normalized"] = 0
        stats.pop("timestamps_without_zone", None)
        if "timestamp_forms" in batch:
            stats["timestamp_forms"] = {}
    stats["rows"] += batch["rows"]
    stats["ids_whitespace_stripped"] += batch["ids_whitespace_stripped"]
    stats["ids_float_suffix_removed"] += batch["ids_float_suffix_removed"]
    stats["ids_unicode_normalized"] += batch["ids_unicode_normalized"]
    if batch.get("timestamps_without_zone"):
        stats["timestamps_without_zone"] = (
            stats.get("timestamps_without_zone", 0) + batch["timestamps_without_zone"]
        )
    for kind, n in batch.get("timestamp_forms", {}).items():
        stats["timestamp_forms"][kind] = stats["timestamp_forms"].get(kind, 0) + n
    for column, vote in batch["votes"].items():
        stats["votes"][column].append(vote)
    stats["timestamp_unit"] = batch["timestamp_unit"]
    decision = batch["decisions"]
    if decision not in stats["batch_decisions"]:
        stats["batch_decisions"].append(decision)


def data_files(config: FilesConfig) -> tuple[Path, list[Path], list[str]]:
    """The input root, its data files and what was skipped; a clear error when there are none."""
    if config.path is None:
        raise DataError(
            "source 'files' needs ingest.files.path; expected a CSV/Parquet file or a folder; "
            "pass --path"
        )
    root = Path(config.path).expanduser()
    paths, skipped = list_data_files(root)
    if not paths:
        raise DataError(
            f"{root}: no CSV or Parquet files in the folder ({len(skipped)} other files); "
            "expected .csv/.tsv/.parquet files (optionally .gz); check --path"
        )
    return root, paths, skipped


def _name(root: Path, path: Path) -> str:
    return path.name if path == root else path.relative_to(root).as_posix()


def read_files(config: FilesConfig) -> tuple[pd.DataFrame, dict]:
    """The "files" source: every file under ``config.path``, read now, concatenated."""
    root, paths, skipped = data_files(config)
    frames, per_file = [], {}
    for path in paths:
        frame, per_file[_name(root, path)] = read_interactions(path, config, _name(root, path))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True), {"files": per_file, "files_skipped": skipped}


def write_files(config: FilesConfig, dest: Path, batch_rows: int = BATCH_ROWS) -> dict:
    """The "files" source written to the Parquet file ``dest`` a batch at a time, so memory
    holds one batch, not the table; the same rows as :func:`read_files`, in the same order.
    Stats as :func:`read_files`'s, with ``rows``."""
    from tasks.storage.parquet import ParquetAppender, concat_parquet

    root, paths, skipped = data_files(config)
    work = dest.with_name(f".{dest.name}.parts")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        parts, per_file = [], {}
        for i, path in enumerate(paths):
            part = ParquetAppender(work / f"file-{i:05d}.parquet")
            with part:
                per_file[_name(root, path)] = convert_interactions(
                    path, config, _name(root, path), part.append, part.restart, batch_rows
                )
            parts.append(part.path)
        rows = concat_parquet(parts, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"files": per_file, "files_skipped": skipped, "rows": rows}


def read_items_catalog(path: Path, config: FilesConfig) -> pd.DataFrame:
    """An item catalog file: the item column (``item_col`` or ``item_id``) plus metadata."""
    path = Path(path).expanduser()
    raw = read_table(path, config)
    column = config.item_col if config.item_col in raw.columns else "item_id"
    if column not in raw.columns:
        raise DataError(
            f"{path.name}: item catalog needs column {config.item_col!r}; found "
            f"{list(raw.columns)}; map it with --item-col or rename the column to item_id"
        )
    issues = new_issues(raw.index)
    ids = unify_ids(raw[column])[0]  # as interactions' ids are, so the two still match
    items = pd.DataFrame({"item_id": normalize_ids(ids, "item_id", issues)[0]})
    for extra in ("title", "genres"):
        if extra in raw.columns:
            items[extra] = raw[extra].astype("str")
    if "year" in raw.columns:
        items["year"] = pd.to_numeric(raw["year"], errors="coerce").round().astype("Int64")
    return items
