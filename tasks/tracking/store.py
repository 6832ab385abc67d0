"""Guard the workspace's MLflow store (``<workspace>/mlflow/mlflow.db``) against damage.

MLflow replaces an empty ``mlflow.db`` with a new store without a word: the run history
and the champion alias are gone, and registry version numbers restart at 1, colliding
with the ``model_version`` already in the published table. A truncated store fails
with a SQLAlchemy error that does not name the file. So, before a run writes to MLflow:

* ``guard_store`` refuses a store that is empty, not SQLite, truncated, fails
  ``PRAGMA integrity_check`` or lacks MLflow's tables when the workspace has published
  output, with a ``StoreError`` naming the file and the backup to restore; an empty
  store (or one with no tables at all) on a workspace that published nothing is a first
  run and MLflow creates it; a healthy store is backed up with SQLite's online backup
  API to ``<workspace>/mlflow/backups/`` (the newest ``keep`` are kept);
* ``check_store`` is the cheap part (no integrity check, no copy), run by
  ``tracking.client_for`` on every client.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
import uuid
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from tasks.errors import StoreError
from tasks.storage.workspace import Workspace

KEEP_BACKUPS = 5
BACKUP_PREFIX = "mlflow-"
# Tables every MLflow 3 store has; their absence means the file is not (all of) a store.
REQUIRED_TABLES = frozenset(
    {
        "alembic_version",
        "experiments",
        "runs",
        "metrics",
        "params",
        "tags",
        "registered_models",
        "model_versions",
        "registered_model_aliases",
    }
)
NO_TABLES = "holds no tables"  # no history: a first run, not damage
UNREADABLE = "cannot be read"  # locked or not permitted, not damaged
STALE_TEMP_SECONDS = 3600  # a temp copy older than this was left by a killed process
_DAMAGE = ("SQLITE_CORRUPT", "SQLITE_NOTADB")  # error names meaning "not a sound database"


def store_path(ws: Workspace) -> Path:
    return ws.mlflow_dir / "mlflow.db"


def backups_dir(ws: Workspace) -> Path:
    return ws.mlflow_dir / "backups"


# -- published output ----------------------------------------------------------------------
def published_output(ws: Workspace, table: str = "recommendations") -> str | None:
    """What this workspace has published (for messages), or None when nothing yet.

    Evidence: rows in ``table`` of the workspace database, or a data file in a partition
    folder under ``<workspace>/tables`` (hidden staging folders do not count). A workspace
    database that cannot be read counts as published: refusing is the safe side.
    """
    db = ws.database_path
    if db.is_file() and db.stat().st_size > 0:
        try:
            with _read_only(db) as con:
                known = con.execute(
                    "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)
                ).fetchone()
                if known and con.execute(f'SELECT 1 FROM "{table}" LIMIT 1').fetchone():
                    return f"table {table!r} in {db} has rows"
        except sqlite3.Error as exc:
            return f"{db} exists but cannot be read ({exc})"
    for folder in sorted(p for p in ws.tables.iterdir() if p.is_dir()):
        if folder.name.startswith("."):
            continue
        for item in folder.rglob("*"):
            parts = item.relative_to(folder).parts
            if item.is_file() and not any(part.startswith(".") for part in parts):
                return f"{folder} holds published files"
    return None


def has_published_output(ws: Workspace, table: str = "recommendations") -> bool:
    return published_output(ws, table) is not None


# -- checks ----------------------------------------------------------------------------------
def store_problem(path: Path) -> str | None:
    """What is wrong with an existing, non-empty store file, cheaply; None when it looks sound.

    Reads only the schema (SQLite also compares the page count in the header with the
    file size here, so a truncated file is caught). ``NO_TABLES`` is the one answer
    that means "no history" rather than damage.
    """
    try:
        with _read_only(path) as con:
            tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master")}
            if not tables:
                return NO_TABLES
            missing = sorted(REQUIRED_TABLES - tables)
            if missing:
                return f"is a SQLite database but lacks MLflow's tables {missing}"
            if con.execute("SELECT 1 FROM alembic_version").fetchone() is None:
                return "has an empty alembic_version table (MLflow never finished creating it)"
    except sqlite3.DatabaseError as exc:
        return describe_error(exc)
    return None


def integrity_problem(path: Path) -> str | None:
    """``PRAGMA integrity_check`` (reads every page); None when it answers ``ok``."""
    try:
        with _read_only(path) as con:
            rows = [row[0] for row in con.execute("PRAGMA integrity_check(5)")]
    except sqlite3.DatabaseError as exc:
        return describe_error(exc)
    return None if rows == ["ok"] else "fails PRAGMA integrity_check: " + "; ".join(rows)


def check_store(ws: Workspace, table: str = "recommendations") -> bool:
    """The cheap guard (``tracking.client_for`` runs it on every client): True when the
    store holds data, False when there is none yet (no file, or an empty one on a
    workspace that published nothing: MLflow creates it). Raises ``StoreError`` for a
    store MLflow would silently replace (empty, with published output) or fail on with an
    error that does not name the file (not SQLite, truncated, lacking MLflow's tables)."""
    path = store_path(ws)
    if not path.exists():
        return False
    problem = NO_TABLES if path.stat().st_size == 0 else store_problem(path)
    if problem is None:
        return True
    evidence = published_output(ws, table)
    if problem == NO_TABLES and evidence is None:
        return False
    raise damaged_store_error(ws, problem, evidence)


# -- the guard -------------------------------------------------------------------------------
def guard_store(
    ws: Workspace,
    keep: int = KEEP_BACKUPS,
    table: str = "recommendations",
    logger: logging.Logger | logging.LoggerAdapter | None = None,
) -> Path | None:
    """Check the MLflow store before a run writes to it; back it up; return the backup.

    Returns None when there is nothing to back up (no store yet, or an empty one on a
    workspace that published nothing: MLflow creates it). Raises ``StoreError`` (naming
    the file, what is wrong and the backup to restore) for a damaged store, and for an
    empty one when the workspace has published output.
    """
    log = logger or logging.getLogger(__name__)
    path = store_path(ws)
    if check_store(ws, table):
        return backup_store(ws, keep, table)
    evidence = None if path.exists() else published_output(ws, table)
    if evidence:
        log.warning(
            "MLflow store %s does not exist although %s: MLflow creates a new one and "
            "registry version numbers restart at 1. If it was lost by accident, stop this "
            "run and restore the newest backup from %s",
            path,
            evidence,
            backups_dir(ws),
        )
    else:
        log.info("MLflow store %s is new (nothing published yet): MLflow creates it", path)
    return None


def backup_store(ws: Workspace, keep: int = KEEP_BACKUPS, table: str = "recommendations") -> Path:
    """Copy the store with SQLite's online backup API (a consistent snapshot even while
    another process writes), check the copy's integrity, then rename it into
    ``<mlflow>/backups/mlflow-<UTC time>-<id>.db`` and keep the newest ``keep``.

    The copy is page for page, so a failed check means the store itself is damaged:
    the copy is deleted (earlier backups are not pruned) and ``StoreError`` is raised.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1 backup; got {keep}")
    source = store_path(ws)
    folder = backups_dir(ws)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    final = folder / f"{BACKUP_PREFIX}{stamp}-{uuid.uuid4().hex[:8]}.db"
    temp = folder / f".{final.name}.tmp"
    try:
        try:
            dst = sqlite3.connect(temp)
            try:
                with _read_only(source) as src:
                    src.backup(dst)
            finally:
                dst.close()
            problem = integrity_problem(temp)
        except sqlite3.DatabaseError as exc:
            problem = describe_error(exc)
        if problem:
            temp.unlink(missing_ok=True)
            raise damaged_store_error(ws, problem, published_output(ws, table))
        os.replace(temp, final)
    finally:
        temp.unlink(missing_ok=True)
    prune_backups(folder, keep)
    return final


def list_backups(folder: Path) -> list[Path]:
    """Backups, oldest first (the names sort by their UTC time)."""
    if not folder.is_dir():
        return []
    return sorted(folder.glob(f"{BACKUP_PREFIX}*.db"))


def prune_backups(folder: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` backups, and temp copies a killed process left."""
    removed = list_backups(folder)[:-keep]
    now = time.time()
    removed += [p for p in folder.glob(".*.tmp") if now - p.stat().st_mtime > STALE_TEMP_SECONDS]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


# -- the message -----------------------------------------------------------------------------
def damaged_store_error(ws: Workspace, problem: str, evidence: str | None) -> StoreError:
    path = store_path(ws)
    empty = path.exists() and path.stat().st_size == 0
    what = "is empty (0 bytes)" if empty else problem
    lines = [f"MLflow store {path} {what}; expected an MLflow SQLite store."]
    if problem.startswith(UNREADABLE):
        lines.append(
            "Check that this user may read it and that no other process holds it locked; "
            "recpipe stopped before writing anything to MLflow."
        )
        return StoreError(" ".join(lines))
    if evidence:
        lines.append(
            f"This workspace has published output ({evidence}): a new store would lose "
            "the run history and the champion alias, and registry version numbers would "
            "restart at 1 and collide with the model_version already published."
        )
    lines.append("recpipe stopped before writing anything to MLflow.")
    sidecars = [
        p for p in (Path(f"{path}-{end}") for end in ("journal", "wal", "shm")) if p.exists()
    ]
    drop = "".join(f" && rm {p}" for p in sidecars)
    backups = list_backups(backups_dir(ws))
    if backups:
        newest = backups[-1]
        taken = datetime.fromtimestamp(newest.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M")
        lines.append(
            f"Restore the newest backup ({newest.name}, taken {taken} UTC at the start of a "
            f"run; later runs are not in it): mv {path} {path}.damaged{drop} && "
            f"cp {newest} {path}"
        )
    else:
        lines.append(
            f"There is no backup in {backups_dir(ws)}. If the store cannot be restored, "
            f"move it aside (mv {path} {path}.damaged{drop}); the next run then starts a "
            + ("new store, with the losses above." if evidence else "new, empty store.")
        )
    return StoreError(" ".join(lines))


# -- helpers ---------------------------------------------------------------------------------
def _read_only(path: Path) -> closing[sqlite3.Connection]:
    """A read-only connection (never creates the file), closed on leaving ``with``."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    return closing(sqlite3.connect(uri, uri=True, timeout=30))


def describe_error(exc: sqlite3.DatabaseError) -> str:
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(_DAMAGE):
        return f"is damaged: SQLite says {exc!s} ({name})"
    return f"{UNREADABLE}: SQLite says {exc!s} ({name or type(exc).__name__})"
