"""The user's own data: CSV or Parquet files (gzip allowed), or a folder of them.

Each file under ``ingest.files.path`` (tasks/sources/file_listing.py) is read
(tasks/sources/file_reader.py), mapped onto the interactions contract
(tasks/sources/mapping.py) and given its provenance (``source_file``, ``source_row``), a
batch of rows at a time when written to Parquet. What cannot be read at all raises
``DataError`` saying what was expected, what was found and what to do. Problems of single
rows are written into the row's ``ingest_issue`` column and quarantined by validation
(see ``tasks/sources/columns.py`` for the policies).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tasks.config import ContentConfig, FilesConfig
from tasks.errors import DataError
from tasks.sources.columns import (
    ISSUE,
    add_issue,
    most_common_form,
    new_issues,
    normalize_ids,
    unify_ids,
)
from tasks.sources.file_checks import truncated_last_line
from tasks.sources.file_listing import file_kind, list_data_files
from tasks.sources.file_reader import iter_table, read_table
from tasks.sources.mapping import (
    SOURCE_FILE,
    SOURCE_ROW,
    SOURCE_TEXT,
    column_mapping,
    source_text,
    to_contract,
)

if TYPE_CHECKING:
    from tasks.data.content import ContentSchema

BATCH_ROWS = 1_000_000  # rows converted at a time when a source is written in batches


def read_interactions(
    path: Path,
    config: FilesConfig,
    name: str,
    batch_rows: int | None = None,
    stamp: pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, dict]:
    """One file as contract columns, with ``source_file`` = ``name``, in memory.
    ``stamp``: every event's time when the data has no timestamp column."""
    frames: list[pd.DataFrame] = []
    stats = convert_interactions(path, config, name, frames.append, frames.clear, batch_rows, stamp)
    return pd.concat(frames, ignore_index=True), stats


def convert_interactions(
    path: Path,
    config: FilesConfig,
    name: str,
    put: Callable[[pd.DataFrame], object],
    restart: Callable[[], object],
    batch_rows: int | None = None,
    stamp: pd.Timestamp | None = None,
) -> dict:
    """One file as contract columns, ``put`` a batch of ``batch_rows`` rows at a time
    (None: the whole file at once); the file's stats.

    A few policies depend on the whole file: the timestamp form most values have, and
    whether ids written as "<int>.0" lose the ".0". Each batch decides for itself first;
    in the rare file whose batches decide differently from the whole, ``restart()`` is
    called and the file is converted again with the whole file's decisions.
    """
    stats = _convert(path, config, name, put, batch_rows, None, stamp)
    decided = file_decisions(config, stats)
    if stats["batch_decisions"] != [decided]:
        restart()
        stats = _convert(path, config, name, put, batch_rows, decided, stamp)
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
    stamp: pd.Timestamp | None = None,
) -> dict:
    stats: dict = {}
    rows_before = 0
    # The last batch waits for the tail check, with its raw last row and field count.
    pending: tuple[pd.DataFrame, pd.DataFrame, int] | None = None
    for raw in iter_table(path, config, name, batch_rows):
        if pending is not None:
            put(pending[0])
        frame, batch = to_contract(raw, config, name, decided, stamp)
        frame[SOURCE_FILE] = pd.array([name] * len(frame), dtype="str")
        frame[SOURCE_ROW] = np.arange(rows_before + 1, rows_before + len(frame) + 1, dtype=np.int64)
        frame[SOURCE_TEXT] = frame.pop(SOURCE_TEXT)  # provenance columns last
        rows_before += len(frame)
        _add_batch(stats, batch)
        pending = (frame, raw.iloc[-1:], len(raw.columns))
    assert pending is not None, "iter_table yields at least one batch"
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
    return data_files_at(
        config.path,
        "source 'files' needs ingest.files.path; expected a CSV/Parquet file or a folder; "
        "pass --path",
        "{root}: no CSV or Parquet files in the folder ({others} other files); "
        "expected .csv/.tsv/.parquet files (optionally .gz); check --path",
    )


def data_files_at(
    path: Path | str | None, missing: str, empty: str
) -> tuple[Path, list[Path], list[str]]:
    """The root ``path``, its data files and what was skipped. ``missing``: the error
    when no path is configured; ``empty``: when it holds no data file (formatted with
    ``root`` and ``others``, the number of other files)."""
    if path is None:
        raise DataError(missing)
    root = Path(path).expanduser()
    paths, skipped = list_data_files(root)
    if not paths:
        raise DataError(empty.format(root=root, others=len(skipped)))
    return root, paths, skipped


def _name(root: Path, path: Path) -> str:
    return path.name if path == root else path.relative_to(root).as_posix()


def read_files(config: FilesConfig, stamp: pd.Timestamp | None = None) -> tuple[pd.DataFrame, dict]:
    """The "files" source: every file under ``config.path``, read now, concatenated.
    ``stamp``: every event's time when the data has no timestamp column."""
    root, paths, skipped = data_files(config)
    frames, per_file = [], {}
    for path in paths:
        name = _name(root, path)
        frame, per_file[name] = read_interactions(path, config, name, stamp=stamp)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True), {"files": per_file, "files_skipped": skipped}


def write_files(
    config: FilesConfig,
    dest: Path,
    batch_rows: int = BATCH_ROWS,
    stamp: pd.Timestamp | None = None,
) -> dict:
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
                    path, config, _name(root, path), part.append, part.restart, batch_rows, stamp
                )
            parts.append(part.path)
        rows = concat_parquet(parts, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"files": per_file, "files_skipped": skipped, "rows": rows}


def read_items_catalog(path: Path, config: FilesConfig) -> pd.DataFrame:
    """An item catalog file: the item column (``item_col`` or ``item_id``) plus metadata."""
    path = Path(path).expanduser()
    return _catalog_frame(read_table(path, config), path, config)


def read_catalog_content(
    path: Path, config: FilesConfig, content: ContentConfig
) -> tuple[pd.DataFrame, ContentSchema]:
    """:func:`read_items_catalog` plus the catalogue's content columns (declared or
    detected, tasks/data/content.py), image paths resolved against the file's folder;
    and their schema."""
    from tasks.data.content import content_columns, content_schema, resolve_images

    path = Path(path).expanduser()
    raw = read_table(path, config)
    items = _catalog_frame(raw, path, config)
    others = raw.drop(columns=[_item_column(raw, config)])
    schema = content_schema(others, content, path.parent.resolve())
    extra = [c for c in content_columns(others, schema) if c not in items.columns]
    items = pd.concat([items, resolve_images(others[extra], schema, path.parent.resolve())], axis=1)
    return items, schema


def _item_column(raw: pd.DataFrame, config: FilesConfig) -> str:
    return config.item_col if config.item_col in raw.columns else "item_id"


def _catalog_frame(raw: pd.DataFrame, path: Path, config: FilesConfig) -> pd.DataFrame:
    column = _item_column(raw, config)
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
