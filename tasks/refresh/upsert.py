"""Publish a refresh: replace some users' rows of a run date in both stores.

The same pattern as the nightly's publish (tasks/publish.py), for a few users:

1. the journal (``<workspace>/refresh/journal/<publish id>.json``, apart from the
   nightly's, whose recovery would replace the whole date) records the intent; the rows
   are in ``<workspace>/refresh/staged/<publish id>.parquet``;
2. ONE database transaction deletes the users' rows of the date, inserts their new rows
   and logs the publish in ``recpipe_publish_log``: the commit point;
3. ONE Delta commit replaces the same users' rows in the lake table (a predicate
   overwrite on the date and the user ids), tagged with the publish id;
4. the journal says ``done``; the staged file goes.

:func:`recover` (called by every refresh, under the date's lock) finishes a publish a
killed refresh left: forward when its transaction committed and its rows are still the
database's (no nightly replaced the date since), else back.
"""

from __future__ import annotations

import shutil
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.storage import database as db
from tasks.storage import journal, lake
from tasks.storage.faults import checkpoint


def _folders(root: Path) -> tuple[Path, Path]:
    base = Path(root) / "refresh"
    return base / "journal", base / "staged"


def publish_users(
    root: Path,
    database_url: str,
    table: str,
    run_date: date,
    run_id: str,
    rows_path: Path,
    user_ids: list[str],
) -> dict:
    """Replace ``user_ids``' rows of ``run_date`` by those of ``rows_path`` in the database
    and the lake table ``table`` (see the module docstring); a summary."""
    journal_dir, staged = _folders(root)
    pid = journal.publish_id(run_date, f"refresh-{run_id}")
    staged.mkdir(parents=True, exist_ok=True)
    rows_file = staged / f"{pid}.parquet"
    shutil.copyfile(rows_path, rows_file)
    record = journal.advance(
        journal_dir,
        {
            "publish_id": pid,
            "run_id": run_id,
            "run_date": run_date.isoformat(),
            "table": table,
            "database": journal.database_digest(database_url),
            "created_at": journal.now(),
            "refreshed_at": journal.now(),
            "users": list(user_ids),
            "rows_file": rows_file.name,
        },
        "intent",
    )
    checkpoint("refresh:intent")
    engine = db.make_engine(database_url)
    try:
        db.prepare_tables(engine, [(table, "recommendations")])
        rows = _rows(rows_file, record)
        db.replace_users(
            engine,
            table,
            run_date,
            record["users"],
            rows.to_pandas(),
            pid,
            run_id,
            before_commit=lambda: checkpoint("refresh:database-commit"),
        )
        record = journal.advance(journal_dir, record, "database")
        checkpoint("refresh:database-committed")
        return _finish(root, record, rows)
    except Exception:
        if not db.is_committed(engine, pid, [(table, "recommendations")]):
            _roll_back(root, record)
        raise
    finally:
        engine.dispose()


def _rows(rows_file: Path, record: dict) -> pa.Table:
    when = datetime.fromisoformat(record["refreshed_at"])
    return lake.with_refreshed_at(pq.read_table(rows_file), when)


def _finish(root: Path, record: dict, rows: pa.Table) -> dict:
    journal_dir, staged = _folders(root)
    run_date = date.fromisoformat(record["run_date"])
    commit = lake.replace_users(
        Path(root) / "tables" / record["table"],
        rows,
        run_date,
        record["users"],
        record["publish_id"],
        {"recpipe.source_run_id": record["run_id"], "recpipe.refresh": "true"},
    )
    checkpoint("refresh:lake-committed")
    record = journal.advance(journal_dir, record, "done", lake_version=commit.version)
    (staged / record["rows_file"]).unlink(missing_ok=True)
    journal.prune(journal_dir)
    return {
        "publish_id": record["publish_id"],
        "rows": rows.num_rows,
        "users": len(record["users"]),
        "lake_version": commit.version,
        "refreshed_at": record["refreshed_at"],
    }


def _roll_back(root: Path, record: dict) -> None:
    journal_dir, staged = _folders(root)
    (staged / record["rows_file"]).unlink(missing_ok=True)
    journal.advance(journal_dir, record, "rolled_back")


def recover(root: Path, database_url: str, run_date: date) -> list[dict]:
    """Finish or undo the unfinished refresh publishes of ``run_date`` (the caller holds
    its lock); what was done."""
    journal_dir, staged = _folders(root)
    if not journal_dir.is_dir():
        return []
    done = []
    for record in journal.unfinished(journal_dir):
        if record["run_date"] != run_date.isoformat():
            continue
        pid, table = record["publish_id"], record["table"]
        engine = db.make_engine(database_url)
        try:
            committed = db.is_committed(engine, pid, [(table, "recommendations")])
            current = committed and _still_current(engine, table, run_date, record)
        finally:
            engine.dispose()
        rows_file = staged / record["rows_file"]
        if committed and current and rows_file.exists():
            _finish(root, record, _rows(rows_file, record))
            done.append({"publish_id": pid, "action": "rolled forward"})
        else:
            _roll_back(root, record)
            done.append({"publish_id": pid, "action": "rolled back"})
    return done


def _still_current(engine: Any, table: str, run_date: date, record: dict) -> bool:
    """Do the database's rows of the record's users still come from the record's run?"""
    import sqlalchemy as sa

    target = db.sql_table(table, "recommendations")
    users = record["users"][:500]
    with engine.connect() as conn:
        runs = conn.execute(
            sa.select(target.c.run_id)
            .distinct()
            .where(target.c.run_date == run_date, target.c.user_id.in_(users))
        )
        found = {r[0] for r in runs}
    return found == {record["run_id"]}


def rows_of(database_url: str, table: str, run_date: date, users: list[str]) -> pd.DataFrame:
    """The database's rows of ``users`` for ``run_date`` (for reports and tests)."""
    frame = db.read_table(database_url, table, run_date)
    return frame[frame["user_id"].isin(users)].reset_index(drop=True)
