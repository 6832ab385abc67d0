"""Lake tables: Delta Lake tables (delta-rs) partitioned by ``run_date``.

One table per output under ``<workspace>/tables/<name>``. Publishing a run date is one
Delta commit: a predicate overwrite that replaces that date's rows (and drops the dates
beyond ``keep_runs`` in the same commit). A commit is atomic: readers see the table
before or after it, never a half-written date, and delta-rs detects conflicting writers
(two dates writing at once touch different partitions and both commit).

Every commit carries the publish id (``recpipe.publish_id``) in its commit info and as a
Delta application transaction, so a publish that was interrupted can ask the table
whether its commit landed (:func:`is_committed`) and never writes twice. Earlier
versions stay readable (time travel) until :func:`vacuum` removes files older than the
retention; ``recpipe recs rollback`` reads a date back from them.

Readers: ``deltalake.DeltaTable(path).to_pandas()``, ``polars.read_delta(path)``, Spark's
``delta`` format, DuckDB through ``DeltaTable(path).to_pyarrow_dataset()``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.storage.parquet import parquet_rows

COMMIT_RETRIES = 8
APP_PREFIX = "recpipe-publish:"
REFRESHED_AT = "refreshed_at"
REFRESHED_AT_TYPE = pa.timestamp("us", tz="UTC")


def is_table(root: Path) -> bool:
    return (Path(root) / "_delta_log").is_dir()


def _dt(root: Path, version: int | None = None) -> Any:
    from deltalake import DeltaTable

    return DeltaTable(str(root), version=version)


def published_dates(root: Path) -> list[date]:
    """The run dates the table holds now, oldest first."""
    if not is_table(root):
        return []
    parts = _dt(root).partitions()
    return sorted({date.fromisoformat(p["run_date"]) for p in parts if p.get("run_date")})


def kept_dates(existing: list[date], run_date: date, keep_runs: int | None) -> list[date]:
    """The dates a table holds after publishing ``run_date``: the newest ``keep_runs``."""
    dates = sorted(set(existing) | {run_date})
    return dates if not keep_runs else dates[-keep_runs:]


def _with_run_date(table: pa.Table, run_date: date) -> pa.Table:
    if "run_date" in table.column_names:
        table = table.drop_columns(["run_date"])
    column = pa.array([run_date] * len(table), pa.date32())
    # run_date second, as in the table contract (run_id, run_date, ...)
    return table.add_column(1, pa.field("run_date", pa.date32()), column)


def parquet_files(source: Path) -> list[Path]:
    """A Parquet file, or a folder's ``*.parquet`` files in name order."""
    source = Path(source)
    files = sorted(source.glob("*.parquet")) if source.is_dir() else [source]
    if not files or not files[0].exists():
        raise FileNotFoundError(f"{source}: no Parquet files to publish")
    return files


def iter_batches(source: Path, batch_size: int = 200_000) -> Iterator[pa.RecordBatch]:
    """Record batches of a Parquet file or folder of part files, in order."""
    for path in parquet_files(source):
        yield from pq.ParquetFile(path).iter_batches(batch_size=batch_size)


def _reader(
    source: Path,
    run_date: date,
    schema: pa.Schema,
    stamp: str | None,
    refreshed_at: datetime | None = None,
) -> pa.RecordBatchReader:
    def batches() -> Iterator[pa.RecordBatch]:
        for batch in iter_batches(source):
            if batch.num_rows:
                table = _with_run_date(pa.Table.from_batches([batch]), run_date)
                if stamp is not None:
                    at = table.schema.get_field_index("run_id")
                    column = pa.array([stamp] * len(table), table.schema.field(at).type)
                    table = table.set_column(at, table.schema.field(at), column)
                table = with_refreshed_at(table, refreshed_at)
                yield from table.cast(schema).to_batches()

    return pa.RecordBatchReader.from_batches(schema, batches())


def with_refreshed_at(table: pa.Table, when: datetime | None) -> pa.Table:
    """``table`` with column ``refreshed_at`` (UTC) set to ``when`` where it has none."""
    if when is None or REFRESHED_AT in table.column_names:
        return table
    column = pa.array([when] * len(table), REFRESHED_AT_TYPE)
    return table.append_column(pa.field(REFRESHED_AT, REFRESHED_AT_TYPE), column)


def _schema(source: Path, run_date: date, refreshed_at: datetime | None = None) -> pa.Schema:
    schema = pq.read_schema(parquet_files(source)[0]).remove_metadata()
    return with_refreshed_at(_with_run_date(schema.empty_table(), run_date), refreshed_at).schema


def _predicate(dates: list[date]) -> str:
    return " OR ".join(f"run_date = '{d.isoformat()}'" for d in sorted(set(dates)))


