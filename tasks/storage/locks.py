"""Run locks: at most one run per date writes the workspace and publishes at a time.

A run holds ``<workspace>/locks/run_date=YYYY-MM-DD.lock`` for its whole length, from
ingest to publish: runs of one date share the date's workspace folders (raw, validated,
features, models, scores) as well as its table partition, so a lock around publish alone
would let two runs overwrite each other's inputs. A second run for the same date waits up
to ``lock.wait_seconds``, then fails with ``LockError`` before writing anything.

The lock is ``flock(2)`` on the file: the kernel releases it when the holder exits, even
on ``kill -9`` or a power cut, so there is never a stale lock to clean up by hand; no
server has to be up (a Prefect concurrency limit needs one, and its slots outlive a killed
process until their lease expires). The file holds the holder's flow run, pid, host and
start time, for the error message and ``recpipe status``. flock covers processes on one
host (the workspace is a local folder); when the tables go to PostgreSQL, the run also
holds a session-level advisory lock on (table, run date) in that database, which covers
runs from other hosts or workspaces publishing to the same table.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from tasks.errors import RecpipeError

RETRY_SECONDS = 0.25


class LockError(RecpipeError):
    """Another run holds the lock of this date; this run stopped before writing anything."""


def lock_path(lock_dir: Path, run_date: date) -> Path:
    return Path(lock_dir) / f"run_date={run_date.isoformat()}.lock"


def holder_info(flow_run_id: str | None = None, **extra: Any) -> dict:
    return {
        "flow_run_id": flow_run_id,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
        **extra,
    }


def describe_holder(info: dict) -> str:
    if not info:
        return "a run that has not written its details yet"
    return (
        f"flow run {info.get('flow_run_id')} (pid {info.get('pid')} on {info.get('host')}, "
        f"since {info.get('since')})"
    )


def _read_holder(fd: int) -> dict:
    try:
        raw = os.pread(fd, 65536, 0)
        return json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (OSError, ValueError):
        return {}


def say_waiting(what: str, holder: str, path: Path, wait_seconds: float) -> None:
    """One line on stderr when a lock is busy: what it waits for, who holds it, how long."""
    import sys

    sys.stderr.write(
        f"recpipe: waiting for {what} to finish: {holder} holds {path}; waiting up to "
        f"{wait_seconds:g} s ('recpipe status' shows it)\n"
    )
    sys.stderr.flush()


@contextmanager
def file_lock(path: Path, wait_seconds: float, holder: dict, what: str) -> Iterator[Path]:
    """Hold an exclusive flock on ``path``; wait up to ``wait_seconds``, then LockError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + max(wait_seconds, RETRY_SECONDS)  # at least one retry
    told = False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told and wait_seconds >= 1:
                    say_waiting(what, describe_holder(_read_holder(fd)), path, wait_seconds)
                    told = True
                if time.monotonic() >= deadline:
                    raise LockError(
                        f"{what} is already running: {describe_holder(_read_holder(fd))} holds "
                        f"{path}; this run stopped before writing anything and the tables "
                        f"are as that run leaves them; wait for it to finish ('recpipe "
                        f"status' shows it), or set lock.wait_seconds (waited "
                        f"{wait_seconds:g} s) to queue behind it"
                    ) from None
                time.sleep(RETRY_SECONDS)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode("utf-8"), 0)
        os.fsync(fd)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)  # the file stays: deleting it would race with a waiter
    finally:
        os.close(fd)  # closing releases the flock


@contextmanager
def run_lock(lock_dir: Path, run_date: date, wait_seconds: float, holder: dict) -> Iterator[Path]:
    """The lock of one run date (see the module docstring)."""
    with file_lock(
        lock_path(lock_dir, run_date), wait_seconds, holder, f"a recpipe run for {run_date}"
    ) as path:
        yield path


def held_locks(lock_dir: Path) -> dict[str, dict]:
    """Lock files held right now -> their holder's details (for ``recpipe status``)."""
    out: dict[str, dict] = {}
    for path in sorted(Path(lock_dir).glob("*.lock")):
        fd = os.open(path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                out[path.stem] = _read_holder(fd)
            else:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    return out


@contextmanager
def database_lock(url: str, table: str, run_date: date, wait_seconds: float) -> Iterator[None]:
    """A PostgreSQL advisory lock on (table, run date), held for the block; a no-op for
    other databases (SQLite lives in the workspace, which the file lock already covers)."""
    if not url.startswith("postgresql"):
        yield
        return
    import sqlalchemy as sa

    from tasks.storage.database import advisory_key, make_engine

    name = f"recpipe:{table}:{run_date.isoformat()}"
    key = advisory_key(name)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            deadline = time.monotonic() + max(wait_seconds, RETRY_SECONDS)
            while not conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                conn.rollback()
                if time.monotonic() >= deadline:
                    raise LockError(
                        f"another recpipe run is publishing table {table!r} for {run_date} to "
                        f"{engine.url.render_as_string(hide_password=True)} (PostgreSQL "
                        f"advisory lock {name!r}); this run stopped before writing anything; "
                        "wait for it to finish or set lock.wait_seconds"
                    )
                time.sleep(RETRY_SECONDS)
            conn.commit()
            try:
                yield
            finally:
                try:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
                except sa.exc.SQLAlchemyError:
                    pass  # the session ends below, which releases the lock anyway
    finally:
        engine.dispose()
