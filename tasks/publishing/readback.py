"""Reading the published stores back to check them: each store's dates and row counts,
one date's rows as Arrow batches (for its digest), the publish log, and each store's
own integrity (the Delta log and the files it lists; SQLite's ``integrity_check`` or
PostgreSQL's catalog).

The database side reads a date through ADBC on SQLite (Arrow straight from the file,
several times faster than row tuples), through SQLAlchemy elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa

from tasks.publishing.digest import COLUMNS, Accumulator, Digest
from tasks.storage import database as db
from tasks.storage import lake

BATCH_ROWS = 250_000
NULLABLE = ("reason", "refreshed_at")


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


# -- the lake -------------------------------------------------------------------------------
def delta_log_problems(root: Path) -> list[str]:
    """What is wrong with a lake table's log: a version file that is empty or not JSON, a
    gap in the versions, a table that does not load. Empty when the log is whole."""
    log = Path(root) / "_delta_log"
    if not log.is_dir():
        return []
    problems = []
    versions = sorted(int(p.name[:20]) for p in log.glob("*.json") if p.name[:20].isdigit())
    for version in versions:
        path = log / f"{version:020d}.json"
        try:
            lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line]
            if not lines:
                raise ValueError("the file is empty")
            for line in lines:
                json.loads(line)
        except (OSError, ValueError) as exc:
            problems.append(f"version {version} ({path.name}) is unreadable: {exc}")
    start = checkpoint_version(root)
    expected = set(range(start if start is not None else 0, (versions or [0])[-1] + 1))
    gaps = sorted(expected - set(versions) - ({start} if start is not None else set()))
    if gaps and versions:
        problems.append(f"versions {gaps} are missing from the log")
    if not problems:
        try:
            lake._dt(root)
        except Exception as exc:  # noqa: BLE001 - whatever delta-rs says is the problem
            problems.append(f"the table does not load: {type(exc).__name__}: {exc}")
    return problems


def checkpoint_version(root: Path) -> int | None:
    """The version of the newest checkpoint named by ``_last_checkpoint`` (None: none)."""
    path = Path(root) / "_delta_log" / "_last_checkpoint"
    try:
        return int(json.loads(path.read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def lake_counts(root: Path) -> tuple[dict[date, int | None], dict[date, list[str]]]:
    """Per date of the current version: rows (from the log's statistics, no data read;
    None where a file has none, as in a table converted from plain Parquet) and the data
    files it lists that are missing on disk."""
    if not lake.is_table(root):
        return {}, {}
    actions = pa.table(lake._dt(root).get_add_actions(flatten=True))
    counts: dict[date, int | None] = {}
    missing: dict[date, list[str]] = {}
    paths = actions.column("path").to_pylist()
    days = actions.column("partition.run_date").to_pylist()
    rows = actions.column("num_records").to_pylist()
    for path, day, n in zip(paths, days, rows, strict=True):
        day = _day(day)
        known = counts.get(day, 0)
        counts[day] = None if n is None or known is None else known + int(n)
        if not (Path(root) / path).exists():
            missing.setdefault(day, []).append(path)
    return counts, missing


def lake_batches(root: Path, kind: str, day: date, version: int | None = None) -> Iterator[Any]:
    """The rows of ``day`` in a lake table, in batches (the contract's columns)."""
    dataset = lake._dt(root, version).to_pyarrow_dataset()
    names = [c for c in COLUMNS[kind] if c in dataset.schema.names]
    import pyarrow.dataset as ds

    yield from dataset.to_batches(columns=names, filter=ds.field("run_date") == day)


def lake_digest(root: Path, kind: str, day: date) -> Digest:
    acc = Accumulator(kind)
    for batch in lake_batches(root, kind, day):
        acc.add(batch)
    return acc.result()


def lake_publishes(root: Path, publish_ids: list[str]) -> set[str]:
    """The publishes among ``publish_ids`` that committed to this lake table."""
    if not lake.is_table(root) or not publish_ids:
        return set()
    table = lake._dt(root)
    return {p for p in publish_ids if table.transaction_version(lake.APP_PREFIX + p) is not None}


# -- the database ---------------------------------------------------------------------------
def database_problem(engine: Any, names: list[str]) -> str | None:
    """What is wrong with the database itself (None: nothing): SQLite's ``integrity_check``;
    on PostgreSQL, the tables, their indexes and the publish log present and readable."""
    import sqlalchemy as sa

    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                found = [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check")]
                if found != ["ok"]:
                    return "SQLite integrity_check: " + " ".join("; ".join(found[:3]).split())
                return None
            inspector = sa.inspect(conn)
            for name in [*names, db.LOG_TABLE]:
                if not inspector.has_table(name):
                    continue
                for index in inspector.get_indexes(name):
                    if not index.get("column_names"):
                        return f"index {index['name']} of {name} has no columns"
                conn.execute(sa.text(f'SELECT 1 FROM "{name}" LIMIT 1')).all()
    except Exception as exc:  # noqa: BLE001 - any failure here is the finding
        text = " ".join(str(getattr(exc, "orig", None) or exc).split())
        return f"{type(exc).__name__}: {text[:300]}"
    return None


def database_counts(engine: Any, name: str) -> dict[date, int]:
    import sqlalchemy as sa

    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(name):
            return {}
        rows = conn.execute(sa.text(f'SELECT run_date, COUNT(*) FROM "{name}" GROUP BY run_date'))
        return {_day(d): int(n) for d, n in rows}


def database_digest(engine: Any, name: str, kind: str, day: date) -> Digest:
    acc = Accumulator(kind)
    for batch in database_batches(engine, name, kind, day):
        acc.add(batch)
    return acc.result()


def database_batches(engine: Any, name: str, kind: str, day: date) -> Iterator[Any]:
    """The rows of ``day`` in a database table, in Arrow batches (the contract's columns
    the table has)."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        have = {c["name"] for c in sa.inspect(conn).get_columns(name)}
    names = [c for c in COLUMNS[kind] if c in have]
    if engine.dialect.name == "sqlite":
        try:
            yield from _sqlite_batches(engine, name, names, day)
            return
        except ImportError:
            pass  # no ADBC driver: the slower path below
    import pandas as pd

    table = db.sql_table(name, kind)
    query = sa.select(*[table.c[n] for n in names]).where(table.c.run_date == day)
    with engine.connect() as conn:
        for frame in pd.read_sql(query, conn, chunksize=BATCH_ROWS):
            yield pa.Table.from_pandas(frame, preserve_index=False)


def _sqlite_batches(engine: Any, name: str, names: list[str], day: date) -> Iterator[Any]:
    """ADBC types a column from its first batch, so a nullable column is read as text
    (``''`` for null) beside a flag saying which rows are null."""
    import adbc_driver_sqlite.dbapi as adbc
    import pyarrow.compute as pc

    columns = []
    for n in names:
        if n in NULLABLE:
            columns += [f'ifnull("{n}", \'\') AS "{n}"', f'"{n}" IS NULL AS "{n}__null"']
        else:
            columns.append(f'"{n}"')
    sql = f'SELECT {", ".join(columns)} FROM "{name}" WHERE run_date = ?'
    path = engine.url.database
    with adbc.connect(f"file:{path}?mode=ro") as conn, conn.cursor() as cursor:
        cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(BATCH_ROWS)})
        cursor.execute(sql, (day.isoformat(),))
        for batch in cursor.fetch_record_batch():
            table = pa.Table.from_batches([batch])
            for n in [n for n in names if n in NULLABLE]:
                flag = pc.cast(table.column(f"{n}__null"), pa.bool_())
                at = table.schema.get_field_index(n)
                column = pc.if_else(flag, pa.scalar(None, pa.string()), table.column(n))
                table = table.set_column(at, n, column).drop_columns([f"{n}__null"])
            yield table


def publish_log(engine: Any, days: set[date]) -> list[dict]:
    """The publish log's rows of ``days``: publish id, tables, run date, digests."""
    import sqlalchemy as sa

    if not days:
        return []
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        if not inspector.has_table(db.LOG_TABLE):
            return []
        have = {c["name"] for c in inspector.get_columns(db.LOG_TABLE)}
        log = db.log_table()
        columns = [c for c in log.columns if c.name in have]
        rows = conn.execute(sa.select(*columns).where(log.c.run_date.in_(sorted(days))))
        out = []
        for row in rows.mappings():
            entry = dict(row)
            entry["run_date"] = _day(entry["run_date"])
            entry["tables"] = json.loads(entry["tables"])
            entry["digests"] = json.loads(entry.get("digests") or "{}")
            out.append(entry)
    return sorted(out, key=lambda e: (e["committed_at"], e["publish_id"]))