@dataclass(frozen=True)
class LakeCommit:
    version: int
    rows: int
    dropped: list[str]


def is_committed(root: Path, publish_id: str) -> bool:
    """Did ``publish_id`` commit to this table (its application transaction is there)?"""
    if not is_table(root):
        return False
    return _dt(root).transaction_version(APP_PREFIX + publish_id) is not None


def version_of(root: Path, publish_id: str, depth: int = 50) -> int:
    """The table version ``publish_id`` committed as (searched in the newest ``depth``
    commits; -1 when it is older than that)."""
    for entry in _dt(root).history(limit=depth):
        if entry.get("recpipe.publish_id") == publish_id:
            return int(entry["version"])
    return -1


def write_date(
    root: Path,
    source: Path,
    run_date: date,
    publish_id: str,
    keep_runs: int | None = None,
    metadata: dict[str, str] | None = None,
    stamp: str | None = None,
    refreshed_at: datetime | None = None,
    covers: tuple[str, ...] = (),
) -> LakeCommit:
    """Replace ``run_date``'s rows with ``source``'s (a Parquet file or folder) in one
    commit; dates beyond ``keep_runs`` go in the same commit. Idempotent per publish id.
    ``stamp``: the ``run_id`` every row gets. ``covers``: earlier publishes whose lake
    commits were lost and whose rows this commit brings (``recpipe doctor --repair``),
    recorded as committed with it.
    ``refreshed_at``: the time rows without a ``refreshed_at`` get. A column the table
    does not have yet is added (older rows read it as null)."""
    root = Path(root)
    schema = _schema(source, run_date, refreshed_at)

    def plan() -> tuple[Any, str, list[date]]:
        existing = published_dates(root)
        keep = kept_dates(existing, run_date, keep_runs)
        dropped = [d for d in existing if d not in keep]
        # A date older than the kept window is dropped at once, as in the database.
        data = (
            _reader(source, run_date, schema, stamp, refreshed_at)
            if run_date in keep
            else schema.empty_table()
        )
        return data, _predicate([run_date, *dropped]), dropped

    rows = sum(parquet_rows(p) for p in parquet_files(source))
    return _overwrite(root, publish_id, run_date, metadata, rows, plan, covers)


def _overwrite(
    root: Path,
    publish_id: str,
    run_date: date,
    metadata: dict[str, str] | None,
    rows: int,
    plan: Callable[[], tuple[Any, str, list[date]]],
    covers: tuple[str, ...] = (),
) -> LakeCommit:
    """One predicate overwrite of ``run_date``'s partition, committed once per publish id
    and tried again when a concurrent writer commits first; ``plan()``, asked again on
    each try, gives the data, the predicate and the dates the commit drops."""
    from deltalake import write_deltalake
    from deltalake.exceptions import CommitFailedError

    for attempt in range(COMMIT_RETRIES):
        if is_committed(root, publish_id):
            return LakeCommit(version_of(root, publish_id), rows, [])
        data, predicate, dropped = plan()
        try:
            write_deltalake(
                str(root),
                data,
                mode="overwrite",
                partition_by=["run_date"],
                predicate=predicate,
                commit_properties=_commit_properties(publish_id, run_date, metadata, covers),
                schema_mode="merge",
            )
        except CommitFailedError:
            if attempt == COMMIT_RETRIES - 1:
                raise
            time.sleep(0.2 * (attempt + 1))  # a concurrent writer touched the same rows
            continue
        return LakeCommit(version_of(root, publish_id), rows, [d.isoformat() for d in dropped])
    raise AssertionError("unreachable")


def _commit_properties(
    publish_id: str, run_date: date, metadata: dict[str, str] | None, covers: tuple[str, ...] = ()
) -> Any:
    """A publish's commit: its id and date in the commit's metadata, and the id (with the
    ids it ``covers``) as a Delta application transaction (so the same publish is never
    committed twice)."""
    from deltalake.transaction import CommitProperties, Transaction

    return CommitProperties(
        custom_metadata={
            "recpipe.publish_id": publish_id,
            "recpipe.run_date": run_date.isoformat(),
            **(metadata or {}),
        },
        app_transactions=[
            Transaction(app_id=APP_PREFIX + pid, version=1) for pid in (publish_id, *covers)
        ],
    )


