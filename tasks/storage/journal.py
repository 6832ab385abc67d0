"""The publish journal: one small JSON file per publish, in ``<workspace>/journal/``.

A publish spans stores that cannot commit together (a database and the lake tables), so
it writes down what it is about to do before touching any of them, and each step as it
lands::

    intent -> database (the commit point) -> lake:<table> ... -> done
           \\-> rolled_back (the database never committed)

Recovery (tasks/publishing/recovery.py) reads the records that are neither ``done`` nor
``rolled_back`` and finishes them: forward when the database committed, back when it did
not. Each record is written through a unique temporary name and renamed, so a crash never
leaves half a record. Paths in a record are relative to the workspace, and the database
is named by a digest of its URL (never the URL: it may hold a password).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from tasks.errors import PublishError

FINISHED = ("done", "rolled_back")
KEEP_FINISHED = 100


def publish_id(run_date: date, run_id: str) -> str:
    """The id of one run's publish of one date (file-name safe)."""
    return f"{run_date.isoformat()}_{re.sub(r'[^A-Za-z0-9._-]', '-', run_id)}"


def database_digest(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def path_for(journal_dir: Path, pid: str) -> Path:
    return Path(journal_dir) / f"{pid}.json"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def write(journal_dir: Path, record: dict[str, Any]) -> Path:
    """Write ``record`` atomically (temporary name, fsync, rename, fsync the folder)."""
    journal_dir = Path(journal_dir)
    journal_dir.mkdir(parents=True, exist_ok=True)
    path = path_for(journal_dir, record["publish_id"])
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    record = {**record, "updated_at": now()}
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fd = os.open(journal_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def advance(journal_dir: Path, record: dict[str, Any], state: str, **fields: Any) -> dict:
    """The record moved to ``state`` (with ``fields``), written."""
    steps = [*record.get("steps", []), {"state": state, "at": now()}]
    record = {**record, **fields, "state": state, "steps": steps}
    write(journal_dir, record)
    return record


def read(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(record, dict) or "publish_id" not in record or "state" not in record:
            raise ValueError("not a publish record")
        return record
    except (OSError, ValueError) as exc:
        raise PublishError(
            f"publish journal {path} is unreadable ({type(exc).__name__}: {exc}); expected a "
            "JSON publish record; move it out of the journal folder and run 'recpipe doctor' "
            "to check that the stores agree"
        ) from exc


def unfinished(journal_dir: Path) -> list[dict[str, Any]]:
    """Records of publishes that neither finished nor were rolled back, oldest first."""
    out = []
    for path in sorted(Path(journal_dir).glob("*.json")):
        record = read(path)
        if record["state"] not in FINISHED:
            out.append(record)
    return sorted(out, key=lambda r: r.get("created_at", ""))


def prune(journal_dir: Path, keep: int = KEEP_FINISHED) -> int:
    """Delete the oldest finished records beyond ``keep`` (and stray temporary files)."""
    journal_dir = Path(journal_dir)
    for tmp in journal_dir.glob(".*.tmp"):
        try:
            if time.time() - tmp.stat().st_mtime > 60:  # not a write in progress
                tmp.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
    finished = []
    for path in journal_dir.glob("*.json"):
        try:
            record = read(path)
        except PublishError:
            continue
        if record["state"] in FINISHED:
            finished.append((record.get("updated_at", ""), path))
    finished.sort()
    gone = finished[:-keep] if len(finished) > keep else []
    for _, path in gone:
        path.unlink(missing_ok=True)
    return len(gone)
