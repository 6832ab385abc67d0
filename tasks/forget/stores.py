"""The stores that are not plain files: the publish database, the Delta tables, and the
other SQLite databases of the workspace (MLflow's store and its backups, Prefect's).

* the publish database: the published tables with a ``user_id`` column (all kept
  dates) and their staging tables, one transaction, then the file compacted
  (``tasks/storage/database.py``);
* each Delta table: one delete commit, then every older version vacuumed and its log
  entries removed (``tasks/storage/lake.py``);
* any other SQLite file: every text value holding a form of the id is rewritten with the
  id's tombstone (run names, tags, parameters, artifacts, log lines), in one transaction
  with ``secure_delete`` on, then ``VACUUM`` and a truncating WAL checkpoint.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from tasks.forget.files import SQLITE_HEADER
from tasks.forget.forms import TextMatcher

BUSY_MS = 60_000


def publish_database(url: str, user_ids: list[str], tables: list[str]) -> dict[str, int]:
    from tasks.storage.database import delete_users, make_engine

    engine = make_engine(url)
    try:
        return delete_users(engine, user_ids, tables)
    finally:
        engine.dispose()


def lake_tables(tables_root: Path, user_ids: list[str], erasure_id: str) -> dict[str, dict]:
    from tasks.storage.lake import delete_users, is_table, purge_history

    out = {}
    for root in sorted(p for p in Path(tables_root).iterdir() if p.is_dir()):
        if not is_table(root):
            continue
        rows = delete_users(root, user_ids, erasure_id)
        out[root.name] = {"rows": rows, **purge_history(root)}
    return out


def is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(16) == SQLITE_HEADER
    except OSError:
        return False


def sqlite_files(root: Path, skip: set[Path]) -> list[Path]:
    return sorted(
        p for p in Path(root).rglob("*") if p.is_file() and p not in skip and is_sqlite(p)
    )


def _text_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]


def _tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ).fetchall()
    return [name for name, sql in rows if not (sql or "").upper().startswith("CREATE VIRTUAL")]


def scrub_sqlite(path: Path, matcher: TextMatcher) -> dict[str, int]:
    """Replace every form of the ids in every text value of the database at ``path`` by
    their tombstones (one transaction), then compact it; ``{table.column: values}``."""
    conn = sqlite3.connect(path, timeout=BUSY_MS / 1000, isolation_level=None)
    counts: dict[str, int] = {}
    try:
        conn.execute(f"PRAGMA busy_timeout={BUSY_MS}")
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("BEGIN IMMEDIATE")
        try:
            for table in _tables(conn):
                for column in _text_columns(conn, table):
                    n = _scrub_column(conn, table, column, matcher)
                    if n:
                        counts[f"{table}.{column}"] = n
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        _vacuum(conn)
    finally:
        conn.close()
    return counts


def _scrub_column(conn: sqlite3.Connection, table: str, column: str, matcher: TextMatcher) -> int:
    needles = list(matcher.owner)
    where = " OR ".join(f'instr(CAST("{column}" AS BLOB), CAST(? AS BLOB)) > 0' for _ in needles)
    try:
        rows = conn.execute(
            f'SELECT rowid, "{column}" FROM "{table}" WHERE {where}', needles
        ).fetchall()
    except sqlite3.OperationalError:  # a table without rowid
        return 0
    n = 0
    for rowid, value in rows:
        if isinstance(value, bytes):
            try:
                text, was_bytes = value.decode("utf-8"), True
            except UnicodeDecodeError:
                continue
        elif isinstance(value, str):
            text, was_bytes = value, False
        else:
            continue
        new, hits = matcher.replace(text)
        if hits:
            stored: Any = new.encode("utf-8") if was_bytes else new
            conn.execute(f'UPDATE "{table}" SET "{column}" = ? WHERE rowid = ?', (stored, rowid))
            n += hits
    return n


def _vacuum(conn: sqlite3.Connection, attempts: int = 20) -> None:
    """VACUUM (it needs the database to itself: another process may be reading)."""
    for attempt in range(attempts):
        try:
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return
        except sqlite3.OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5)


def prefect_database() -> Path | None:
    """The Prefect database file this process is configured with, when it is a local
    SQLite file (a temporary server's, or a server's on this machine)."""
    url = os.environ.get("PREFECT_API_DATABASE_CONNECTION_URL") or os.environ.get(
        "PREFECT_SERVER_DATABASE_CONNECTION_URL"
    )
    if not url:
        try:
            from prefect.settings import get_current_settings

            secret = get_current_settings().server.database.connection_url
            url = None if secret is None else secret.get_secret_value()
        except Exception:  # noqa: BLE001 - no Prefect settings: nothing to add
            return None
    if not url or "sqlite" not in str(url):
        return None
    path = Path(str(url).split("///", 1)[-1].split("?", 1)[0]).expanduser()
    return path if path.is_file() else None


def prefect_artifacts(matcher: TextMatcher, page: int = 200) -> int | None:
    """Delete, through the Prefect API, every artifact whose content or description holds
    a form of the ids, when the server's database is not a local file (that one is
    scrubbed in place, which is better: Prefect records a deletion as an event that
    carries the artifact's content, kept for its events retention period). None when
    there is nothing to do this way."""
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url or prefect_database() is not None:
        return None
    from prefect.client.orchestration import get_client

    deleted = 0
    offset = 0
    with get_client(sync_client=True) as client:
        while True:
            batch = client.read_artifacts(limit=page, offset=offset)
            if not batch:
                return deleted
            for artifact in batch:
                text = f"{artifact.data or ''}\n{artifact.description or ''}\n{artifact.key or ''}"
                if matcher.search(text):
                    client.delete_artifact(artifact.id)
                    deleted += 1
                else:
                    offset += 1