def _quoted(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def replace_users(
    root: Path,
    rows: pa.Table,
    run_date: date,
    user_ids: list[str],
    publish_id: str,
    metadata: dict[str, str] | None = None,
) -> LakeCommit:
    """Replace the rows of ``user_ids`` for ``run_date`` by ``rows`` (all of them users of
    ``user_ids``, of that date) in ONE commit: a predicate overwrite on the date and the
    user ids. Other users' rows keep their values. Idempotent per publish id."""
    root = Path(root)
    rows = _with_run_date(rows, run_date)
    users = ", ".join(_quoted(u) for u in sorted(set(user_ids)))
    predicate = f"run_date = '{run_date.isoformat()}' AND user_id IN ({users})"
    return _overwrite(
        root, publish_id, run_date, metadata, len(rows), lambda: (rows, predicate, [])
    )


def read_table(
    root: Path, run_date: date | None = None, version: int | None = None
) -> pd.DataFrame:
    """A lake table (one date, or all; the current version or an earlier one)."""
    if not is_table(root):
        raise FileNotFoundError(f"{root}: no lake table here (no _delta_log)")
    filters = [("run_date", "=", run_date)] if run_date else None
    table = _dt(root, version).to_pyarrow_table(filters=filters)
    return table.to_pandas(types_mapper=pd.ArrowDtype)


def history(root: Path, run_date: date | None = None) -> list[dict]:
    """The table's recpipe commits, newest first: version, publish id, run date, source
    run id and time; only ``run_date``'s when given."""
    if not is_table(root):
        return []
    out = []
    for entry in _dt(root).history():
        publish_id = entry.get("recpipe.publish_id")
        if publish_id is None:
            continue
        if run_date is not None and entry.get("recpipe.run_date") != run_date.isoformat():
            continue
        out.append(
            {
                "version": entry.get("version"),
                "publish_id": publish_id,
                "run_date": entry.get("recpipe.run_date"),
                "source_run_id": entry.get("recpipe.source_run_id"),
                "timestamp": entry.get("timestamp"),
            }
        )
    return sorted(out, key=lambda e: e["version"], reverse=True)


def vacuum(root: Path, retention_hours: float) -> int:
    """Delete data files no version younger than ``retention_hours`` needs; how many."""
    if not is_table(root):
        return 0
    removed = _dt(root).vacuum(
        retention_hours=int(retention_hours), enforce_retention_duration=False, dry_run=False
    )
    return len(removed)


def sweep_legacy(root: Path) -> list[str]:
    """Turn a table of plain ``run_date=`` Parquet folders (the layout before lake
    tables) into a Delta table in place, after removing the half-swapped ``.staging-*``
    and ``.old-*`` folders a killed run may have left; what was removed."""
    root = Path(root)
    removed: list[str] = []
    if not root.is_dir():
        return removed
    for leftover in sorted(root.glob(".staging-*")) + sorted(root.glob(".old-*")):
        shutil.rmtree(leftover, ignore_errors=True)
        removed.append(leftover.name)
    if not is_table(root) and any(root.glob("run_date=*/*.parquet")):
        from deltalake import Field, Schema, convert_to_deltalake

        convert_to_deltalake(
            str(root),
            # deltalake's stub types Field's type as DataType only; it documents and accepts "date"
            partition_by=Schema([Field("run_date", "date")]),  # type: ignore[arg-type]  # str is ok
            partition_strategy="hive",
        )
    return removed


# -- erasure (tasks/forget) ---------------------------------------------------------------
def _sql_list(values: list[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(values))


def delete_users(root: Path, user_ids: list[str], erasure_id: str, column: str = "user_id") -> int:
    """Delete every row of ``user_ids`` in one commit (none when the table holds none);
    the rows deleted. The commit carries ``recpipe.erasure_id``, never the ids."""
    from deltalake.transaction import CommitProperties

    root = Path(root)
    if not is_table(root) or not user_ids:
        return 0
    table = _dt(root)
    if column not in table.schema().to_arrow().names:
        return 0
    predicate = f"{column} IN ({_sql_list(user_ids)})"
    metrics = table.delete(
        predicate,
        commit_properties=CommitProperties(custom_metadata={"recpipe.erasure_id": erasure_id}),
    )
    return int(metrics.get("num_deleted_rows", 0) or 0)


def purge_history(root: Path) -> dict[str, int]:
    """Make the current version the only one: vacuum every file it does not need, write
    a checkpoint and delete the log entries before it (their statistics name rows that
    are gone). Earlier versions are no longer readable afterwards; idempotent."""
    root = Path(root)
    if not is_table(root):
        return {"files": 0, "log_entries": 0}
    files = vacuum(root, 0)
    table = _dt(root)
    version = table.version()
    table.create_checkpoint()
    log = root / "_delta_log"
    gone = 0
    for entry in sorted(log.iterdir()):
        stem = entry.name.split(".", 1)[0]
        if not stem.isdigit() or int(stem) >= version:
            if entry.name.endswith(".crc") and stem.isdigit() and int(stem) < version:
                entry.unlink(missing_ok=True)
            continue
        entry.unlink(missing_ok=True)  # older commits and checkpoints
        gone += 1
    return {"files": files, "log_entries": gone}
