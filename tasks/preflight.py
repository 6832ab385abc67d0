"""Checks run before a night starts: cheap, and before Prefect, MLflow or TensorFlow load.

A run that cannot succeed should say so in seconds, not after the Prefect server and
MLflow have started: the input path, the columns of every input file (read from the
header or the Parquet schema only, mapped as ingest maps them), the landing folder, the
publish database, and the workspace (writable, with free disk space). Each check is a
function of the config that returns nothing or raises a ``ConfigError`` / ``DataError``
subclass saying what was expected, what was found and what to do.
"""

from __future__ import annotations

import csv
import gzip
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tasks.errors import DatabaseUnreachable, InputNotReady, WorkspaceError

MIN_FREE_BYTES = 200 * 2**20
INPUT_SIZE_FACTOR = 3  # raw, validated and features copies of the input
CONNECT_TIMEOUT_SECONDS = 5
# The folders a run writes in the workspace (tasks/storage/workspace.py, flows/environment.py).
WORKSPACE_FOLDERS = (
    "raw", "validated", "validation", "features", "models", "reports", "scores",
    "cache", "locks", "tables", "mlflow", "prefect", "logs",
)  # fmt: skip


def preflight(config: Any) -> None:
    """Every check for a run of ``config`` (a loaded ``PipelineConfig``)."""
    source = config.ingest.source
    files = config.ingest.files
    input_bytes = 0
    if source == "files":
        input_bytes = check_files(files)
    elif source == "landing":
        check_landing(files.path)
    check_workspace(Path(config.workspace), input_bytes)
    check_database(config)


def check_files(files: Any) -> int:
    """The input path exists and every file in it has the mapped columns; its total size."""
    from tasks.sources.files import data_files

    root, paths, _ = data_files(files)  # ingest's own listing and its errors
    total = 0
    for path in paths:
        name = path.name if path == root else path.relative_to(root).as_posix()
        check_columns(path, files, name)
        total += path.stat().st_size
    return total


def header(path: Path, files: Any, name: str) -> list[str]:
    """The column names of a CSV (first line) or Parquet file (schema), nothing else read."""
    from tasks.sources.file_listing import delimiter_for, file_kind

    try:
        if path.stat().st_size == 0:
            return []  # ingest says "the file is empty" with its own advice
        if file_kind(path) == "parquet":
            if path.name.lower().endswith(".gz"):
                return []  # gzip'd Parquet has no schema without reading it all: ingest checks
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rt", encoding=files.encoding, newline="") as handle:
            first = next(csv.reader(handle, delimiter=delimiter_for(name, files)), [])
        return [c.lstrip("\ufeff") if i == 0 else c for i, c in enumerate(first)]
    except PermissionError as exc:
        raise InputNotReady(
            f"{path}: permission denied reading the input file; expected a file this user "
            "can read; fix its permissions (chmod o+r) or copy it elsewhere"
        ) from exc
    except (UnicodeDecodeError, OSError, EOFError, ValueError):
        return []  # unreadable contents: ingest reports them precisely


def check_columns(path: Path, files: Any, name: str) -> None:
    """The file's header has every column the mapping needs (ingest's own check, on the
    header alone)."""
    columns = header(path, files, name)
    if not columns:
        return
    import pandas as pd

    from tasks.sources.mapping import to_contract

    empty = pd.DataFrame({c: pd.Series([], dtype="str") for c in columns})
    to_contract(empty, files, name, stamp=pd.Timestamp(0, tz="UTC"))  # the header only


def check_landing(path: Path | None) -> None:
    """The landing folder exists and can be listed."""
    if path is None:
        raise InputNotReady(
            "source 'landing' needs ingest.files.path; expected the folder where daily files "
            "are dropped; pass --path"
        )
    landing = Path(path).expanduser()
    if not landing.is_dir():
        raise InputNotReady(
            f"landing folder {landing} does not exist or is not a folder; expected the folder "
            "where daily files are dropped; create it or check --path"
        )
    if not os.access(landing, os.R_OK | os.X_OK):
        raise InputNotReady(
            f"landing folder {landing}: permission denied listing it; expected a folder this "
            "user can read; fix its permissions"
        )


def existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists."""
    path = path.expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(folder: Path, what: str, option: str) -> Path:
    """``folder`` (or where it would be created) accepts a new file; the folder tested."""
    base = existing_ancestor(folder)
    if not base.is_dir():
        raise WorkspaceError(
            f"{what} {folder}: cannot be created, {base} is a file, not a folder; expected a "
            f"folder path; choose another ({option})"
        )
    try:
        with tempfile.NamedTemporaryFile(dir=base, prefix=".recpipe-preflight-"):
            pass
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise WorkspaceError(
            f"{what} {folder}: {reason} creating a file in {base}; expected a folder this "
            f"user can write; fix its permissions or choose another ({option})"
        ) from exc
    return base


def check_workspace(workspace: Path, input_bytes: int = 0) -> None:
    """The workspace can be written, its folders are folders, and it has
    ``max(3 x input, 200 MB)`` free."""
    base = check_writable(workspace, "workspace", "--workspace")
    for name in WORKSPACE_FOLDERS:
        folder = Path(workspace).expanduser() / name
        if folder.exists() and not folder.is_dir():
            raise WorkspaceError(
                f"workspace {workspace}: {folder} is a file; expected the folder where a run "
                f"writes its {name}; move the file away, or choose another --workspace"
            )
    need = max(INPUT_SIZE_FACTOR * input_bytes, MIN_FREE_BYTES)
    free = shutil.disk_usage(base).free
    if free < need:
        raise WorkspaceError(
            f"workspace {workspace}: {_mb(free)} free on its disk; expected at least "
            f"{_mb(need)} ({INPUT_SIZE_FACTOR}x the input's {_mb(input_bytes)}, at least "
            f"{_mb(MIN_FREE_BYTES)}); free space or move the workspace (--workspace)"
        )


def check_database(config: Any) -> None:
    """SQLite: its folder can be written; another database: it answers within seconds."""
    default = f"sqlite:///{Path(config.workspace).expanduser().absolute() / 'recpipe.db'}"
    if config.publish.database_url is None:
        return  # the workspace's own SQLite file: check_workspace covers its folder
    url = config.publish.url(default)
    masked = config.publish.masked_url(default)
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            folder = Path(database).expanduser().absolute().parent
            check_writable(folder, "SQLite database folder", "publish.database_url")
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    timeouts = {"postgresql": "connect_timeout", "mysql": "connect_timeout"}
    args = {}
    if parsed.get_backend_name() in timeouts:
        args[timeouts[parsed.get_backend_name()]] = CONNECT_TIMEOUT_SECONDS
    try:
        engine = create_engine(url, connect_args=args, pool_pre_ping=False)
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        finally:
            engine.dispose()
    except (SQLAlchemyError, OSError, ImportError) as exc:
        cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise DatabaseUnreachable(
            f"publish database {masked}: not reachable ({cause}); expected it to accept a "
            f"connection within {CONNECT_TIMEOUT_SECONDS} s; start it, or check "
            "publish.database_url and its password"
        ) from None


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB"
